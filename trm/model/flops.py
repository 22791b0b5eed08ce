"""Compute accounting: FLOPs COUNTED from the model's shapes and calls, never measured.

What is counted: matrix products only, at 2·M·N·K FLOPs each (one multiply and one add per
term), the convention of torch.utils.flop_counter and of most papers:
- every nn.Linear (token-wise SwiGLU, attention's q/k/v and output projections, the
  sequence-MLP mixer, whose SwiGLU runs over the sequence axis: rows = channels, width =
  positions), the lm_head (on the seq_len answer tokens) and the q_head (on position 0),
  both once per supervision step;
- every nn.Conv1d (2 · out elements · in_channels/groups · kernel), so a depthwise
  convolution inside the SwiGLU is counted as soon as it is an nn.Conv1d module;
- attention's two products inside scaled_dot_product_attention, QK^T and AV:
  2 · 2·L·L·D per sample for L positions and width D (summed over heads).
Excluded, on purpose: elementwise work (RMSNorm, SiLU and the gate product, residual adds,
the input-injection sums, RoPE, softmax, biases, embedding lookups, the loss, EMA and the
optimizer). At d=32 that work is most of a CPU step's time, so these counts are a measure
of arithmetic, not a prediction of wall time.

How: the model's own forward runs once at batch 1 on the `meta` device (shapes, no data, no
arithmetic), and every module of a type in MODULE_FLOPS adds its count from the shapes it
sees; the grad mode at the moment of the call says whether that call carries gradient
(the recursion runs its early calls under no_grad). So a new knob that changes which calls
run, or their shapes, is counted without changes here. To count a new kind of product (a
functional conv, another attention), add its module type and a rule to MODULE_FLOPS.

Training: backward ≈ 2 × the forward FLOPs of the calls that carry gradient (input and
weight gradients, one product each); no-grad calls have no backward. One optimizer step
(trm.train.loop.Trainer.train_step) runs ONE supervision step forward per slot, its
backward, and, with halting "q_learning" (HRM), a second full no-grad forward for the
Q-learning target. Evaluation runs every test example through all N_sup steps with no grad
(trm.train.evaluate), at the test-time depth (n, T) set by model.set_depth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from trm import config as C
from trm.model.layers import Attention
from trm.train.curriculum import depth_schedule


def linear_flops(module: nn.Linear, inputs: tuple, output) -> int:
    """2 · rows · in · out: every input row times the weight (bias excluded)."""
    return 2 * inputs[0].numel() * module.out_features


def conv1d_flops(module: nn.Conv1d, inputs: tuple, output) -> int:
    """2 · output elements · (in_channels / groups) · kernel size (bias excluded)."""
    per_output = (module.in_channels // module.groups) * module.kernel_size[0]
    return 2 * output.numel() * per_output


def attention_product_flops(module: Attention, inputs: tuple, output) -> int:
    """QK^T and AV: 2·B·L·L·D each. The projections are nn.Linear children, counted apart."""
    batch, length, width = inputs[0].shape
    return 2 * (2 * batch * length * length * width)


# Module types whose forward carries matrix products, and how many FLOPs one call costs.
MODULE_FLOPS: dict[type, Callable[[nn.Module, tuple, object], int]] = {
    nn.Linear: linear_flops,
    nn.Conv1d: conv1d_flops,
    Attention: attention_product_flops,
}


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one supervision step (one model forward) for ONE sample."""

    forward: int  # every network call and both heads
    forward_with_grad: int  # the part that runs with autograd (its backward is counted)
    network_calls: int
    grad_calls: int


class _Counter:
    """Forward hooks on every counted module; sorts each call by its grad mode."""

    def __init__(self, model: nn.Module):
        self.total = 0
        self.with_grad = 0
        self.handles = []
        for module in model.modules():
            rule = next((r for t, r in MODULE_FLOPS.items() if isinstance(module, t)), None)
            if rule is not None:
                self.handles.append(module.register_forward_hook(self._hook(rule)))

    def _hook(self, rule):
        def hook(module, inputs, output):
            flops = int(rule(module, inputs, output))
            self.total += flops
            if torch.is_grad_enabled():
                self.with_grad += flops
        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def meta_model(spec: C.ModelSpec, vocab_size: int, seq_len: int) -> nn.Module:
    """The model built on the meta device (no memory; one puzzle id: the table's size does
    not change any product)."""
    from trm.model import build_model

    with torch.device("meta"):
        return build_model(spec, vocab_size, seq_len, num_puzzle_ids=1)


def step_flops(model: nn.Module, training: bool = True) -> StepFlops:
    """Count one supervision step of `model` (built on meta, at its current set_depth) for
    one sample. training=True: the train-mode forward with autograd on, so calls run with
    or without gradient as in a training step; False: eval mode under no_grad."""
    was_training = model.training
    model.train(training)
    counter = _Counter(model)
    try:
        latents = model.initial_latents(1, "meta")
        inputs = torch.zeros(1, model.seq_len, dtype=torch.long, device="meta")
        puzzle_ids = torch.zeros(1, dtype=torch.long, device="meta")
        with torch.set_grad_enabled(training):
            model(latents, inputs, puzzle_ids)
    finally:
        counter.close()
        model.train(was_training)
    return StepFlops(counter.total, counter.with_grad if training else 0,
                     model.n_calls, model.n_grad_calls if training else 0)


