"""Exponential moving average of the model's parameters (official TRM models/ema.py, ema=True,
rate 0.999), for evaluation and checkpoints.

Only named_parameters() are averaged: buffers (the puzzle-embedding table, the fixed latent
inits, RoPE tables) are used as they are in the live model, as the official code does.

    ema = EMA(model, rate=0.999)
    ...after each optimizer step:  ema.update(model)
    with ema.applied(model):       # evaluate with the EMA weights, restored afterwards
        evaluate(model)
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, rate: float = 0.999):
        self.rate = rate
        self.shadow = {
            name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow <- rate * shadow + (1 - rate) * param."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().to(self.shadow[name].dtype), 1 - self.rate)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the EMA (e.g. before saving an EMA checkpoint)."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name])

    @contextmanager
    def applied(self, model: nn.Module):
        """Temporarily swap the EMA weights into `model`; the live weights come back on exit,
        even if evaluation raises."""
        live = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in live:
                        p.copy_(live[name])

    def state_dict(self) -> dict:
        return {"rate": self.rate, "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state does not match the model: {sorted(missing)[:5]}")
        self.rate = state["rate"]
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
