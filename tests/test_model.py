"""The model: parameter counts of the official models to the unit, the gradient window proven
from autograd, latents, shapes of every knob combination, fidelity details."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trm.config import ModelSpec
from trm.model import build_model
from trm.model.layers import swiglu_inner_size, trunc_normal_

torch.set_num_threads(1)

# --------------------------------------------------------------------------------------
# Parameter counts at paper scale (official code, executed: shared/notes/reference-costs.md)
# --------------------------------------------------------------------------------------

HRM = dict(layers=4, share_weights=False, n_latent_steps=2, n_cycles=2, grad_steps="one_step",
           puzzle_emb_len=1, halting="q_learning")
TRM_ATT = dict(layers=2, mixer="attention", pos_encoding="rope", puzzle_emb_len=16)
TRM_MLP = dict(layers=2, mixer="mlp", pos_encoding="none", puzzle_emb_len=16)
SUDOKU, MAZE, ARC1 = (11, 81, 1), (6, 900, 1), (12, 900, 960_961)

PAPER_COUNTS = [
    ("hrm-sudoku", HRM, SUDOKU, 27_275_266),
    ("hrm-maze", HRM, MAZE, 27_270_146),
    ("hrm-arc1", HRM, ARC1, 27_276_290),
    ("trm_mlp-sudoku", TRM_MLP, SUDOKU, 5_028_866),
    ("trm_att-sudoku", TRM_ATT, SUDOKU, 6_828_034),
    ("trm_att-maze", {**TRM_ATT, "n_latent_steps": 4}, MAZE, 6_822_914),
    ("trm_att-arc1", {**TRM_ATT, "n_latent_steps": 4}, ARC1, 6_829_058),
]


@pytest.mark.parametrize("name,knobs,task,expected", PAPER_COUNTS, ids=[c[0] for c in PAPER_COUNTS])
def test_paper_param_counts(name, knobs, task, expected):
    vocab, seq_len, n_ids = task
    with torch.device("meta"):  # the ARC puzzle table alone would be 2 GB
        model = build_model(ModelSpec(**knobs), vocab, seq_len, n_ids)
    counts = model.param_counts()
    assert counts["params"] == expected
    assert counts["puzzle_embedding_params"] == n_ids * 512


def test_param_count_on_a_real_device_and_puzzle_table_is_a_zero_buffer():
    model = build_model(ModelSpec(**TRM_MLP), *SUDOKU)
    assert model.param_counts()["params"] == 5_028_866
    names = {n for n, _ in model.named_parameters()}
    assert not any("puzzle" in n for n in names)
    assert "puzzle_emb.weight" in dict(model.named_buffers())
    assert torch.count_nonzero(model.puzzle_emb.weight) == 0


def test_swiglu_inner_rounding():
    assert swiglu_inner_size(512, 4) == 1536  # round(1365.33) -> 1536
    assert swiglu_inner_size(97, 4) == 512  # mlp_t over 81 + 16 positions: round(258.67) -> 512
    assert swiglu_inner_size(64, 4) == 256


def test_trunc_normal_has_requested_std_and_bounds():
    torch.manual_seed(0)
    t = trunc_normal_(torch.empty(200_000), std=0.5)
    assert abs(t.std().item() - 0.5) < 0.005
    # Truncation at 2 "pre-correction" std: 2 * 0.5 / 0.8796
    assert t.abs().max().item() <= 2 * 0.5 / 0.8796 + 1e-6
    assert t.abs().max().item() > 1.0  # beyond 2 * 0.5: the std correction widened the range


# --------------------------------------------------------------------------------------
# Small models for behaviour tests
# --------------------------------------------------------------------------------------

V, L, B, N_IDS = 7, 12, 3, 5


def small(**knobs) -> ModelSpec:
    base = dict(hidden_size=32, num_heads=4, layers=1, expansion=2.0, n_latent_steps=2,
                n_cycles=2, puzzle_emb_len=2, puzzle_emb_dim=48, direct_layers=2)
    base.update(knobs)
    return ModelSpec(**base)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (B, L), generator=g), torch.randint(0, N_IDS, (B,), generator=g)


def make(spec, seed=0):
    torch.manual_seed(seed)
    return build_model(spec, V, L, N_IDS)


# --------------------------------------------------------------------------------------
# Gradient window, proven from autograd: every network call gets its own zero "delta" added
# to each weight (torch.func.functional_call with p + delta_i). Forward values are unchanged,
# and d loss / d delta_i is exactly call i's contribution to the weight gradient.
# --------------------------------------------------------------------------------------


class CallAccounting(torch.nn.Module):
    """Wraps a Network; numbers its calls on a counter shared by all wrapped nets."""

    def __init__(self, net, tag, log):
        super().__init__()
        self.net, self.tag, self.log = net, tag, log

    def forward(self, h, rotary=None):
        deltas = {n: torch.zeros_like(p, requires_grad=True) for n, p in self.net.named_parameters()}
        weights = {n: p + deltas[n] for n, p in self.net.named_parameters()}
        out = torch.func.functional_call(self.net, weights, (h, rotary))
        self.log.append(dict(tag=self.tag, deltas=deltas, out_requires_grad=out.requires_grad,
                             has_graph=out.grad_fn is not None))
        return out


def instrument(model):
    log = []
    model.net_L = CallAccounting(model.net_L, "L", log)
    if model.net_H is not None:
        model.net_H = CallAccounting(model.net_H, "H", log)
    return log


def contribution(call) -> float:
    grads = [d.grad for d in call["deltas"].values()]
    if any(g is None for g in grads):
        assert all(g is None for g in grads)
        return 0.0
    return sum(g.abs().sum().item() for g in grads)


WINDOWS = [("one_step", 2), ("last_cycle", 3), ("last_k", 4), ("all", 6)]  # n=2, T=2: 6 calls


@pytest.mark.parametrize("latents", ["y_z", "single_z", "multi_scale_z"])
@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("grad_steps,k", WINDOWS, ids=[w[0] for w in WINDOWS])
def test_gradient_window_from_autograd(grad_steps, k, share, latents):
    spec = small(grad_steps=grad_steps, grad_last_k=4, share_weights=share, latents=latents)
    model = make(spec)
    model.train()
    log = instrument(model)
    inputs, ids = batch()
    _, logits, q_halt, _ = model(model.initial_latents(B), inputs, ids)
    (logits.square().mean() + q_halt.sum()).backward()

    n_calls = 6
    assert len(log) == n_calls == model.call_counts()["forward_calls_per_step"]
    assert model.call_counts()["grad_calls_per_step"] == k
    for i, call in enumerate(log, start=1):
        inside = i > n_calls - k
        assert call["out_requires_grad"] == inside and call["has_graph"] == inside, i
        assert (contribution(call) > 0) == inside, (i, contribution(call))

    # The per-call contributions account for the whole weight gradient of each net.
    for tag, wrapper in (("L", model.net_L), ("H", model.net_H)):
        if wrapper is None:
            continue
        for name, p in wrapper.net.named_parameters():
            per_call = [c["deltas"][name].grad for c in log if c["tag"] == tag]
            total = sum(g for g in per_call if g is not None)
            torch.testing.assert_close(p.grad, total)


def test_hrm_one_step_gradient_reaches_each_net_only_through_its_last_call():
    model = make(small(share_weights=False, grad_steps="one_step"))
    model.train()
    log = instrument(model)
    inputs, ids = batch()
    _, logits, _, _ = model(model.initial_latents(B), inputs, ids)
    logits.square().mean().backward()
    tags = [c["tag"] for c in log]
    assert tags == ["L", "L", "H", "L", "L", "H"]  # z, z, y per cycle
    with_grad = [i for i, c in enumerate(log) if contribution(c) > 0]
    assert with_grad == [4, 5]  # the last f_L call and the last f_H call


def test_no_graph_at_all_in_eval_even_with_full_backprop_setting():
    model = make(small(grad_steps="all"))
    model.eval()
    log = instrument(model)
    with torch.no_grad():
        _, logits, _, _ = model(model.initial_latents(B), *batch())
    assert not logits.requires_grad
    assert not any(c["has_graph"] for c in log)


def test_gradient_window_changes_gradients_not_values():
    outs = []
    for grad_steps, _ in WINDOWS:
        model = make(small(grad_steps=grad_steps, grad_last_k=4))
        lat, logits, q, _ = model(model.initial_latents(B), *batch())
        outs.append((lat, logits, q))
    for lat, logits, q in outs[1:]:
        torch.testing.assert_close(logits, outs[0][1])
        torch.testing.assert_close(q, outs[0][2])
        for a, b in zip(lat, outs[0][0]):
            torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------
# The recurrences against hand-written references
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("latents,layout", [("y_z", "fixed6"), ("single_z", "fixed6"),
                                            ("multi_scale_z", "fixed6"), ("multi_scale_z", "per_step")])
def test_recurrence_matches_reference(latents, layout):
    n, T = 3, 2
    model = make(small(latents=latents, share_weights=False, n_latent_steps=n, n_cycles=T,
                       multi_scale_layout=layout))
    model.eval()
    inputs, ids = batch()
    lat0 = model.initial_latents(B)
    with torch.no_grad():
        got_lat, got_logits, _, _ = model(lat0, inputs, ids)
        x = model.embed_inputs(inputs, ids)
        fL = lambda h: model.net_L(h, model.rotary)  # noqa: E731
        fH = lambda h: model.net_H(h, model.rotary)  # noqa: E731
        if latents == "y_z":
            y, z = lat0
            for _ in range(T):
                for _ in range(n):
                    z = fL(z + y + x)
                y = fH(y + z)
            want, out = (y, z), y
        elif latents == "single_z":
            (z,) = lat0
            for _ in range(T):
                for _ in range(n):
                    z = fL(z + x)
                z = fH(z)
            want, out = (z,), z
        else:
            y, zs = lat0[0], list(lat0[1:])
            # per_step: n + 1 latent features; fixed6 (official trm_hier6): always y + six z's,
            # of which only the first n are ever rewritten.
            assert len(zs) == (n if layout == "per_step" else 6)
            for _ in range(T):
                for k in range(n):
                    zs[k] = fL(sum(zs) + y + x)
                y = fH(y + sum(zs))
            want, out = (y, *zs), y
            if layout == "fixed6":
                for k in range(n, 6):
                    torch.testing.assert_close(got_lat[1 + k], lat0[1 + k], rtol=0, atol=0)
    for a, b in zip(got_lat, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_logits, model.lm_head(out[:, 2:]).float(), rtol=1e-5, atol=1e-5)


def test_transformer_act_refines_the_carry_and_direct_ignores_it():
    inputs, ids = batch()
    act = make(small(arch="transformer_act"))
    lat = act.initial_latents(B)
    lat1, logits1, _, _ = act(lat, inputs, ids)
    _, logits2, _, _ = act(lat1, inputs, ids)
    assert act.call_counts() == {"forward_calls_per_step": 1, "grad_calls_per_step": 1}
    assert not torch.allclose(logits1, logits2)  # y is carried and fed back: y = f(y + x)

    direct = make(small(arch="direct"))
    lat = direct.initial_latents(B)
    lat1, logits1, _, _ = direct(lat, inputs, ids)
    _, logits2, _, _ = direct(lat1, inputs, ids)
    torch.testing.assert_close(logits1, logits2)  # y = f(x): no recursion, nothing carried
    assert len(direct.net_L.blocks) == 2  # direct_layers


# --------------------------------------------------------------------------------------
# Shapes of every combination; latents; heads
# --------------------------------------------------------------------------------------

COMBOS = list(itertools.product(["recursive", "direct", "transformer_act"],
                                ["y_z", "single_z", "multi_scale_z"],
                                ["attention", "mlp"], ["rope", "learned", "none"]))


@pytest.mark.parametrize("arch,latents,mixer,pos", COMBOS)
def test_shapes_every_combination(arch, latents, mixer, pos):
    halting = "q_learning" if pos == "rope" else "bce"
    spec = small(arch=arch, latents=latents, mixer=mixer, pos_encoding=pos, halting=halting)
    model = make(spec)
    model.train()
    inputs, ids = batch()
    lat = model.initial_latents(B, "cpu")
    # multi_scale_z defaults to the official fixed six z's (plus y).
    n_lat = {"y_z": 2, "single_z": 1, "multi_scale_z": 7}[latents] if arch == "recursive" else 1
    assert len(lat) == n_lat
    new_lat, logits, q_halt, q_continue = model(lat, inputs, ids)
    assert len(new_lat) == n_lat
    for t in new_lat:
        assert t.shape == (B, L + 2, 32) and not t.requires_grad and t.grad_fn is None
    assert logits.shape == (B, L, V) and logits.dtype == torch.float32
    assert q_halt.shape == (B,) and q_halt.dtype == torch.float32
    if halting == "q_learning":
        assert q_continue.shape == (B,)
    else:
        assert q_continue is None
    (logits.mean() + q_halt.mean()).backward()
    assert model.lm_head.weight.grad is not None


def test_no_puzzle_embedding_means_no_prefix():
    model = make(small(puzzle_emb_dim=0))
    assert model.puzzle_emb is None and model.prefix_len == 0
    assert model.param_counts()["puzzle_embedding_params"] == 0
    lat = model.initial_latents(B)
    assert lat[0].shape == (B, L, 32)
    _, logits, _, _ = model(lat, *batch())
    assert logits.shape == (B, L, V)


def test_initial_and_reset_latents():
    model = make(small())
    lat = model.initial_latents(B)
    torch.testing.assert_close(lat[0][1, 5], model.init_y)
    torch.testing.assert_close(lat[1][2, 0], model.init_z)
    assert not torch.allclose(model.init_y, model.init_z)
    assert "init_y" in model.state_dict() and "init_y" not in dict(model.named_parameters())

    moved, _, _, _ = model(lat, *batch())
    reset = torch.tensor([True, False, True])
    back = model.reset_latents(moved, reset)
    for name, before, after in zip(["y", "z"], moved, back):
        init = getattr(model, f"init_{name}")
        assert torch.equal(after[0], init.expand_as(after[0]))
        assert torch.equal(after[2], init.expand_as(after[2]))
        assert torch.equal(after[1], before[1])


def test_fixed_latent_init_is_unit_std():
    torch.manual_seed(0)
    model = build_model(small(hidden_size=512, num_heads=8), V, L, N_IDS)
    assert abs(model.init_y.std().item() - 1.0) < 0.1


def test_q_head_starts_at_minus_five_for_any_input():
    model = make(small())
    _, _, q_halt, _ = model(model.initial_latents(B), *batch())
    torch.testing.assert_close(q_halt, torch.full((B,), -5.0))


def test_input_embedding_scale_prefix_padding_and_learned_positions():
    model = make(small(pos_encoding="none", puzzle_emb_dim=48))  # 48 < 2 prefix tokens * 32
    with torch.no_grad():
        model.puzzle_emb.weight.copy_(torch.arange(N_IDS * 48, dtype=torch.float32).view(N_IDS, 48))
    inputs, ids = batch()
    x = model.embed_inputs(inputs, ids)
    s = math.sqrt(32)
    torch.testing.assert_close(x[:, 2:], s * model.token_emb.weight[inputs])
    rows = model.puzzle_emb.weight[ids]
    torch.testing.assert_close(x[:, 0], s * rows[:, :32])
    torch.testing.assert_close(x[:, 1, :16], s * rows[:, 32:])
    assert torch.count_nonzero(x[:, 1, 16:]) == 0  # zero padding up to prefix_len * hidden

    learned = make(small(pos_encoding="learned"))
    x = learned.embed_inputs(inputs, ids)
    tok = learned.token_emb.weight[inputs]
    torch.testing.assert_close(x[:, 2:], s * 0.707106781 * (tok + learned.pos_emb[2:]))


def test_puzzle_embedding_local_rows_only_when_training_with_grad():
    model = make(small())
    inputs, ids = batch()
    lat = model.initial_latents(B)
    model.eval()
    model(lat, inputs, ids)
    assert model.puzzle_emb.local_rows is None

    model.train()
    _, logits, _, _ = model(lat, inputs, ids)
    rows = model.puzzle_emb.local_rows
    assert rows is not None and rows.requires_grad and rows.is_leaf
    assert torch.equal(model.puzzle_emb.local_ids, ids)
    with torch.no_grad():  # e.g. the Q-learning target pass: must not replace the rows
        model(lat, inputs, ids)
    assert model.puzzle_emb.local_rows is rows
    logits.square().mean().backward()
    assert rows.grad is not None and rows.grad.abs().sum() > 0
    assert model.puzzle_emb.weight.grad is None


def test_rope_is_used_by_attention_and_changes_outputs():
    inputs, ids = batch()
    outs = {}
    for pos in ("rope", "none"):
        model = make(small(pos_encoding=pos))
        assert (model.rotary is not None) == (pos == "rope")
        outs[pos] = model(model.initial_latents(B), inputs, ids)[1]
    assert not torch.allclose(outs["rope"], outs["none"])


def test_bf16_autocast_keeps_float32_outputs():
    model = make(small())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lat, logits, q_halt, _ = model(model.initial_latents(B), *batch())
    assert logits.dtype == torch.float32 and q_halt.dtype == torch.float32
    assert torch.isfinite(logits).all()
    model.reset_latents(lat, torch.ones(B, dtype=torch.bool))


def test_multi_scale_layouts_official_six_or_one_per_step():
    from trm import config as C

    official = C.resolve("trm_multiscale_z", "sudoku", "smoke", {"model.n_latent_steps": 2})
    assert official.model.multi_scale_layout == "fixed6"
    assert make(official.model).latent_names == ["y", "z1", "z2", "z3", "z4", "z5", "z6"]
    ours = C.resolve("trm_multiscale_z", "sudoku", "smoke",
                     {"model.n_latent_steps": 2, "model.multi_scale_layout": "per_step"})
    assert make(ours.model).latent_names == ["y", "z1", "z2"]
    assert C.signature(official) != C.signature(ours)
    with pytest.raises(C.SpecError, match="multi_scale_layout"):
        C.resolve("trm_multiscale_z", "sudoku", "smoke", {"model.n_latent_steps": 7})


@pytest.mark.parametrize("latents", ["y_z", "single_z", "multi_scale_z"])
def test_set_depth_runs_the_same_weights_as_a_model_built_at_that_depth(latents):
    """Test-time depth and a depth curriculum change (n, T) of a trained model: the result
    must be what a model built at that depth computes with the same weights."""
    inputs, pids = batch()
    built = make(small(latents=latents, n_latent_steps=3, n_cycles=1))
    moved = make(small(latents=latents, n_latent_steps=2, n_cycles=2))
    moved.load_state_dict(built.state_dict())
    moved.set_depth(3, 1)
    assert moved.call_counts() == built.call_counts()
    a = built(built.initial_latents(B), inputs, pids)
    b = moved(moved.initial_latents(B), inputs, pids)
    assert torch.equal(a[1], b[1]) and all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
    # ... and it differs from the depth it was built at (the knob is not a no-op).
    moved.set_depth(2, 2)
    c = moved(moved.initial_latents(B), inputs, pids)
    assert not torch.equal(a[1], c[1])


def test_set_depth_refuses_what_the_latents_cannot_carry():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        make(small()).set_depth(0, 2)
    with pytest.raises(ValueError, match="carries 6 z's"):
        make(small(latents="multi_scale_z")).set_depth(7, 1)
    with pytest.raises(ValueError, match="carries 2 z's"):
        make(small(latents="multi_scale_z", multi_scale_layout="per_step")).set_depth(3, 1)
