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
The record itself (failures.log) is part of the run directory's contract, trm/rundir.py.
"""

from __future__ import annotations

from pathlib import Path

from trm.rundir import last_failure_id


class _NeverFailed:
    def __repr__(self):
        return "never-failed"


NEVER_FAILED = _NeverFailed()


def retry_param(run_dir: str | Path):
    """The train rule's `retry` param (failures.log is written by trm.rundir.record_failure)."""
    fid = last_failure_id(Path(run_dir))
    return NEVER_FAILED if fid is None else f"retry-after:{fid}"
