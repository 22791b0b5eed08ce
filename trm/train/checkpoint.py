"""Atomic files and exact-resume checkpoints.

Everything a run needs to continue bit-for-bit goes into one file: model, EMA, optimizers
(puzzle-embedding optimizer included), schedule position, RNG states, sampler position and
the rolling carry. It is written to a temporary name and renamed, so a kill mid-write leaves
the previous checkpoint intact. Loading uses `torch.load(weights_only=True)`: no pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trm.files import atomic_write_json, atomic_write_text  # noqa: F401 (re-exported)

LATEST = "latest.pt"


def save(state: dict, ckpt_dir: Path) -> Path:
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / LATEST
    tmp = ckpt_dir / f".{LATEST}.tmp{os.getpid()}"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load(ckpt_dir: Path) -> dict | None:
    path = Path(ckpt_dir) / LATEST
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
