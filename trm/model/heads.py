"""Inputs and outputs around the recursion: token / position / puzzle embeddings, the LM head
and the halting (Q) head."""

from __future__ import annotations

import torch
from torch import nn

from trm.model.layers import linear, trunc_normal_


class PuzzleEmbedding(nn.Module):
    """Per-puzzle-id embedding table, zero-initialised and stored as a BUFFER (not a Parameter),
    exactly as the official CastedSparseEmbedding:

    - the table can be huge (ARC: ~961k ids x 512), so neither Adam state nor dense gradients
      are affordable; it is trained by sign-SGD on the rows of the current batch only
      (trm.train.optim.PuzzleSignSGD);
    - in training with grad enabled, forward hands out a *local copy* of the batch's rows that
      requires grad (`local_rows`, ids in `local_ids`); the optimizer reads their .grad;
    - in eval, or under no_grad (e.g. the Q-learning target pass), it is a plain lookup, so a
      second forward cannot clobber the rows whose gradient the optimizer will use.
    Parameter counts report it separately (it is excluded from "params", as the papers do).
    """

    def __init__(self, num_ids: int, dim: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_ids, dim))
        self.local_rows: torch.Tensor | None = None
        self.local_ids: torch.Tensor | None = None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.weight[ids]  # advanced indexing: already a copy
        if self.training and torch.is_grad_enabled():
            rows.requires_grad_(True)
            self.local_rows, self.local_ids = rows, ids
        return rows


def token_embedding(vocab_size: int, hidden: int) -> nn.Embedding:
    """Token table with the official init std 1/sqrt(hidden); the model multiplies the whole
    input embedding by sqrt(hidden), so tokens enter at unit scale."""
    emb = nn.Embedding(vocab_size, hidden)
    trunc_normal_(emb.weight, std=hidden**-0.5)
    return emb


def q_head(hidden: int) -> nn.Linear:
    """Halting head on position 0 of y: 2 logits (halt, continue). Weight 0 and bias -5 so that
    sigmoid(q) ~ 0.007 at start: the model begins by never halting early (official init)."""
    head = linear(hidden, 2, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-5.0)
    return head
