"""The plain command retries a failed cell.

A recorded failure (metrics.json with status "failed": a crash, a full disk, a cancelled,
killed or held SLURM job) stays in place so that the tables show it. To have the next plain
`snakemake` run that cell again, every recorded failure also appends a line with a fresh id
to RUN_DIR/failures.log, and the train rule has a param that is the last of these ids:

* a new failure changes the param, so Snakemake's params rerun trigger reruns the cell;
* a success after a retry keeps it, so the cell is not rerun again;
* a run that never failed gets NEVER_FAILED, which is not a builtin type, so Snakemake leaves
  it out of the params it records and compares: adding the param reruns nothing.

Torch-free and submitit-free: the workflow calls retry_param for every run at planning.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

FAILURES_FILE = "failures.log"


class _NeverFailed:
    def __repr__(self):
        return "never-failed"


NEVER_FAILED = _NeverFailed()


def note_failure(run_dir: Path, error: str) -> str:
    """Append one line `<id> <time> <reason>`; returns the id."""
    fid = uuid.uuid4().hex[:12]
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    reason = (error.strip().splitlines() or ["?"])[-1][:200]
    with open(Path(run_dir) / FAILURES_FILE, "a") as f:
        f.write(f"{fid} {stamp} {reason}\n")
    return fid


def retry_param(run_dir: str | Path):
    """The train rule's `retry` param: one open() of a file that usually does not exist."""
    try:
        with open(Path(run_dir) / FAILURES_FILE) as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
    except OSError:
        return NEVER_FAILED
    return f"retry-after:{lines[-1].split()[0]}" if lines else NEVER_FAILED
