"""Follow-up designs as knobs of the one core (issue K): URM's ConvSwiGLU
(model.ffn_conv_kernel) and CGAR's depth curriculum (train.depth_curriculum)."""

import json

import pytest
import torch

from trm import config as C
from trm.config import ModelSpec
from trm.model import build_model
from trm.model.layers import SwiGLU
from trm.model.recursion import RecursiveReasoningModel
from trm.train import loop

# Official shapes: Sudoku vocab 11, 81 cells, one puzzle id.
SUDOKU = (11, 81, 1)
TRM_MLP = dict(mixer="mlp", pos_encoding="none", layers=2, n_latent_steps=6, n_cycles=3)
SMALL = dict(hidden_size=16, num_heads=2, ffn_multiple=16, puzzle_emb_dim=16, puzzle_emb_len=1,
             n_latent_steps=2, n_cycles=1, n_supervision=2)


# --------------------------------------------------------------------------------------
# ConvSwiGLU: shapes, geometry, parameter counts, kernel 0 untouched
# --------------------------------------------------------------------------------------


def test_conv_swiglu_shapes():
    torch.manual_seed(0)
    ffn = SwiGLU(8, 4.0, multiple=16)  # inner: round(4 * 8 * 2/3) = 21 -> 32
    ffn.add_sequence_conv(2)
    conv = ffn.conv.conv
    assert isinstance(conv, torch.nn.Conv1d)  # FLOP accounting walks nn.Conv1d modules
    assert conv.groups == conv.in_channels == conv.out_channels == 32  # depthwise
    assert conv.weight.shape == (32, 1, 2) and conv.bias.shape == (32,)
    for L in (1, 5, 6):  # odd and even lengths: the crop keeps exactly L positions
        assert ffn(torch.randn(3, L, 8)).shape == (3, L, 8)
    odd = SwiGLU(8, 4.0, multiple=16)
    odd.add_sequence_conv(3)
    assert odd(torch.randn(2, 7, 8)).shape == (2, 7, 8)


def _tap_swiglu(taps: list[float]) -> SwiGLU:
    torch.manual_seed(0)
    ffn = SwiGLU(4, 2.0, multiple=8)
    ffn.add_sequence_conv(len(taps))
    with torch.no_grad():
        ffn.conv.conv.weight.copy_(torch.tensor(taps).expand_as(ffn.conv.conv.weight))
        ffn.conv.conv.bias.zero_()
    return ffn


def test_conv_sits_after_the_gate_with_a_silu_and_kernel_2_is_causal():
    """URM's geometry: padding k//2, first L outputs kept; kernel 2 = taps (t-1, t)."""
    x = torch.randn(2, 5, 4)
    gate, up = _tap_swiglu([0.0, 1.0]).gate_up(x).chunk(2, dim=-1)
    h = torch.nn.functional.silu(gate) * up
    same = _tap_swiglu([0.0, 1.0])  # out[t] = h[t]
    assert torch.allclose(same(x), same.down(torch.nn.functional.silu(h)), atol=1e-6)
    shift = _tap_swiglu([1.0, 0.0])  # out[t] = h[t-1], zero padding before position 0
    shifted = torch.cat((torch.zeros_like(h[:, :1]), h[:, :-1]), dim=1)
    assert torch.allclose(shift(x), shift.down(torch.nn.functional.silu(shifted)), atol=1e-6)


@pytest.mark.parametrize("kernel,reach", [(2, (0, 1)), (3, (-1, 0, 1))])
def test_conv_reach_over_the_sequence(kernel, reach):
    """Changing input position t changes exactly the outputs t + reach: kernel 2 looks back
    one position (causal), kernel 3 one each side."""
    torch.manual_seed(1)
    ffn = SwiGLU(4, 2.0, multiple=8)
    ffn.add_sequence_conv(kernel)
    x = torch.randn(1, 9, 4)
    x2 = x.clone()
    t = 4
    x2[0, t] += 1.0
    changed = ((ffn(x) - ffn(x2)).abs().amax(-1) > 0)[0].nonzero().flatten().tolist()
    assert changed == [t + r for r in reach]


def test_paper_param_count_with_conv_by_hand():
    """TRM-MLP on Sudoku (5,028,866, test_model.py) plus one depthwise conv per block."""
    D, V, inner, positions = 512, 11, 1536, 81 + 16
    seq_mlp = positions * 2 * 512 + 512 * positions  # SwiGLU over 97 positions, inner 512
    channel = D * 2 * inner + inner * D
    base = V * D + 2 * (seq_mlp + channel) + D * V + (D * 2 + 2)  # emb, 2 blocks, lm, q
    assert base == 5_028_866
    conv = inner * 2 + inner  # kernel-2 depthwise weights + one bias per channel
    with torch.device("meta"):
        model = build_model(ModelSpec(**TRM_MLP, ffn_conv_kernel=2), *SUDOKU)
    assert model.param_counts()["params"] == base + 2 * conv == 5_038_082


