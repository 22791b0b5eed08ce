"""Losses of the official HRM/TRM training (models/losses.py there), re-derived.

- stablemax cross-entropy (HRM's default), in float64: s(x) = x + 1 for x >= 0 and
  1 / (1 - x) for x < 0 replaces exp(x); log p = log(s(x) / sum s(x)). It grows linearly, not
  exponentially, which avoids the "softmax collapse" of long training on tiny data.
- softmax cross-entropy (float32), the official alternative.
- normalisation: per sequence, the mean over its non-ignored tokens; then SUMMED over the
  batch. The training loop divides the total by the global batch size.
- BCE-with-logits for the halting head, summed over the batch the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_LABEL = -100  # the official IGNORE_LABEL_ID; pass another `ignore_index` if needed


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(s(x) / sum s(x)) in float64.

    Each branch is evaluated on clamped inputs so the branch that torch.where discards can
    never be inf/nan (1/(1-x) at x = 1 would poison the gradient with 0 * inf)."""
    x = logits.to(torch.float64)
    s = torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))
    return torch.log(s / s.sum(dim=dim, keepdim=True))


def _pick(log_probs: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> torch.Tensor:
    valid = labels != ignore_index
    safe = torch.where(valid, labels, 0).long()
    picked = log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, -picked, torch.zeros_like(picked))


def stablemax_cross_entropy(logits, labels, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Per-token loss [...], float64, 0 at ignored labels."""
    return _pick(log_stablemax(logits), labels, ignore_index)


def softmax_cross_entropy(logits, labels, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Per-token loss [...], float32, 0 at ignored labels."""
    return _pick(torch.log_softmax(logits.float(), dim=-1), labels, ignore_index)


def token_losses(logits, labels, kind: str = "stablemax", ignore_index: int = IGNORE_LABEL):
    if kind == "stablemax":
        return stablemax_cross_entropy(logits, labels, ignore_index)
    if kind == "softmax":
        return softmax_cross_entropy(logits, labels, ignore_index)
    raise ValueError(f"unknown loss kind {kind!r}")


def sequence_mean_sum(per_token: torch.Tensor, labels: torch.Tensor,
                      ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Sum over the batch of each sequence's mean over its non-ignored tokens (official
    normalisation: every sequence weighs the same however many cells it has). A sequence with
    no valid token contributes 0."""
    counts = (labels != ignore_index).sum(-1).clamp_min(1)
    return (per_token.sum(-1) / counts).sum()


def lm_loss(logits, labels, kind: str = "stablemax", ignore_index: int = IGNORE_LABEL):
    """Scalar LM loss summed over the batch (divide by the global batch size outside)."""
    return sequence_mean_sum(token_losses(logits, labels, kind, ignore_index), labels, ignore_index)


def halt_bce(q_logits: torch.Tensor, targets: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """BCE-with-logits for the halting head (target: sequence solved / Q-learning target)."""
    return F.binary_cross_entropy_with_logits(q_logits, targets.to(q_logits.dtype), reduction=reduction)
