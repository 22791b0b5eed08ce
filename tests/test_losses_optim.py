"""Losses, optimizers, the lr schedule and EMA against hand-computed values."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from trm.config import ModelSpec, OptimSpec
from trm.model import build_model
from trm.train.ema import EMA
from trm.train.losses import (
    halt_bce,
    lm_loss,
    log_stablemax,
    sequence_mean_sum,
    softmax_cross_entropy,
    stablemax_cross_entropy,
)
from trm.train.optim import AdamATan2, AdamW, PuzzleSignSGD, build_optimizers, lr_at, set_lr

torch.set_num_threads(1)

# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


def test_stablemax_hand_value():
    # s(1) = 2, s(-1) = 1/2, s(0) = 1; sum = 3.5 -> p = (4/7, 1/7, 2/7)
    logits = torch.tensor([[1.0, -1.0, 0.0]])
    lp = log_stablemax(logits)
    assert lp.dtype == torch.float64
    torch.testing.assert_close(lp, torch.tensor([[4 / 7, 1 / 7, 2 / 7]], dtype=torch.float64).log())
    loss = stablemax_cross_entropy(logits, torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log(7 / 4), abs=1e-15)
    assert stablemax_cross_entropy(logits, torch.tensor([1])).item() == pytest.approx(math.log(7))


def test_stablemax_ignored_labels_and_finite_gradient_at_one():
    logits = torch.tensor([[[1.0, 2.0, -3.0], [1.0, 0.0, 0.5]]], requires_grad=True)
    labels = torch.tensor([[2, -100]])
    per_token = stablemax_cross_entropy(logits, labels)
    assert per_token[0, 1].item() == 0.0
    per_token.sum().backward()  # x = 1 exactly: the unused 1/(1-x) branch must not leak nan
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1].abs().sum() == 0


def test_softmax_cross_entropy_matches_torch():
    torch.manual_seed(0)
    logits, labels = torch.randn(2, 5, 4), torch.randint(0, 4, (2, 5))
    labels[0, 0] = -100
    ours = softmax_cross_entropy(logits, labels)
    ref = F.cross_entropy(logits.view(-1, 4), labels.view(-1), ignore_index=-100, reduction="none")
    torch.testing.assert_close(ours, ref.view(2, 5))


def test_sequence_mean_then_batch_sum():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([[1, 1, 1], [1, -100, -100], [-100, -100, -100]])
    # (1+2+3)/3 + 4/1 + 0 (no valid token: counted as 1, contributes 0)
    assert sequence_mean_sum(per_token, labels).item() == pytest.approx(6.0)
    logits = torch.zeros(1, 2, 3)  # uniform under stablemax: each token costs log 3
    assert lm_loss(logits, torch.tensor([[0, 2]])).item() == pytest.approx(math.log(3))


def test_halt_bce_is_summed():
    q = torch.tensor([0.0, 0.0])
    assert halt_bce(q, torch.tensor([True, False])).item() == pytest.approx(2 * math.log(2))


# --------------------------------------------------------------------------------------
# AdamATan2
# --------------------------------------------------------------------------------------


def test_adam_atan2_first_step_is_a_signed_quarter_pi():
    # Step 1: m_hat = g and sqrt(v_hat) = |g|, so the update is lr * atan2(g, |g|) = lr*sign(g)*pi/4.
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = AdamATan2([p], lr=0.1, betas=(0.9, 0.95), weight_decay=0.5)
    p.grad = torch.tensor([0.3, -7.0, 0.0])
    opt.step()
    decay = 1 - 0.1 * 0.5
    want = [1.0 * decay - 0.1 * math.pi / 4, -2.0 * decay + 0.1 * math.pi / 4, 3.0 * decay]
    torch.testing.assert_close(p.data, torch.tensor(want))  # zero grad: atan2(0, 0) = 0


def test_adam_atan2_two_steps_hand_computed():
    lr, b1, b2, wd = 0.1, 0.9, 0.95, 0.1
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = AdamATan2([p], lr=lr, betas=(b1, b2), weight_decay=wd)
    p.grad = torch.tensor([0.5], dtype=torch.float64)
    opt.step()
    p.grad = torch.tensor([-1.0], dtype=torch.float64)
    opt.step()
    p1 = 1.0 * 0.99 - 0.1 * math.pi / 4
    m = 0.9 * 0.05 + 0.1 * -1.0  # -0.055
    v = 0.95 * 0.0125 + 0.05 * 1.0  # 0.061875
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.95**2)  # / 0.19, / 0.0975
    p2 = p1 * 0.99 - 0.1 * math.atan2(m_hat, math.sqrt(v_hat))
    assert p.item() == pytest.approx(p2, abs=1e-14)
    st = opt.state[p]
    assert st["step"] == 2 and st["exp_avg"].item() == pytest.approx(m)


# --------------------------------------------------------------------------------------
# AdamW: torch's single-tensor AdamW, bit for bit, and its state_dict layout
# --------------------------------------------------------------------------------------


def _adamw_pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2)]
    a = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    return a, b


def _adamw_steps(params, opt, start, stop, lrs):
    for step in range(start, stop):
        g = torch.Generator().manual_seed(100 + step)
        for group in opt.param_groups:
            group["lr"] = lrs[step]
        for i, p in enumerate(params):
            # The middle parameter has no gradient on odd steps: skipped, its state untouched.
            p.grad = None if (i == 1 and step % 2) else torch.randn(p.shape, generator=g) * 10 ** (i - 1)
        opt.step()
        opt.zero_grad(set_to_none=True)


LRS = [1e-3, 5e-3, 1e-2, 7e-3, 3e-3, 1e-3, 5e-4, 1e-4]


def test_adamw_equals_torch_adamw_bit_for_bit():
    ours_p, torch_p = _adamw_pair()
    kw = dict(lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ours, ref = AdamW(ours_p, **kw), torch.optim.AdamW(torch_p, foreach=False, **kw)
    _adamw_steps(ours_p, ours, 0, 8, LRS)
    _adamw_steps(torch_p, ref, 0, 8, LRS)
    for a, b in zip(ours_p, torch_p, strict=True):
        assert torch.equal(a, b)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(ours.state[a][key], ref.state[b][key]), key
    assert ours.state[ours_p[1]]["step"].item() == 4  # skipped on the 4 odd steps


def test_adamw_state_dict_interchanges_with_torch():
    # A checkpoint written when AdamW was torch's resumes with ours (and the other way
    # round) and continues to the same bits.
    kw = dict(lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    for first, second in ((torch.optim.AdamW, AdamW), (AdamW, torch.optim.AdamW)):
        params, straight = _adamw_pair()
        opt = first(params, **kw) if first is AdamW else first(params, foreach=False, **kw)
        _adamw_steps(params, opt, 0, 4, LRS)
        saved = copy.deepcopy(opt.state_dict())
        resumed_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
        resumed = second(resumed_params, **kw) if second is AdamW else second(resumed_params, foreach=False, **kw)
        resumed.load_state_dict(saved)
        _adamw_steps(resumed_params, resumed, 4, 8, LRS)
        ref = torch.optim.AdamW(straight, foreach=False, **kw)
        _adamw_steps(straight, ref, 0, 8, LRS)
        for a, b in zip(resumed_params, straight, strict=True):
            assert torch.equal(a, b), (first.__module__, second.__module__)


def test_optimizer_state_dict_refuses_other_parameters():
    opt = AdamW([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))])
    other = AdamW([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="other parameter groups"):
        other.load_state_dict(opt.state_dict())


def test_a_training_process_never_imports_the_compiler(tmp_path, smoke_data):
    # torch.optim.Optimizer's constructor imports torch._dynamo (1.2 s and ~70 MiB of RSS per
    # process, measured); an eager run needs none of it, so our optimizers do without it.
    import os
    import subprocess
    import sys

    from trm import config as C

    spec = tmp_path / "spec.yaml"
    C.dump_spec(C.resolve("hrm", "sudoku", "smoke", {"train.steps": 3}), spec)
    code = ("import sys, runpy; sys.argv = ['trm', 'train', '--spec', sys.argv[1], '--out', sys.argv[2], "
            "'--data', sys.argv[3]]\n"
            "try:\n    runpy.run_module('trm', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print('LOADED', sorted(m for m in ('torch._dynamo', 'torch._inductor') if m in sys.modules))")
    # The allocator's re-exec (trm/train/allocator.py) would replace this wrapper: decided.
    env = {**os.environ, "TRM_ALLOCATOR_DECIDED": "system"}
    out = subprocess.run([sys.executable, "-c", code, str(spec), str(tmp_path / "run"), str(smoke_data)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "ok"
    assert "LOADED []" in out.stdout, out.stdout[-500:]


# --------------------------------------------------------------------------------------
# Sign-SGD for puzzle embeddings
# --------------------------------------------------------------------------------------


class FakeTable(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        self.register_buffer("weight", table)
        self.local_rows = self.local_ids = None


def test_sign_sgd_row_update_sums_duplicates_and_leaves_other_rows():
    table = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    emb = FakeTable(table.clone())
    opt = PuzzleSignSGD(emb, lr=0.1, weight_decay=0.5)
    emb.local_ids = torch.tensor([2, 0, 2])
    emb.local_rows = emb.weight[emb.local_ids].requires_grad_(True)
    # id 2 appears twice: summed gradient (3 - 1, -1 + 2) = (2, 1) -> sign (+1, +1), which
    # neither of its rows alone has.
    emb.local_rows.grad = torch.tensor([[3.0, -1.0], [-0.5, 0.0], [-1.0, 2.0]])
    opt.step()
    d = 1 - 0.1 * 0.5
    want = torch.tensor([[1.0 * d + 0.1, 1.0 * d], [2.0, 2.0], [3.0 * d - 0.1, 3.0 * d - 0.1], [4.0, 4.0]])
    torch.testing.assert_close(emb.weight, want)
    before = emb.weight.clone()
    opt.step()  # consumed: no new forward, no second update
    assert torch.equal(emb.weight, before)


def test_sign_sgd_through_the_model_updates_only_batch_rows():
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=16, num_heads=2, layers=1, n_latent_steps=1, n_cycles=1,
                     puzzle_emb_len=1, puzzle_emb_dim=16)
    model = build_model(spec, 5, 6, 10)
    model.train()
    opt = PuzzleSignSGD(model.puzzle_emb, lr=0.01, weight_decay=0.1)
    ids = torch.tensor([3, 7, 3])
    _, logits, _, _ = model(model.initial_latents(3), torch.randint(0, 5, (3, 6)), ids)
    logits.square().mean().backward()
    opt.step()
    changed = model.puzzle_emb.weight.abs().sum(-1) > 0
    assert changed.nonzero().flatten().tolist() == [3, 7]
    # From zero init the first update is exactly -lr * sign(grad): entries are 0 or +-lr.
    row = model.puzzle_emb.weight[3]
    assert torch.all((row == 0) | (row.abs() == torch.tensor(0.01)))


# --------------------------------------------------------------------------------------
# Schedule and optimizer building / exact resume
# --------------------------------------------------------------------------------------


def test_lr_schedule():
    assert lr_at(0, 1.0, 10, 100) == 0.0
    assert lr_at(5, 1.0, 10, 100) == 0.5
    assert lr_at(10, 1.0, 10, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_at(55, 1.0, 10, 100, "cosine", 0.1) == pytest.approx(0.55)  # half way
    assert lr_at(100, 1.0, 10, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_at(70, 1.0, 10, 100, "cosine", 1.0) == 1.0  # official default: ratio 1 = constant
    assert lr_at(70, 1.0, 10, 100, "constant", 0.1) == 1.0


def tiny_model(seed=0):
    torch.manual_seed(seed)
    spec = ModelSpec(hidden_size=16, num_heads=2, layers=1, n_latent_steps=1, n_cycles=2,
                     puzzle_emb_len=1, puzzle_emb_dim=16)
    return build_model(spec, 5, 6, 4)


def train_steps(model, optimizers, ospec, start, stop):
    for step in range(start, stop):
        g = torch.Generator().manual_seed(step)
        inputs, ids = torch.randint(0, 5, (4, 6), generator=g), torch.randint(0, 4, (4,), generator=g)
        set_lr(optimizers, step, ospec, total_steps=10)
        _, logits, _, _ = model(model.initial_latents(4), inputs, ids)
        logits.square().mean().backward()
        for opt, _ in optimizers:
            opt.step()
            opt.zero_grad()


@pytest.mark.parametrize("name", ["adam_atan2", "adamw"])
def test_build_optimizers_and_exact_resume(name):
    ospec = OptimSpec(name=name, lr=1e-2, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    a = tiny_model()
    opts_a = build_optimizers(a, ospec, total_steps=10)
    assert [type(o).__name__ for o, _ in opts_a][1] == "PuzzleSignSGD"
    assert set_lr(opts_a, 0, ospec, 10)[0] == pytest.approx(1e-2 / 2)  # first step: 1/warmup
    train_steps(a, opts_a, ospec, 0, 5)

    # Resume at step 3 from saved state into fresh objects, then compare at step 5.
    b = tiny_model()
    opts_b = build_optimizers(b, ospec, 10)
    train_steps(b, opts_b, ospec, 0, 3)
    saved = (copy.deepcopy(b.state_dict()), [copy.deepcopy(o.state_dict()) for o, _ in opts_b])
    c = tiny_model(seed=123)
    c.load_state_dict(saved[0])
    opts_c = build_optimizers(c, ospec, 10)
    for (o, _), sd in zip(opts_c, saved[1]):
        o.load_state_dict(sd)
    train_steps(c, opts_c, ospec, 3, 5)
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        torch.testing.assert_close(va, vc, rtol=0, atol=0, msg=k)
    assert a.puzzle_emb.weight.abs().sum() > 0


# --------------------------------------------------------------------------------------
# EMA
# --------------------------------------------------------------------------------------


def test_ema_update_swap_and_state():
    model = tiny_model()
    ema = EMA(model, rate=0.9)
    assert "puzzle_emb.weight" not in ema.shadow and "init_y" not in ema.shadow
    w0 = model.lm_head.weight.detach().clone()
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["lm_head.weight"], w0 + 0.1)  # 0.9 w0 + 0.1 (w0 + 1)

    live = model.lm_head.weight.detach().clone()
    with ema.applied(model):
        torch.testing.assert_close(model.lm_head.weight.detach(), w0 + 0.1)
    torch.testing.assert_close(model.lm_head.weight.detach(), live)
    with pytest.raises(RuntimeError), ema.applied(model):
        raise RuntimeError("eval failed")
    torch.testing.assert_close(model.lm_head.weight.detach(), live)  # restored anyway

    other = EMA(tiny_model(seed=1), rate=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.rate == 0.9
    torch.testing.assert_close(other.shadow["lm_head.weight"], w0 + 0.1)