def network_call_flops(model: nn.Module) -> int:
    """One call of f_L on one sample (all of its blocks): the unit the recursion repeats."""
    width = model.spec.hidden_size
    positions = model.seq_len + model.prefix_len
    counter = _Counter(model.f_L)
    try:
        with torch.no_grad():
            model.f_L(torch.zeros(1, positions, width, device="meta"), model.rotary)
    finally:
        counter.close()
    return counter.total


def _depth(spec: C.ModelSpec, n_latent_steps: int | None, n_cycles: int | None):
    return (n_latent_steps or spec.n_latent_steps, n_cycles or spec.n_cycles)


@functools.lru_cache(maxsize=512)
def _per_sample_counts(spec_key: str, vocab_size: int, seq_len: int, n: int, T: int):
    """(training FLOPs of one optimizer step, test FLOPs of one supervision step), per
    sample, at depth (n, T); cached, since every seed of a cell (and every runs-table row)
    asks for the same numbers. spec_key is the ModelSpec's repr (all its fields)."""
    spec = _SPECS[spec_key]
    model = meta_model(spec, vocab_size, seq_len)
    if spec.arch == "recursive":
        model.set_depth(n, T)
    train = step_flops(model, training=True)
    per_step = train.forward + 2 * train.forward_with_grad
    if spec.halting == "q_learning":
        per_step += train.forward  # Trainer.train_step's second, no-grad segment
    return per_step, step_flops(model, training=False).forward


_SPECS: dict[str, C.ModelSpec] = {}


def _counts(spec: C.ModelSpec, vocab_size: int, seq_len: int, n=None, T=None) -> tuple[int, int]:
    key = repr(spec)
    _SPECS.setdefault(key, spec)
    return _per_sample_counts(key, int(vocab_size), int(seq_len), *_depth(spec, n, T))


def train_step_flops_per_sample(spec: C.ModelSpec, vocab_size: int, seq_len: int,
                                n_latent_steps: int | None = None,
                                n_cycles: int | None = None) -> int:
    """One optimizer step for one slot of the batch: forward + 2 × forward-with-grad, plus
    the no-grad Q-target forward when halting is q_learning (at the spec's depth, or n, T)."""
    return _counts(spec, vocab_size, seq_len, n_latent_steps, n_cycles)[0]


def train_flops(spec: C.ModelSpec, vocab_size: int, seq_len: int, batch_size: int,
                steps: int) -> int:
    """Training FLOPs of `steps` optimizer steps at global batch `batch_size` and the spec's
    depth (periodic evaluation excluded: it is test compute, test_flops_per_puzzle ×
    examples). A run with a depth curriculum: schedule_train_flops."""
    return train_step_flops_per_sample(spec, vocab_size, seq_len) * batch_size * steps


def schedule_train_flops(spec: C.RunSpec, vocab_size: int, seq_len: int, steps_run: int,
                         total_steps: int) -> int:
    """Training FLOPs of a run's first `steps_run` optimizer steps, each at the depth its
    stage of train.depth_curriculum trains at (trm/train/curriculum.py; one stage at the
    model's depth without a curriculum)."""
    m = spec.model
    stages = depth_schedule(spec, total_steps, steps_run)
    per_sample = sum(
        (st["end_step"] - st["start_step"])
        * train_step_flops_per_sample(m, vocab_size, seq_len, st["n_latent_steps"], st["n_cycles"])
        for st in stages)
    return per_sample * spec.train.global_batch_size


def test_flops_per_puzzle(spec: C.ModelSpec, vocab_size: int, seq_len: int,
                          n_supervision: int, n_latent_steps: int | None = None,
                          n_cycles: int | None = None) -> int:
    """Inference FLOPs of one test example (one sequence) through n_supervision steps at
    depth (n, T) (the spec's when not given). ARC votes over augmented variants, each its
    own example: a task costs this × its variants."""
    return _counts(spec, vocab_size, seq_len, n_latent_steps, n_cycles)[1] * n_supervision


def run_flops(spec: C.RunSpec, vocab_size: int, seq_len: int, steps_run: int,
              total_steps: int | None = None, n_supervision_eval: int | None = None) -> dict:
    """The two runs-table numbers of one run: training FLOPs over the steps it ran (its
    curriculum followed), and test FLOPs per example at the headline N_sup of its
    evaluation (always at the model's own depth, as trm.train.loop evaluates)."""
    n_sup = n_supervision_eval or spec.eval.n_supervision or spec.model.n_supervision
    return {
        "train_flops": schedule_train_flops(spec, vocab_size, seq_len, steps_run,
                                            total_steps if total_steps else steps_run),
        "test_flops_per_puzzle": test_flops_per_puzzle(spec.model, vocab_size, seq_len, n_sup),
    }
