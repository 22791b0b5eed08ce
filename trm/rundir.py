"""The run directory's contract: what each file in results/runs/<task>/<model>/<sig>/seed<s>/
is called, who writes it, and the readers and writers that more than one module needs.

Torch-free, submitit-free and quick to import (the spec module only when a metrics header
is built): `python -m trm.progress` and the workflow's retry param read run directories
through it. The training code, the launchers and the tables all come
here for a file's name and layout, so none of them has to import another to learn it: the
launcher (trm.launch, trm.slurm) knows the trainer, never the reverse.

Paths are relative to the run directory:

  spec.yaml                the resolved spec (trainer, once the data and checkpoint are accepted)
  checkpoints/latest.pt    the exact-resume checkpoint (trainer, trm/train/checkpoint.py)
  train.jsonl              one line per logged or evaluated step (trainer)
  run_info.json            where, when and with what code (trainer; never compared)
  predictions.npz          per-puzzle correctness at the headline depth (trainer)
  metrics.json             the outcome of record, written last and atomically: its presence
                           means finished (trainer; a failure record from the launcher)
  failures.log             one line per recorded failure: the retry record (launcher)
  interruptions.jsonl      one line per USR2: preemption or time-out (the SLURM job)
  launcher.log             the launcher's output (the workflow's train rule)
  submitit/                submitit's own folder, with three files of ours:
  submitit/job_id            the SLURM job id of record (re-attachment)
  submitit/submissions.log   every submission, attachment and delivery of this run
  submitit/outcome.json      the job's metrics again, for recovery (JSON: never a pickle)
  test_time/<study>.json   one test-time study's record (trm/studies/test_time.py plans it,
                           trm/train/test_time.py writes it)
  test_time/eval.json      `trm eval`'s record, in the same format (trm/train/test_time.py)
  tensorboard/             TRM_TENSORBOARD's event files (trm/train/logging_extras.py)
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from trm.files import atomic_write_json, disk_error

if TYPE_CHECKING:
    from trm import config as C

SPEC = "spec.yaml"
CHECKPOINTS = "checkpoints"
LATEST_CHECKPOINT = "checkpoints/latest.pt"
TRAIN_LOG = "train.jsonl"
RUN_INFO = "run_info.json"
PREDICTIONS = "predictions.npz"
METRICS = "metrics.json"
FAILURES = "failures.log"
INTERRUPTIONS = "interruptions.jsonl"
LAUNCHER_LOG = "launcher.log"
SUBMITIT = "submitit"
JOB_ID = "submitit/job_id"
SUBMISSIONS = "submitit/submissions.log"
OUTCOME = "submitit/outcome.json"
TEST_TIME = "test_time"
TENSORBOARD = "tensorboard"

# The statuses a metrics.json records; "missing" (no file) is the tables' own.
STATUSES = ("ok", "diverged", "failed")


# --------------------------------------------------------------------------- metrics.json
def metrics_header(spec: C.RunSpec, status: str) -> dict:
    """The keys every metrics.json starts with, whoever writes it: which run, and how it ended."""
    from trm import config as C

    return {
        "status": status,
        "task": spec.data.task,
        "model": spec.name,
        "sig": C.signature(spec),
        "seed": spec.train.seed,
    }


def write_metrics(run_dir: Path, metrics: dict) -> None:
    atomic_write_json(Path(run_dir) / METRICS, metrics)


def finished(run_dir: Path) -> dict | None:
    """The run's metrics.json, or None while there is none (or only an unreadable one)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


# --------------------------------------------------------------------------- failures
def note_failure(run_dir: Path, error: str) -> str:
    """Append one line `<id> <time> <reason>` to failures.log; returns the id."""
    fid = uuid.uuid4().hex[:12]
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    reason = (error.strip().splitlines() or ["?"])[-1][:200]
    with open(Path(run_dir) / FAILURES, "a") as f:
        f.write(f"{fid} {stamp} {reason}\n")
    return fid


def last_failure_id(run_dir: Path) -> str | None:
    """The id of the last recorded failure: one open() of a file that usually does not exist."""
    try:
        with open(Path(run_dir) / FAILURES) as f:
            lines = [line for line in f.read().split("\n") if line.strip()]
    except OSError:
        return None
    return lines[-1].split()[0] if lines else None


def record_failure(spec: C.RunSpec, run_dir: Path, error: str) -> dict:
    """metrics.json with status failed and the reason, after a line with a fresh id in
    failures.log, so that the plain command retries the cell (trm/retry.py). When even this
    cannot be written (a read-only or full disk), one line on stderr says so."""
    from trm import config as C

    metrics = {**metrics_header(spec, "failed"), "error": error[-4000:], "spec": C.to_dict(spec)}
    try:
        # The retry note first: a failed record without it would never be retried.
        note_failure(run_dir, error)
        write_metrics(run_dir, metrics)
    except OSError as e:
        print(f"error: {run_dir}: failure not recorded: {disk_error(e) or e}", file=sys.stderr,
              flush=True)
    return metrics


# --------------------------------------------------------------------------- outcome
def write_outcome(run_dir: Path, job_id: str | None, metrics: dict) -> None:
    """Written by the job (rank 0) after metrics.json: the record recovery reads."""
    atomic_write_json(Path(run_dir) / OUTCOME,
                      {"job_id": None if job_id is None else str(job_id), "metrics": metrics})


def read_outcome(run_dir: Path, job_id: str | None = None) -> dict | None:
    """The metrics the job recorded in submitit/outcome.json, if it was written by job
    `job_id` (any job when None); None when absent, unreadable or another job's."""
    try:
        rec = json.loads((Path(run_dir) / OUTCOME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("metrics"), dict):
        return None
    if job_id is not None and str(rec.get("job_id")) != str(job_id):
        return None
    return rec["metrics"]


# --------------------------------------------------------------------------- interruptions
def record_interruption(run_dir: Path, timeout_min: float | None, started: float | None) -> str:
    """Log one USR2 in interruptions.jsonl as "timeout" or "preemption", by submitit's own
    rule (SignalHandler.has_timed_out: at least min(80 %, limit - 10 min) of the time limit
    used). Returns the cause."""
    cause = "preemption"
    if timeout_min and started:
        limit = 60.0 * timeout_min
        if time.time() - started >= min(0.8 * limit, limit - 600):
            cause = "timeout"
    rec = {"cause": cause, "job_id": os.environ.get("SLURM_JOB_ID"),
           "restart": int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0),
           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with open(Path(run_dir) / INTERRUPTIONS, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    return cause


def interruption_counts(run_dir: Path, requeue_count: int = 0) -> dict:
    """Preemptions and time-outs counted apart; requeues with neither (`scontrol requeue`,
    a node failure) are "other"."""
    counts = {"preemption": 0, "timeout": 0}
    try:
        lines = (Path(run_dir) / INTERRUPTIONS).read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            cause = json.loads(line).get("cause")
        except ValueError:
            continue  # a line cut by a kill
        if cause in counts:
            counts[cause] += 1
    counts["other_requeue"] = max(0, int(requeue_count) - counts["preemption"] - counts["timeout"])
    return counts
