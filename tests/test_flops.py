"""FLOP accounting (trm/model/flops.py): a hand count of one small model, the scaling with
n, T, N_sup, batch and steps, torch's own counter, and new product modules counted."""

from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from trm.config import ModelSpec
from trm.model import build_model
from trm.model import flops as F

# A model small enough to count by hand: d = 8, 4 answer tokens + 1 puzzle prefix token
# (5 positions), one block per network, vocab 6.
D, SEQ, PREFIX, VOCAB = 8, 4, 1, 6
P = SEQ + PREFIX


def small_spec(mixer: str, **kw) -> ModelSpec:
    base = dict(mixer=mixer, layers=1, hidden_size=D, num_heads=2, expansion=4.0,
                ffn_multiple=8, pos_encoding="rope" if mixer == "attention" else "none",
                n_latent_steps=2, n_cycles=2, grad_steps="last_cycle", halting="bce",
                n_supervision=3, puzzle_emb_len=PREFIX, puzzle_emb_dim=D)
    return ModelSpec(**{**base, **kw})


# ---- the hand count, every product written out (2·M·N·K), per sample
# Token SwiGLU: inner = round(4·8·2/3) = 21, rounded up to a multiple of 8 -> 24.
#   gate_up [5 x 8] @ [8 x 48]: 2·5·8·48 = 3840;  down [5 x 24] @ [24 x 8]: 2·5·24·8 = 1920
TOKEN_SWIGLU = 2 * 5 * 8 * 48 + 2 * 5 * 24 * 8  # 5760
# Sequence-MLP mixer: a SwiGLU over the 5 positions, one row per channel (8 rows);
#   inner = round(4·5·2/3) = 13 -> 16.  gate_up [8 x 5] @ [5 x 32]: 2·8·5·32 = 2560;
#   down [8 x 16] @ [16 x 5]: 2·8·16·5 = 1280
SEQ_MLP = 2 * 8 * 5 * 32 + 2 * 8 * 16 * 5  # 3840
# Attention: qkv [5 x 8] @ [8 x 24] = 1920; out [5 x 8] @ [8 x 8] = 640;
#   QK^T [5 x 8] @ [8 x 5] summed over heads = 2·5·5·8 = 400; AV [5 x 5] @ [5 x 8] = 400
ATTENTION = 2 * 5 * 8 * 24 + 2 * 5 * 8 * 8 + 2 * 5 * 5 * 8 + 2 * 5 * 5 * 8  # 3360
# Heads, once per supervision step: lm_head on the 4 answer tokens [4 x 8] @ [8 x 6] = 384;
#   q_head on position 0 [1 x 8] @ [8 x 2] = 32
HEADS = 2 * 4 * 8 * 6 + 2 * 1 * 8 * 2  # 416
CALL = {"mlp": SEQ_MLP + TOKEN_SWIGLU, "attention": ATTENTION + TOKEN_SWIGLU}  # 9600, 9120


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_one_step_matches_the_hand_count(mixer):
    model = F.meta_model(small_spec(mixer), VOCAB, SEQ)
    assert F.network_call_flops(model) == CALL[mixer]
    step = F.step_flops(model, training=True)
    # n=2, T=2: T(n+1) = 6 calls, the last cycle (n+1 = 3 calls) and the heads with grad.
    assert step.forward == 6 * CALL[mixer] + HEADS
    assert step.forward_with_grad == 3 * CALL[mixer] + HEADS
    per_sample = (6 * CALL[mixer] + HEADS) + 2 * (3 * CALL[mixer] + HEADS)
    assert F.train_step_flops_per_sample(small_spec(mixer), VOCAB, SEQ) == per_sample
    # 5 optimizer steps at batch 4
    assert F.train_flops(small_spec(mixer), VOCAB, SEQ, 4, 5) == per_sample * 4 * 5
    # Test: 3 supervision steps, every call without grad.
    assert F.test_flops_per_puzzle(small_spec(mixer), VOCAB, SEQ, 3) == 3 * (6 * CALL[mixer] + HEADS)


def test_scaling_with_depth_supervision_batch_and_steps():
    spec = small_spec("mlp")
    call = CALL["mlp"]
    for n, T in [(1, 1), (3, 2), (2, 5)]:
        deep = replace(spec, n_latent_steps=n, n_cycles=T)
        step = F.step_flops(F.meta_model(deep, VOCAB, SEQ))
        assert step.forward - HEADS == T * (n + 1) * call
        assert step.forward_with_grad - HEADS == (n + 1) * call  # last_cycle
        # Test-time depth: set_depth on the trained spec gives the same count as training at it.
        assert (F.test_flops_per_puzzle(spec, VOCAB, SEQ, 4, n_latent_steps=n, n_cycles=T)
                == 4 * step.forward)
    tests = [F.test_flops_per_puzzle(spec, VOCAB, SEQ, k) for k in (1, 2, 8)]
    assert tests[1] == 2 * tests[0] and tests[2] == 8 * tests[0]
    one = F.train_flops(spec, VOCAB, SEQ, 1, 1)
    assert F.train_flops(spec, VOCAB, SEQ, 6, 1) == 6 * one
    assert F.train_flops(spec, VOCAB, SEQ, 6, 7) == 42 * one
    # Gradient windows: all calls, HRM's last two, or none but the heads' backward changes.
    full = F.step_flops(F.meta_model(replace(spec, grad_steps="all"), VOCAB, SEQ))
    assert full.forward_with_grad == full.forward
    one_step = F.step_flops(F.meta_model(replace(spec, grad_steps="one_step"), VOCAB, SEQ))
    assert one_step.forward_with_grad == 2 * call + HEADS


