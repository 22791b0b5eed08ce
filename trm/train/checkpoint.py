"""Atomic files and exact-resume checkpoints.

Everything a run needs to continue bit-for-bit goes into one file: model, EMA, optimizers
(puzzle-embedding optimizer included), schedule position, RNG states, sampler position and
the rolling carry. It is written to a temporary name and renamed, so a kill mid-write leaves
the previous checkpoint intact. Loading uses `torch.load(weights_only=True)`: no pickle.

Identity: each checkpoint carries the run's signature, seed and step budget, and a run
resumes only from its own (a checkpoint copied from another run, or one left in a run
directory whose spec changed, is refused with the reason, never silently continued).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import torch

from trm.config import SpecError
from trm.rundir import LATEST_CHECKPOINT

LATEST = Path(LATEST_CHECKPOINT).name  # in the run's checkpoints/ folder
IDENTITY_KEYS = ("sig", "seed", "total_steps")


class CheckpointMismatch(SpecError):
    """The checkpoint in a run directory was written for another run or step budget, or
    cannot be read (a SpecError: the command line says it in one line)."""


def save(state: dict, ckpt_dir: Path) -> Path:
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / LATEST
    tmp = ckpt_dir / f".{LATEST}.tmp{os.getpid()}"
    try:
        # Our own file object, closed even when torch.save fails: an unlinked temp file that
        # is still open would keep its blocks, and a full disk would stay full.
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError as e:
        # torch's zip writer reports a failed write as a RuntimeError without errno
        # ("unexpected pos ...", "file write failed"): name a full disk for what it is.
        full = _nearly_full(ckpt_dir)
        tmp.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp)) from e
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a checkpoint behind
        raise
    return path


def _nearly_full(folder: Path, below: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(folder).free < below
    except OSError:
        return False


def load(ckpt_dir: Path) -> dict | None:
    path = Path(ckpt_dir) / LATEST
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, foreign pickle, bit rot
        raise CheckpointMismatch(f"{path}: checkpoint cannot be read ({_reason(e, path)}); "
                                 "delete it to train from scratch") from None


def _reason(error: Exception, path: Path) -> str:
    """The first line of why torch could not load `path` (an empty file raises with no
    message at all)."""
    if path.stat().st_size == 0:
        return "the file is empty"
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    return first[:200] or type(error).__name__


def check_identity(state: dict, want: dict, path: Path) -> None:
    """Refuse a checkpoint whose recorded identity differs from `want` (keys of
    IDENTITY_KEYS; a key missing from `want` is not compared). A checkpoint without an
    identity predates it or is foreign: refused too, since nothing says it is this run's."""
    have = state.get("identity")
    if not isinstance(have, dict):
        raise CheckpointMismatch(
            f"{path}: checkpoint records no run identity (signature, seed, step budget), so it "
            "cannot be shown to belong to this run; delete it to train from scratch")
    diff = [f"{k} {have.get(k)!r} (this run: {want[k]!r})" for k in IDENTITY_KEYS
            if k in want and have.get(k) != want[k]]
    if diff:
        raise CheckpointMismatch(
            f"{path}: checkpoint was written for another run: {'; '.join(diff)}. "
            "Delete the run directory (or its checkpoints/) to train this spec from scratch")
