"""Atomic file writes: a temporary name, fsync, then rename, so a reader (or a resumed run)
never sees half a file. Torch-free, so the waiting SLURM launcher can use it cheaply."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

# `.<name>.tmp<pid>`: the one temp-name scheme of every atomic writer here (and of
# trm.train.checkpoint), so that clean_temp_files can find what a killed writer left behind.
TEMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def temp_name(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """write(f) into a temp file, fsync, rename over `path`. On any failure (a full disk, a
    read-only directory) the temp file is removed and the error propagates: the previous
    file, if any, stays as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_save_npz(path: Path, **arrays) -> None:
    """np.savez_compressed, atomically (predictions.npz is read as complete by the tables)."""
    import numpy as np

    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def clean_temp_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Remove temp files of our atomic writers left by a killed process (any pid but ours).
    Only for folders that one process writes at a time (a run directory while it trains)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*"):
        m = TEMP_RE.match(p.name)
        if m and p.is_file() and int(m["pid"]) != os.getpid():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


DISK_ERRNOS = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system",
               errno.EACCES: "permission denied", errno.EPERM: "not permitted",
               errno.EDQUOT: "disk quota exceeded", errno.EIO: "I/O error"}


def disk_error(exc: BaseException) -> str | None:
    """One line for an error that comes from the disk rather than from the code (full,
    read-only, no permission, quota), or None for any other exception."""
    seen = set()
    while exc is not None and id(exc) not in seen:  # torch/numpy may wrap the OSError
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            where = f" {exc.filename}" if exc.filename else ""
            label, why = DISK_ERRNOS[exc.errno], exc.strerror or str(exc)
            return f"cannot write{where}: {label}" + (f" ({why})" if why.lower() != label else "")
        if isinstance(exc, RuntimeError) and re.search(r"file write failed|failed writing file",
                                                        str(exc)):
            # torch.save's zip writer reports a full disk as a RuntimeError without errno
            return f"cannot write: {str(exc).splitlines()[0]} (disk full?)"
        exc = exc.__cause__ or exc.__context__
    return None


def atomic_write_json(path: Path, obj: Any) -> None:
    """The one JSON layout of metrics.json and run_info.json (sorted keys, indent 2)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
