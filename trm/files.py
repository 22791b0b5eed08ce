"""Atomic file writes: a temporary name, fsync, then rename, so a reader (or a resumed run)
never sees half a file. Torch-free, so the waiting SLURM launcher can use it cheaply."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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
    """The one JSON layout of metrics.json and run_info.json (sorted keys, indent 2)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
