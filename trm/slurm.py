"""submitit launching with re-attachment (the Dora pattern).

The SLURM job id is written into RUN_DIR/submitit/job_id as soon as the job is submitted.
A later launcher for the same run (Snakemake restarted, `--rerun-incomplete`) finds it and,
if SLURM still lists the job, waits for that job instead of submitting a second one.
Waiting has a deadline and falls back on `squeue`, because without accounting submitit
may never see a cancelled job finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from trm import config as C
from trm.train import checkpoint as ckpt

LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED",
               "RESIZING", "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "PREEMPTED"}

# Resource names shared with Snakemake's SLURM plugin -> submitit parameters.
RESOURCE_MAP = {
    "slurm_partition": "slurm_partition",
    "slurm_account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "cpus_per_task": "cpus_per_task",
    "runtime": "timeout_min",
    "gpus": "gpus_per_node",
}


def squeue_state(job_id: str) -> str | None:
    """The job's state as squeue sees it, or None when it has left the queue."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    state = out.stdout.strip().splitlines()
    return state[0].strip() if out.returncode == 0 and state else None


def executor_parameters(spec: C.RunSpec, run_dir: Path, resources: dict) -> dict:
    params = {"name": f"trm-{spec.name}-{spec.data.task}-{C.signature(spec)}-s{spec.train.seed}",
              "timeout_min": 60, "mem_gb": 4, "cpus_per_task": 1}
    for key, value in resources.items():
        if value in (None, ""):
            continue
        if key == "mem_mb":
            params["mem_gb"] = max(1, int(value) // 1024)
        elif key in RESOURCE_MAP:
            params[RESOURCE_MAP[key]] = int(value) if key in ("cpus_per_task", "runtime", "gpus") else value
        elif key in ("signal_delay_s", "max_num_timeout", "wait_deadline_min", "poll_s"):
            continue  # launcher settings, read below
        else:
            raise C.SpecError(f"unknown SLURM resource '{key}' (valid: mem_mb, "
                              f"{', '.join(sorted(RESOURCE_MAP))}, signal_delay_s, max_num_timeout)")
    gpus = int(params.get("gpus_per_node", 0) or 0)
    if gpus > 1:
        params["tasks_per_node"] = gpus  # one task per GPU; ranks from submitit's environment
    return params


def run_submitit(job, spec: C.RunSpec, run_dir: Path, launcher: str, resources: dict) -> dict:
    import submitit

    from trm.launch import finished

    run_dir = Path(run_dir)
    folder = run_dir / "submitit"
    folder.mkdir(parents=True, exist_ok=True)
    id_file = folder / "job_id"
    poll_s = float(resources.get("poll_s", 5))
    cluster = "slurm" if launcher == "slurm" else "local"
    sub_job = None
    if cluster == "slurm" and id_file.exists():
        job_id = id_file.read_text().strip()
        state = squeue_state(job_id)
        if state in LIVE_STATES:
            print(f"re-attaching to SLURM job {job_id} ({state})", flush=True)
            sub_job = submitit.SlurmJob(folder=folder / "%j", job_id=job_id)
    if sub_job is None:
        ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster,
                                   slurm_max_num_timeout=int(resources.get("max_num_timeout", 3)))
        params = executor_parameters(spec, run_dir, resources)
        if cluster == "slurm":
            params["slurm_signal_delay_s"] = int(resources.get("signal_delay_s", 120))
            params["slurm_additional_parameters"] = {"requeue": True}
        else:
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
            params.pop("mem_gb", None)
            params.pop("tasks_per_node", None)
        ex.update_parameters(**params)
        sub_job = ex.submit(job)
        ckpt.atomic_write_text(id_file, str(sub_job.job_id) + "\n")
        print(f"submitted {cluster} job {sub_job.job_id}", flush=True)
    timeout_min = float(resources.get("runtime", 60) or 60)
    deadline_min = float(resources.get("wait_deadline_min", 0) or 0) or (
        timeout_min * (int(resources.get("max_num_timeout", 3)) + 2) + 30)
    return wait(sub_job, run_dir, cluster, poll_s, time.time() + 60 * deadline_min)


def wait(sub_job, run_dir: Path, cluster: str, poll_s: float, deadline: float) -> dict:
    from trm.launch import finished

    gone_since = None
    while True:
        metrics = finished(run_dir)
        if metrics is not None:
            return metrics
        if sub_job.done():
            try:
                return sub_job.result()
            except Exception as e:  # noqa: BLE001
                metrics = finished(run_dir)
                if metrics is not None:
                    return metrics
                raise RuntimeError(f"job {sub_job.job_id} failed: {e}") from e
        if cluster == "slurm":
            # sacct may be missing or lagging: if squeue no longer lists the job and no
            # result shows up within a grace period, it was lost (cancelled, OOM, node failure).
            if squeue_state(sub_job.job_id) is None:
                gone_since = gone_since or time.time()
                if time.time() - gone_since > max(60.0, 6 * poll_s):
                    raise RuntimeError(f"SLURM job {sub_job.job_id} left the queue without a result")
            else:
                gone_since = None
        if time.time() > deadline:
            raise TimeoutError(f"gave up waiting for job {sub_job.job_id} (deadline passed); "
                               "it was not cancelled")
        time.sleep(poll_s)
