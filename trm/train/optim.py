"""Optimizers and learning-rate schedule of the official HRM/TRM training.

- AdamATan2 (our own, pure PyTorch) for all trainable parameters. Same update as the official
  CUDA package `adam-atan2` (imoneoi / sapientinc), read from its kernel and its own reference
  test: Adam with the division m / (sqrt(v) + eps) replaced by atan2(m, sqrt(v)) (no eps), and
  scale constants a = b = 1 (the Everett et al. paper suggests a = 1.27; the official package
  does not use it). The PyPI `adam-atan2-pytorch` differs (a = 1.27, weight decay scaled by
  lr / initial lr), so it is NOT a drop-in replacement and we do not depend on it.
- AdamW as the alternative the TRM paper names: torch's single-tensor AdamW, operation for
  operation (so results are bit-identical to `torch.optim.AdamW` on CPU, tested).
- None of them subclasses `torch.optim.Optimizer`: its constructor imports torch._dynamo
  (measured: 1.2 s and 73 MiB of RSS in every training process, for a compiler an eager run
  never uses). `ParamGroupOptimizer` keeps the part we use, and its state_dict() has torch's
  layout, so a checkpoint written with torch's optimizers resumes here unchanged.
- PuzzleSignSGD for the puzzle-embedding buffer: sign-SGD with decoupled weight decay on the
  rows of the current batch only (official CastedSparseEmbeddingSignSGD_Distributed).
- lr_at: linear warmup from 0, then constant or cosine down to min_lr_ratio * lr (official
  cosine_schedule_with_warmup_lr_lambda; min_lr_ratio 1.0 = constant).

The lr is a pure function of the step, so exact resume needs only the optimizers' state_dict()
plus the step counter: call set_lr(optimizers, completed_steps, ...) before every step().
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trm.config import OptimSpec

# --------------------------------------------------------------------------------------
# The optimizer base: param groups, per-parameter state, torch's state_dict layout
# --------------------------------------------------------------------------------------


class ParamGroupOptimizer:
    """One param group (all this project needs) with `defaults` as its hyperparameters and
    `state[p]` per parameter. state_dict() = {"state": {index: {...}}, "param_groups":
    [{hyperparameters..., "params": [index, ...]}]}, the layout of torch.optim.Optimizer."""

    def __init__(self, params, defaults: dict):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        self.defaults = dict(defaults)
        self.param_groups = [dict(self.defaults, params=params)]
        self.state: dict = {}  # keyed by the parameter tensor itself (hashed by identity)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient (`_update`, per optimizer)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError

    def _params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    def state_dict(self) -> dict:
        index = {id(p): i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}: the saved state has other parameter groups "
                             f"({[len(g['params']) for g in groups]} parameters) than this optimizer "
                             f"({[len(g['params']) for g in self.param_groups]})")
        params = self._params()
        saved_order = [i for g in groups for i in g["params"]]
        by_index = dict(zip(saved_order, params))
        for saved, mine in zip(groups, self.param_groups):
            for key in self.defaults:  # the hyperparameters this optimizer reads
                if key in saved:
                    mine[key] = tuple(saved[key]) if isinstance(mine[key], tuple) else saved[key]
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {k: _to_param(v, p, k) for k, v in s.items()}


def _to_param(value, p: torch.Tensor, key: str):
    """A saved state value on `p`'s device, floating state in `p`'s dtype; the step counter
    keeps its own dtype (as torch does), and the tensor is a copy, never the saved one."""
    if not isinstance(value, torch.Tensor):
        return value
    if key == "step" or not value.is_floating_point():
        return value.to(device=p.device, copy=True)
    return value.to(device=p.device, dtype=p.dtype, copy=True)


# --------------------------------------------------------------------------------------
# AdamATan2
# --------------------------------------------------------------------------------------


class AdamATan2(ParamGroupOptimizer):
    """Per element, at step t (1-based):
        p <- p * (1 - lr * wd)                              # decoupled weight decay
        m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
        p <- p - lr * atan2(m / (1 - beta1^t), sqrt(v / (1 - beta2^t)))
    atan2 is bounded by pi/2 and needs no epsilon; it equals m/sqrt(v) for small ratios."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.95), weight_decay: float = 0.1):
        if lr < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad AdamATan2 hyperparameters lr={lr} betas={betas} wd={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        lr, wd = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
        p.mul_(1 - lr * wd)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m_hat = m / (1 - beta1**t)
        v_hat_sqrt = v.sqrt() / math.sqrt(1 - beta2**t)
        p.add_(torch.atan2(m_hat, v_hat_sqrt), alpha=-lr)


# --------------------------------------------------------------------------------------
# AdamW
# --------------------------------------------------------------------------------------


class AdamW(ParamGroupOptimizer):
    """torch.optim.AdamW's default path on CPU (single tensor, no amsgrad), op for op:
        p <- p * (1 - lr * wd);  m.lerp_(g, 1 - beta1);  v <- beta2 v + (1 - beta2) g^2
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    with t a float32 tensor in the state, as torch keeps it (so the states interchange)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"bad AdamW hyperparameters lr={lr} betas={betas} eps={eps} wd={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
        state["step"] += 1
        t = state["step"].item()
        if wd != 0:
            p.mul_(1 - lr * wd)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = lr / (1 - beta1**t)
        denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)


# --------------------------------------------------------------------------------------
# Sign-SGD for the puzzle embeddings
# --------------------------------------------------------------------------------------


class PuzzleSignSGD(ParamGroupOptimizer):
    """Updates only the puzzle-embedding rows used in the last forward pass:
        g_id = sum of the gradients of all batch rows with that id   (duplicates summed)
        w_id <- w_id * (1 - lr * wd) - lr * sign(g_id)
    Rows not in the batch are untouched (no weight decay either), as the official code.
    Reads the local rows / ids that PuzzleEmbedding.forward recorded (see trm.model.heads)."""

    def __init__(self, puzzle_emb: nn.Module, lr: float = 1e-2, weight_decay: float = 0.1):
        self.puzzle_emb = puzzle_emb
        # The table is the optimizer's only "param" so that lr lives in param_groups and
        # state_dict() round-trips like any optimizer; it keeps no other state.
        super().__init__([puzzle_emb.weight], dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        rows, ids = self.puzzle_emb.local_rows, self.puzzle_emb.local_ids
        if rows is None or rows.grad is None:
            return None
        group = self.param_groups[0]
        lr, wd = group["lr"], group["weight_decay"]
        table = self.puzzle_emb.weight  # read here: model.to() may have replaced the tensor
        unique_ids, slot = ids.unique(return_inverse=True)
        grad = torch.zeros(len(unique_ids), rows.shape[-1], dtype=rows.grad.dtype, device=rows.device)
        grad.index_add_(0, slot, rows.grad)
        updated = table[unique_ids] * (1 - lr * wd) - lr * grad.sign()
        table[unique_ids] = updated.to(table.dtype)
        # Consumed: a second step() without a new forward must not re-apply it.
        self.puzzle_emb.local_rows = self.puzzle_emb.local_ids = None
        return None

    def zero_grad(self, set_to_none: bool = True):
        rows = self.puzzle_emb.local_rows
        if rows is not None:
            rows.grad = None


# --------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int,
          schedule: str = "cosine", min_lr_ratio: float = 1.0) -> float:
    """Learning rate for the optimizer step numbered `step` (1-based, the official
    train_state.step after its increment): base_lr * step / warmup during warmup, then
    constant or a half cosine from base_lr to min_lr_ratio * base_lr at total_steps."""
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    cosine = max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return base_lr * (min_lr_ratio + (1 - min_lr_ratio) * cosine)


def build_optimizers(model: nn.Module, spec: OptimSpec, total_steps: int):
    """-> list of (optimizer, base_lr): the main optimizer over every trainable parameter
    (weight decay on all of them, as the official code), then the puzzle-embedding sign-SGD
    if the model has a puzzle table. Build after moving the model to its device."""
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.name == "adam_atan2":
        main = AdamATan2(params, lr=spec.lr, betas=(spec.beta1, spec.beta2),
                         weight_decay=spec.weight_decay)
    elif spec.name == "adamw":
        main = AdamW(params, lr=spec.lr, betas=(spec.beta1, spec.beta2),
                     weight_decay=spec.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {spec.name!r}")
    optimizers = [(main, spec.lr)]
    if getattr(model, "puzzle_emb", None) is not None:
        sign_sgd = PuzzleSignSGD(model.puzzle_emb, lr=spec.puzzle_emb_lr,
                                 weight_decay=spec.puzzle_emb_weight_decay)
        optimizers.append((sign_sgd, spec.puzzle_emb_lr))
    return optimizers


def set_lr(optimizers, completed_steps: int, spec: OptimSpec, total_steps: int) -> list[float]:
    """Set every optimizer's lr for the next step; `completed_steps` = optimizer steps already
    taken (0 before the first). Returns the lrs set (for logging)."""
    lrs = []
    for optimizer, base_lr in optimizers:
        lr = lr_at(completed_steps + 1, base_lr, spec.warmup_steps, total_steps,
                   spec.schedule, spec.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lrs.append(lr)
    return lrs