@pytest.mark.parametrize("kernel", [1, 2, 3])
def test_conv_params_per_block_and_per_network(kernel):
    """Shared TRM: one network of 2 blocks; HRM-like: two networks, 4 blocks each."""
    inner = 48  # hidden 16, expansion 4: round(4 * 16 * 2/3) = 43, up to a multiple of 16
    for knobs, blocks in ((dict(share_weights=True, layers=2), 2),
                          (dict(share_weights=False, layers=4), 8)):
        base = build_model(ModelSpec(**SMALL, **knobs), 6, 9, 1).param_counts()["params"]
        conv = build_model(ModelSpec(**SMALL, **knobs, ffn_conv_kernel=kernel), 6, 9, 1)
        assert conv.param_counts()["params"] - base == blocks * inner * (kernel + 1)
        convs = [m for m in conv.modules() if isinstance(m, torch.nn.Conv1d)]
        assert len(convs) == blocks


def test_kernel_0_is_the_model_as_before():
    """ffn_conv_kernel 0 builds exactly the model the core builds without the knob: same
    state_dict (keys and values) and the same outputs, bit for bit."""
    spec = ModelSpec(**SMALL, mixer="mlp", pos_encoding="none", ffn_conv_kernel=0)
    torch.manual_seed(3)
    ours = build_model(spec, 6, 9, 2)
    torch.manual_seed(3)
    core = RecursiveReasoningModel(spec, 6, 9, 2)  # the constructor alone: no knob applied
    a, b = ours.state_dict(), core.state_dict()
    assert list(a) == list(b) and not any("conv" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    inputs = torch.randint(0, 6, (3, 9))
    ids = torch.tensor([0, 1, 1])
    out_a = ours(ours.initial_latents(3), inputs, ids)
    out_b = core(core.initial_latents(3), inputs, ids)
    assert torch.equal(out_a[1], out_b[1]) and torch.equal(out_a[2], out_b[2])


def test_conv_model_starts_from_the_base_weights_plus_its_convs():
    """Paired comparison: with the same seed every shared weight is the base model's."""
    torch.manual_seed(5)
    base = build_model(ModelSpec(**SMALL), 6, 9, 1).state_dict()
    torch.manual_seed(5)
    conv = build_model(ModelSpec(**SMALL, ffn_conv_kernel=2), 6, 9, 1).state_dict()
    extra = set(conv) - set(base)
    assert extra and all(".mlp.conv." in k for k in extra) and set(base) <= set(conv)
    assert all(torch.equal(base[k], conv[k]) for k in base)


def test_conv_kernel_range_and_signature():
    ok = C.resolve("trm_mlp", "sudoku", "tiny", {"model.ffn_conv_kernel": 9})
    assert ok.model.ffn_conv_kernel == 9
    for bad in (-1, 10):
        with pytest.raises(C.SpecError, match="ffn_conv_kernel"):
            C.resolve("trm_mlp", "sudoku", "tiny", {"model.ffn_conv_kernel": bad})
    base = C.resolve("trm_mlp", "sudoku", "tiny")
    assert C.signature(C.resolve("trm_conv_swiglu", "sudoku", "tiny")) != C.signature(base)


def test_new_knobs_at_their_defaults_keep_existing_signatures():
    """Hashes taken before the two knobs existed: existing run directories keep their names."""
    assert C.signature(C.RunSpec()) == "f1b93a4569"
    # tiny as it was then (since then: EMA 0.99 -> 0.9, 400 -> 600 steps, 22 -> 24 blanks,
    # each a new signature)
    then = {"train.ema_rate": 0.99, "train.steps": 400, "data.blanks": 22}
    assert C.signature(C.resolve("trm_mlp", "sudoku", "tiny", then)) == "d64f92c414"
    assert C.signature(C.resolve("trm_mlp", "sudoku", "tiny")) != "d64f92c414"
    assert C.signature(C.resolve("hrm", "sudoku", "paper")) == "1033d30378"
    # data.max_lookups (pointer) at its default leaves the data signature too: the tiny
    # Sudoku dataset keeps the folder it had before the knob existed.
    assert C.data_signature(C.resolve("trm_mlp", "sudoku", "tiny")) == "79bc7516"
    off_default = C.resolve("trm_mlp", "sudoku", "tiny", {"data.max_lookups": 2})
    assert C.data_signature(off_default) != "79bc7516"


# --------------------------------------------------------------------------------------
# Depth curriculum: validation, schedule, training loop, resume
# --------------------------------------------------------------------------------------

def _stages(*rows):
    return [{"until_fraction": f, "n_latent_steps": n, "n_cycles": T} for f, n, T in rows]


CGAR_TINY = _stages((0.3, 1, 1), (0.6, 2, 1), (1.0, 2, 2))


@pytest.mark.parametrize("stages,message", [
    (_stages((0.5, 1, 1)), "end at until_fraction 1.0"),
    (_stages((0.5, 1, 1), (1.0, 2, 1)), "model's depth"),  # tiny's depth is (2, 2)
    (_stages((0.6, 1, 1), (0.6, 2, 1), (1.0, 2, 2)), "must exceed"),
    (_stages((0.3, 2, 2), (0.6, 1, 1), (1.0, 2, 2)), "shallower"),
    (_stages((0.0, 1, 1), (1.0, 2, 2)), r"\(0, 1\]"),
    (_stages((0.5, 0, 1), (1.0, 2, 2)), ">= 1"),
    ([{"until_fraction": 1.0, "n_latent_steps": 2}], "needs key"),
    ("cgar", "list of mappings"),
])
def test_curriculum_validation(stages, message):
    with pytest.raises(C.SpecError, match=message):
        C.resolve("trm_mlp", "sudoku", "tiny", {"train.depth_curriculum": stages})


def test_curriculum_needs_the_recursion():
    with pytest.raises(C.SpecError, match="arch recursive"):
        C.resolve("direct", "sudoku", "tiny", {"train.depth_curriculum": _stages((1.0, 2, 2))})


def test_curriculum_configs_resolve_at_every_scale_and_round_trip(tmp_path):
    for scale in ("smoke", "tiny", "small", "paper"):
        spec = C.resolve("trm_cgar", "sudoku", scale)
        last = spec.train.depth_curriculum[-1]
        assert (last.n_latent_steps, last.n_cycles) == (spec.model.n_latent_steps, spec.model.n_cycles)
        C.dump_spec(spec, tmp_path / f"{scale}.yaml")
        again = C.load_spec(tmp_path / f"{scale}.yaml")
        assert again.train.depth_curriculum == spec.train.depth_curriculum
        assert C.signature(again) == C.signature(spec)
    paper = C.resolve("trm_cgar", "sudoku", "paper").train.depth_curriculum
    assert [(s.until_fraction, s.n_latent_steps, s.n_cycles) for s in paper] == \
        [(0.3, 2, 1), (0.6, 4, 2), (1.0, 6, 3)]  # CGAR's stages
    base = C.resolve("trm_mlp", "sudoku", "tiny")
    assert C.signature(C.resolve("trm_cgar", "sudoku", "tiny")) != C.signature(base)


def test_depth_schedule_step_ranges():
    spec = C.resolve("trm_mlp", "sudoku", "tiny", {"train.depth_curriculum": CGAR_TINY})
    ranges = [(s["start_step"], s["end_step"], s["n_latent_steps"], s["n_cycles"])
              for s in C.depth_schedule(spec, 400)]
    assert ranges == [(0, 120, 1, 1), (120, 240, 2, 1), (240, 400, 2, 2)]
    clipped = [(s["start_step"], s["end_step"]) for s in C.depth_schedule(spec, 400, steps_run=150)]
    assert clipped == [(0, 120), (120, 150), (150, 150)]
    plain = C.depth_schedule(C.resolve("trm_mlp", "sudoku", "tiny"), 400)
    assert plain == [{"start_step": 0, "end_step": 400, "n_latent_steps": 2, "n_cycles": 2}]


def _smoke_cgar(**over):
    return C.resolve("trm_cgar", "sudoku", "smoke", over)


def test_training_follows_the_schedule_and_evaluates_at_the_model_depth(tmp_path, smoke_data,
                                                                        monkeypatch):
    """smoke trm_cgar: 40 steps, (n, T) = (1, 1) for steps 1-20, then (2, 1)."""
    spec = _smoke_cgar()
    trainer = loop.Trainer(spec, tmp_path / "t", smoke_data)
    calls = []
    trainer.model.net_L.register_forward_hook(lambda *a: calls.append(1))
    depths = []
    for _ in range(spec.train.steps):
        calls.clear()
        trainer.train_step()
        depths.append((trainer.model.n_latent_steps, trainer.model.n_cycles, len(calls)))
    assert depths == [(1, 1, 2)] * 20 + [(2, 1, 3)] * 20  # T(n+1) network calls per step
    assert trainer.training_call_counts() == {"forward_calls_per_step": 2.5,
                                              "grad_calls_per_step": 2.5}
    assert trainer.training_call_counts(steps_run=20) == {"forward_calls_per_step": 2.0,
                                                          "grad_calls_per_step": 2.0}
    plain = loop.Trainer(C.resolve("trm_cgar", "sudoku", "smoke", {"train.depth_curriculum": []}),
                         tmp_path / "p", smoke_data)
    counts = plain.training_call_counts(steps_run=40)
    assert counts == plain.model.call_counts() == {"forward_calls_per_step": 3,
                                                   "grad_calls_per_step": 3}
    assert all(type(v) is int for v in counts.values())
    # Evaluation runs at the model's depth even in the middle of the curriculum.
    trainer.step = 5
    trainer._set_training_depth()
    seen = []
    real = loop.evaluate_steps
    monkeypatch.setattr(loop, "evaluate_steps", lambda model, *a, **k: (
        seen.append((model.n_latent_steps, model.n_cycles)), real(model, *a, **k))[1])
    trainer.evaluate(periodic=True)
    assert seen == [(2, 1)] and (trainer.model.n_latent_steps, trainer.model.n_cycles) == (1, 1)


def test_curriculum_run_records_its_schedule(tmp_path, smoke_data):
    spec = _smoke_cgar()
    metrics = loop.run(spec, tmp_path / "run", smoke_data, progress=False)
    assert metrics["status"] == "ok"
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    rec = info["depth_curriculum"]
    assert [(s["start_step"], s["end_step"], s["forward_calls_per_step"]) for s in rec["stages"]] \
        == [(0, 20, 2), (20, 40, 3)]
    assert rec["mean_forward_calls_per_step"] == 2.5
    logged = [json.loads(line) for line in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert [(r["step"], r["n_latent_steps"]) for r in logged if "loss" in r] == \
        [(10, 1), (20, 1), (30, 2), (40, 2)]
    assert metrics["spec"]["train"]["depth_curriculum"][-1] == \
        {"until_fraction": 1.0, "n_latent_steps": 2, "n_cycles": 1}
    # The curriculum changes what is computed: the same model without it logs other losses.
    plain = C.resolve("trm_cgar", "sudoku", "smoke", {"train.depth_curriculum": []})
    loop.run(plain, tmp_path / "plain", smoke_data, progress=False)
    assert (tmp_path / "plain" / "train.jsonl").read_text() != (tmp_path / "run" / "train.jsonl").read_text()


def test_resume_mid_curriculum_is_exact(tmp_path, smoke_data, monkeypatch):
    """A run that dies at step 34 resumes from its step-30 checkpoint (stage 2), at stage 2's
    depth, and finishes with the bytes of an uninterrupted run."""
    spec = _smoke_cgar(**{"train.checkpoint_interval": 10})
    clean = loop.run(spec, tmp_path / "clean", smoke_data, progress=False)
    assert clean["status"] == "ok"

    real_step = loop.Trainer.train_step

    def dying_step(self):
        if self.step == 34:
            raise KeyboardInterrupt("killed")
        return real_step(self)

    monkeypatch.setattr(loop.Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        loop.run(spec, tmp_path / "killed", smoke_data, progress=False)
    monkeypatch.setattr(loop.Trainer, "train_step", real_step)
    state = torch.load(tmp_path / "killed" / "checkpoints" / "latest.pt", weights_only=False)
    assert state["step"] == 30

    # Restoring the checkpoint puts the model at the restored step's stage at once.
    probe = loop.Trainer(spec, tmp_path / "probe", smoke_data)
    assert (probe.model.n_latent_steps, probe.model.n_cycles) == (2, 1)  # the model's depth
    probe.load_state_dict(state)
    assert (probe.model.n_latent_steps, probe.model.n_cycles) == (2, 1)
    early = torch.load(tmp_path / "clean" / "checkpoints" / "latest.pt", weights_only=False)
    early["step"] = 10
    probe.load_state_dict(early)
    assert (probe.model.n_latent_steps, probe.model.n_cycles) == (1, 1)

    resumed = loop.run(spec, tmp_path / "killed", smoke_data, progress=False)
    assert resumed["status"] == "ok"
    info = json.loads((tmp_path / "killed" / "run_info.json").read_text())
    assert info["resumed_from_step"] == 30
    assert (tmp_path / "killed" / "metrics.json").read_bytes() == \
        (tmp_path / "clean" / "metrics.json").read_bytes()
    assert (tmp_path / "killed" / "train.jsonl").read_text() == \
        (tmp_path / "clean" / "train.jsonl").read_text()