def test_q_learning_adds_a_no_grad_forward_and_separate_nets_cost_the_same():
    bce = small_spec("attention")
    q = replace(bce, halting="q_learning")
    step = F.step_flops(F.meta_model(q, VOCAB, SEQ))
    assert (F.train_step_flops_per_sample(q, VOCAB, SEQ)
            == F.train_step_flops_per_sample(bce, VOCAB, SEQ) + step.forward)
    # HRM-style separate f_L, f_H: twice the weights, the same products per call.
    separate = replace(bce, share_weights=False)
    assert F.step_flops(F.meta_model(separate, VOCAB, SEQ)) == F.step_flops(F.meta_model(bce, VOCAB, SEQ))


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_agrees_with_torch_flop_counter(mixer):
    """torch counts 2·M·N·K per mm/bmm; the math SDPA kernel makes attention two bmm's that
    torch can see (its CPU flash kernel is not in torch's table). Forward and backward."""
    spec = small_spec(mixer, n_latent_steps=3, n_cycles=2)
    batch = 3
    torch.manual_seed(0)
    model = build_model(spec, VOCAB, SEQ, num_puzzle_ids=2)
    inputs = torch.randint(0, VOCAB, (batch, SEQ))
    pids = torch.zeros(batch, dtype=torch.long)
    counted = F.step_flops(F.meta_model(spec, VOCAB, SEQ))

    model.eval()
    with sdpa_kernel(SDPBackend.MATH), torch.no_grad(), FlopCounterMode(display=False) as eval_mode:
        model(model.initial_latents(batch), inputs, pids)
    assert eval_mode.get_total_flops() == batch * counted.forward

    model.train()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as train_mode:
        _, logits, q_halt, _ = model(model.initial_latents(batch), inputs, pids)
        (logits.sum() + q_halt.sum()).backward()
    assert train_mode.get_total_flops() == batch * (counted.forward + 2 * counted.forward_with_grad)


class _ConvBeforeSwiGLU(nn.Module):
    """A depthwise 1-D convolution over the positions before a block's SwiGLU (the shape
    of a ConvSwiGLU knob): counted without any change to the accounting."""

    def __init__(self, mlp: nn.Module, width: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width, bias=False)
        self.mlp = mlp

    def forward(self, x):
        return self.mlp(self.conv(x.transpose(1, 2)).transpose(1, 2))


def test_a_new_conv1d_module_is_counted_automatically():
    model = F.meta_model(small_spec("attention"), VOCAB, SEQ)
    block = model.net_L.blocks[0]
    with torch.device("meta"):
        block.mlp = _ConvBeforeSwiGLU(block.mlp, D, kernel=3)
    # depthwise: each of the 5·8 outputs reads 3 inputs of its own channel: 2·5·8·3 = 240
    assert F.network_call_flops(model) == CALL["attention"] + 2 * 5 * 8 * 3


def test_the_convswiglu_knob_is_counted():
    """model.ffn_conv_kernel (URM's ConvSwiGLU, another agent's knob): a depthwise conv of k
    taps over the 5 positions of the 24 inner channels of the token SwiGLU."""
    if "ffn_conv_kernel" not in ModelSpec.__dataclass_fields__:
        pytest.skip("model.ffn_conv_kernel is not in this checkout yet")
    plain = F.network_call_flops(F.meta_model(small_spec("attention"), VOCAB, SEQ))
    conv = F.network_call_flops(F.meta_model(small_spec("attention", ffn_conv_kernel=3), VOCAB, SEQ))
    assert plain == CALL["attention"]
    assert conv - plain == 2 * 5 * 24 * 3  # 720: 5 positions x 24 channels x 3 taps


def _hand_train_step(n: int, T: int, mixer: str = "mlp") -> int:
    """One optimizer step per sample, last_cycle gradient: all T(n+1) calls + heads forward,
    then 2 x the n+1 gradient calls + heads."""
    return (T * (n + 1) * CALL[mixer] + HEADS) + 2 * ((n + 1) * CALL[mixer] + HEADS)


def test_a_depth_curriculum_is_counted_stage_by_stage():
    """Each optimizer step at its stage's (n, T): half the steps at (1, 1), half at (2, 2);
    a run cut short counts only the steps it took."""
    from trm import config as C

    if not hasattr(C, "depth_schedule"):
        pytest.skip("train.depth_curriculum is not in this checkout yet")
    spec = C.RunSpec(model=small_spec("mlp"))
    spec.train.global_batch_size = 4
    spec.train.depth_curriculum = [C.DepthStage(0.5, 1, 1), C.DepthStage(1.0, 2, 2)]
    full = F.schedule_train_flops(spec, VOCAB, SEQ, steps_run=10, total_steps=10)
    assert full == 4 * (5 * _hand_train_step(1, 1) + 5 * _hand_train_step(2, 2))
    cut = F.schedule_train_flops(spec, VOCAB, SEQ, steps_run=7, total_steps=10)
    assert cut == 4 * (5 * _hand_train_step(1, 1) + 2 * _hand_train_step(2, 2))
    # Without a curriculum: every step at the model's depth (n=2, T=2).
    spec.train.depth_curriculum = []
    assert F.schedule_train_flops(spec, VOCAB, SEQ, 10, 10) == 4 * 10 * _hand_train_step(2, 2)
