"""Atomic files and exact-resume checkpoints.

Everything a run needs to continue bit-for-bit goes into one file: model, EMA, optimizers
(puzzle-embedding optimizer included), schedule position, RNG states, sampler position and
the rolling carry. It is written to a temporary name and renamed, so a kill mid-write leaves
the previous checkpoint intact. Loading uses `torch.load(weights_only=True)`: no pickle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

LATEST = "latest.pt"


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


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
