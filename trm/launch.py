"""Launchers: how the Snakemake `train` rule runs one training run.

  inline  in the Snakemake job's own process (laptops, CI)
  local   a submitit LocalExecutor subprocess (same job object as SLURM, no cluster)
  slurm   submitit on SLURM; the job id is kept in RUN_DIR/submitit/job_id so that a
          restarted Snakemake re-attaches to a live job instead of submitting a second one
          (see trm/slurm.py for the resource vocabulary, waiting and requeueing)

Whatever the launcher, the outcome of record is RUN_DIR/metrics.json, written last and
atomically by the training process. A run that raised, or whose SLURM job was cancelled,
killed, lost or held too long, is recorded as status "failed" with the reason (so the study
still renders and shows it), and the plain command retries it (workflow/rules/train.smk).
A disk that is full or read-only gives one line naming the file, and a failed record when
the run directory can still be written.
Bad input (spec, resource names or values, a --data folder that is missing or built for
another spec) is rejected before anything runs or is submitted.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

import submitit

from trm import config as C
from trm import rundir
from trm.files import disk_error
from trm.rundir import finished, record_failure

LAUNCHERS = ("inline", "local", "slurm")


class TrainJob(submitit.helpers.Checkpointable):
    """A small picklable callable (submitit pickles it by reference): spec path in, metrics
    out. On preemption, time limit or `scontrol requeue` it simply runs again, and the
    training loop resumes from the run's own checkpoint (RUN_DIR/checkpoints/latest.pt,
    written every train.checkpoint_interval steps)."""

    def __init__(self, spec_path: str, run_dir: str, data_dir: str | None,
                 timeout_min: float | None = None):
        self.spec_path, self.run_dir, self.data_dir = spec_path, run_dir, data_dir
        self.timeout_min = timeout_min  # the per-attempt time limit: tells time-outs apart
        self._started = None

    def __call__(self) -> dict:
        self._started = time.time()
        rank = _export_local_distributed()
        from trm.data.resolve import ensure_data
        from trm.train.loop import run

        spec = C.load_spec(Path(self.spec_path))
        try:
            data_dir = ensure_data(spec, self.data_dir)
            # Every task of a multi-GPU job calls run(): the loop joins the process group
            # the environment describes (SLURM tasks via submitit), and rank 0 writes.
            metrics = run(spec, Path(self.run_dir), data_dir)
        except Exception as e:  # noqa: BLE001 - any crash is recorded as the run's outcome
            if rank != 0:
                raise
            line = disk_error(e)  # a full/read-only disk: one line, not a traceback
            metrics = record_failure(spec, Path(self.run_dir), line or traceback.format_exc())
            print(f"error: {line}" if line else metrics["error"], flush=True)
        if rank == 0:
            # A second, JSON copy for recovery after --rerun-incomplete deleted metrics.json.
            try:
                rundir.write_outcome(Path(self.run_dir), os.environ.get("SLURM_JOB_ID"), metrics)
            except OSError:
                pass  # unwritable run dir: metrics.json could not be written either
        return metrics

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        # submitit calls this on USR2 (preemption, time limit): requeue the same callable.
        # The checkpoint on disk is the state; nothing else needs to travel. The cause is
        # logged so that run_info.json counts preemptions and time-outs apart.
        try:
            rundir.record_interruption(Path(self.run_dir), self.timeout_min, self._started)
        except OSError:
            pass
        return submitit.helpers.DelayedSubmission(
            TrainJob(self.spec_path, self.run_dir, self.data_dir, self.timeout_min))


def _export_local_distributed() -> int:
    """This task's rank. The training loop reads SLURM's task variables itself; a multi-task
    submitit LocalExecutor job gets torch.distributed's env:// variables (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT) exported here."""
    if os.environ.get("SUBMITIT_EXECUTOR") == "local":
        env = submitit.JobEnvironment()
        if env.num_tasks > 1 and "WORLD_SIZE" not in os.environ:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return env.global_rank
    return int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0)


def launch(spec_path: Path, run_dir: Path, launcher: str, data_dir: str | None = None,
           resources: dict | None = None) -> int:
    from trm.resources import parse_resources
    from trm.slurm import JobFailed, JobLost, run_submitit

    if launcher not in LAUNCHERS:
        raise C.SpecError(f"unknown launcher '{launcher}' (valid: {', '.join(LAUNCHERS)})")
    spec = C.load_spec(spec_path)  # bad specs stop here, before anything is submitted
    res = parse_resources(resources)  # so do bad resource names and values
    if data_dir:  # so does a --data folder that is missing or built for another spec
        from trm.data import identity

        identity.require_built(Path(data_dir))
        identity.check_spec(Path(data_dir), spec.data)
    run_dir = Path(run_dir)
    done = finished(run_dir)
    if done is not None and done.get("status") == "ok":
        print(f"{run_dir}: already finished")
        return 0
    if done is not None:
        # A retry: the old record must not pass for the new outcome while the waiter polls
        # for metrics.json (failures.log keeps the history).
        (run_dir / rundir.METRICS).unlink()
    # Absolute paths: a SLURM job starts wherever the cluster puts it.
    job = TrainJob(str(Path(spec_path).resolve()), str(run_dir.resolve()),
                   str(Path(data_dir).resolve()) if data_dir else None, timeout_min=res.runtime)
    if launcher == "inline":
        metrics = job()
    else:
        try:
            metrics = run_submitit(job, spec, run_dir, launcher, res)
        except (JobFailed, JobLost) as e:
            # The job raised outside the training code (the node's Python could not start
            # it, it timed out too many times), or SLURM cancelled, killed, lost or held it:
            # recorded like any crash, so the tables show it and the plain command retries it.
            print(f"error: {e}", flush=True)
            metrics = finished(run_dir) or record_failure(spec, run_dir, str(e))
        except (RuntimeError, TimeoutError) as e:
            # sbatch failed, or waiting timed out (the job lives on): no record, so that a
            # re-run submits again (or re-attaches) and resumes from the checkpoint.
            print(f"error: {e}", flush=True)
            return 1
    print(json.dumps({k: metrics.get(k) for k in ("status", "steps", "exact_accuracy")}))
    if launcher == "inline" and finished(run_dir) is None:
        return 1  # not even a failure could be recorded (said above): not a success
    if metrics.get("status") == "failed":
        # A recorded failure is the run's outcome of record: exit 0 so Snakemake keeps its
        # metrics.json and the tables show the cell as failed. The plain command retries it
        # (from the last checkpoint) once its cause is removed.
        print(f"WARNING: {run_dir} failed; recorded in metrics.json", flush=True)
    return 0 if metrics.get("status") in rundir.STATUSES else 1
