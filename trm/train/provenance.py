"""run_info.json: where, when and with what code a run was made (the non-deterministic
facts; metrics.json holds the deterministic results)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

from trm import config as C
from trm.rundir import interruption_counts
from trm.train import allocator


def git_state() -> dict:
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(C.REPO_ROOT), *args], capture_output=True, text=True, timeout=10
        )

    try:
        sha = git("rev-parse", "HEAD")
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"sha": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("numpy", "trm-bench", "submitit", "snakemake", "numba", "tensorboard", "wandb"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def slurm_env() -> dict:
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT",
            "SLURM_JOB_PARTITION", "SLURM_JOB_NODELIST", "SLURM_NTASKS", "SLURM_JOB_NUM_NODES",
            "CUDA_VISIBLE_DEVICES")
    return {k: os.environ[k] for k in keys if k in os.environ}


def run_info(spec: C.RunSpec, trainer, resumed_from: int) -> dict:
    dev = trainer.device
    return {
        "sig": C.signature(spec),
        "seed": spec.train.seed,
        "git": git_state(),
        "versions": versions(),
        "host": socket.gethostname(),
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "slurm": slurm_env(),
        "requeue_count": int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0),
        # Preemptions and time-outs apart (from the job's USR2 log); "other_requeue" is the
        # rest of requeue_count (`scontrol requeue`, node failures).
        "interruptions": interruption_counts(trainer.run_dir,
                                             int(os.environ.get("SLURM_RESTART_COUNT", 0) or 0)),
        "resumed_from_step": resumed_from,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "_t0": time.time(),
        "data_provenance": getattr(trainer, "data_provenance", None)
        or trainer.train_split.meta.get("provenance", {"kind": "unknown"}),
        "data_dir": str(Path(trainer.data_dir).resolve()),
        # Data parallelism: world size, backend, where the ranks came from (torchrun/SLURM).
        "distributed": trainer.comm.describe() if getattr(trainer, "comm", None) else None,
        "precision": spec.train.precision,
        # The allocator loaded in this process (train.allocator asks; this is what ran).
        "allocator": {"requested": spec.train.allocator, "active": allocator.active()},
        "speed": {"compile": spec.train.compile, "tf32": spec.train.tf32},
    }


def peak_memory_mb(device) -> dict:
    """Peak resident memory of this process (CPU) and peak allocated GPU memory."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def finish(info: dict, trainer) -> dict:
    return {
        **peak_memory_mb(trainer.device),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.time() - info["_t0"], 3),  # this process only
        "train_time_s": round(trainer.train_time, 3),  # all attempts, from the checkpoint
        "steps": trainer.step,
    }
