"""Launchers: how the Snakemake `train` rule runs one training run.

  inline  in the Snakemake job's own process (laptops, CI)
  local   a submitit LocalExecutor subprocess (same code path as SLURM, no cluster)
  slurm   submitit on SLURM; the job id is kept in the run directory so that a restarted
          Snakemake re-attaches to a live job instead of submitting a second one

Whatever the launcher, the outcome of record is RUN_DIR/metrics.json, written last and
atomically by the training process. A run that raised is recorded as status "failed"
(so the study still renders and shows it); the launcher exits non-zero for it.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

from trm import config as C
from trm.train import checkpoint as ckpt

JOB_FILE = "submitit/job_id"


def finished(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


class TrainJob:
    """A small picklable callable (submitit pickles it by reference): spec path in, metrics
    out. On requeue it simply runs again and resumes from the run's own checkpoint."""

    def __init__(self, spec_path: str, run_dir: str, data_dir: str | None):
        self.spec_path, self.run_dir, self.data_dir = spec_path, run_dir, data_dir

    def __call__(self) -> dict:
        from trm.cli import ensure_data
        from trm.train.loop import run

        spec = C.load_spec(Path(self.spec_path))
        data_dir = ensure_data(spec, self.data_dir)
        return run(spec, Path(self.run_dir), data_dir)

    def checkpoint(self, *args, **kwargs):
        # submitit calls this on preemption / timeout (USR2): requeue the same callable.
        # The checkpoint on disk (written every checkpoint_interval steps) is the state.
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.spec_path, self.run_dir, self.data_dir))


def _record_failure(spec: C.RunSpec, run_dir: Path, error: str) -> dict:
    metrics = {
        "status": "failed",
        "task": spec.data.task,
        "model": spec.name,
        "sig": C.signature(spec),
        "seed": spec.train.seed,
        "error": error[-4000:],
        "spec": C.to_dict(spec),
    }
    ckpt.atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def launch(spec_path: Path, run_dir: Path, launcher: str, data_dir: str | None = None,
           resources: dict | None = None) -> int:
    spec = C.load_spec(spec_path)  # bad specs stop here, before anything is submitted
    run_dir = Path(run_dir)
    done = finished(run_dir)
    if done is not None and done.get("status") == "ok":
        print(f"{run_dir}: already finished")
        return 0
    job = TrainJob(str(spec_path), str(run_dir), data_dir)
    if launcher == "inline":
        try:
            metrics = job()
        except Exception:  # noqa: BLE001 - any crash is recorded as the run's outcome
            metrics = _record_failure(spec, run_dir, traceback.format_exc())
            print(metrics["error"])
    elif launcher in ("local", "slurm"):
        from trm.slurm import run_submitit

        metrics = run_submitit(job, spec, run_dir, launcher, resources or {})
    else:
        raise C.SpecError(f"unknown launcher '{launcher}' (valid: inline, local, slurm)")
    print(json.dumps({k: metrics.get(k) for k in ("status", "steps", "exact_accuracy")}))
    return 0 if metrics.get("status") in ("ok", "diverged") else 1
