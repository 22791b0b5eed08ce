"""One line per finished run on the terminal, with its accuracy and an estimate of the time
left: `python -m trm.progress RUN_DIR` (called by the train rule after each run).

The workflow writes results/index/progress.json when it starts (Snakefile `onstart`): its
start time and the run directories it may train. The estimate is (runs still without
metrics.json) / (runs finished since the start per second), so it already reflects how many
runs go in parallel. Torch-free and quick: it reads two small JSON files and stats the run dirs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from trm.rundir import METRICS

PROGRESS_FILE = Path("results/index/progress.json")


def start(run_dirs: list[str], path: Path = PROGRESS_FILE) -> None:
    """Record the workflow's start: when, which runs, how many were already finished."""
    done = [d for d in run_dirs if (Path(d) / METRICS).exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"started": time.time(), "run_dirs": sorted(run_dirs),
                               "done_at_start": len(done)}))
    tmp.replace(path)


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def line(run_dir: Path, path: Path = PROGRESS_FILE, now: float | None = None) -> str:
    run_dir = Path(run_dir)
    try:
        m = json.loads((run_dir / METRICS).read_text())
    except (OSError, json.JSONDecodeError):
        m = {"status": "missing"}
    parts = run_dir.parts[-4:]  # task, model, sig, seedK
    what = "/".join(parts)
    status = m.get("status", "?")
    acc = m.get("exact_accuracy")
    result = (f"exact {100 * acc:.1f}%" if status == "ok" and acc is not None
              else f"status {status}" + (f" ({str(m.get('error'))[:80]})" if m.get("error") else ""))
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return f"[run done] {what}: {result}"
    dirs = state["run_dirs"]
    done = sum((Path(d) / METRICS).exists() for d in dirs)
    new = done - state["done_at_start"]
    elapsed = (now or time.time()) - state["started"]
    left = len(dirs) - done
    eta = f", about {_fmt_duration(left * elapsed / new)} left" if new > 0 and left > 0 else ""
    return f"[{done}/{len(dirs)} runs, {_fmt_duration(elapsed)}{eta}] {what}: {result}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for run_dir in args:
        print(line(Path(run_dir)), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ----------------------------------------------------------------------------------------
# The plan: before training, how many runs and about how long (Snakefile onstart, dry runs).
#
# Cost model, in CPU-seconds of jobs: per run, its training FLOPs (trm.model.flops, counted
# from the spec: train.steps x global batch x FLOPs of one optimizer step) at a measured
# throughput, plus a fixed start-up and evaluation cost; per study, its tables and figures.
# Calibrated on measured runs of the embedded default on the project's 2-core machine (fp32,
# tiny scale). Training: 2026-12-06 (HEAD 7cf6a69, a fresh clone, load 0.2 before), 95 runs
# of the default studies summed to 1,980.6 CPU-s for 6.576e13 counted training FLOPs: 33
# GFLOP per CPU-s, within 35% for each task (pointer 23, Maze 31, Sudoku 36, ARC 37, reach
# 42; the control tasks' longer sequences keep the matrix units busier). Start-up and
# evaluation about 4.6 CPU-s a run, tables and figures about 36 CPU-s a study (2026-12-01,
# 130 runs and 8 studies); with these the estimate of that run was 1,318 s on 2 cores
# against 1,277 s measured. An earlier calibration on a machine shared with other work gave
# 24 GFLOP per CPU-s: a busy machine is slower than the line says.
# At d=32 a CPU step is mostly elementwise work that FLOPs do not count, so this holds for
# networks of about that width on a CPU; it is no estimate for a GPU or another scale.
TRAIN_FLOPS_PER_CPU_S = 6.576e13 / 1980.6
START_AND_EVAL_CPU_S_PER_RUN = 600 / 130
RESULTS_CPU_S_PER_STUDY = 290 / 8

TASK_NAMES = {"sudoku": "Sudoku", "maze": "Maze", "arc1": "ARC", "arc2": "ARC-2", "reach": "Reach",
              "pointer": "Pointer"}


def run_cpu_s(train_flops: float) -> float:
    """CPU-seconds of one run's job: training at the calibrated throughput plus start-up
    and evaluation."""
    return train_flops / TRAIN_FLOPS_PER_CPU_S + START_AND_EVAL_CPU_S_PER_RUN


def estimate(train_flops: list[float], n_studies: int, cores: int) -> dict:
    """CPU-seconds of the jobs (runs, and the tables and figures of `n_studies` studies) and
    the wall time on `cores` cores: the work spread over the cores, but never shorter than
    the longest single run (each run is one single-threaded process)."""
    per_run = [run_cpu_s(f) for f in train_flops]
    cpu_s = sum(per_run) + n_studies * RESULTS_CPU_S_PER_STUDY
    wall_s = max(cpu_s / max(1, cores), max(per_run, default=0.0))
    return {"cpu_s": cpu_s, "wall_s": wall_s}


def _about(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 1:
        return f"{max(1, round(seconds))} s"
    if minutes < 120:
        return f"{round(minutes)} min"
    return f"{minutes / 60:.1f} h"


def _round_cpu_s(cpu_s: float) -> str:
    step = 10 if cpu_s < 1000 else 100
    return f"{int(round(cpu_s / step) * step):,}"


def plan_line(tasks: list[str], train_flops: list[float] | None, n_studies: int,
              cores: int, done: int = 0) -> str:
    """'[plan] 97 runs (62 Sudoku, 30 Maze, 5 ARC), about 2,300 CPU-s of jobs; on 8 cores
    about 5 min'. train_flops None: no estimate (a run whose steps are set by epochs)."""
    counts: dict[str, int] = {}
    for task in tasks:
        name = TASK_NAMES.get(task, task)
        counts[name] = counts.get(name, 0) + 1
    split = ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    head = f"[plan] {len(tasks)} runs" + (f" ({split})" if split else "")
    if done:
        head += f", {done} already done"
    if train_flops is None:
        return head + "; no time estimate (a run's steps are set by train.epochs)"
    est = estimate(train_flops, n_studies, cores)
    return (f"{head}, about {_round_cpu_s(est['cpu_s'])} CPU-s of jobs; "
            f"on {cores} core{'s' if cores != 1 else ''} about {_about(est['wall_s'])}")


def flops_cache() -> Path:
    """Where counted FLOPs are kept between plans: the user's cache (shared by checkouts and
    scratch copies of the workflow; entries are keyed by run signature and code stamp)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "trm-bench" / "plan-flops.json"


def _model_code_stamp() -> str:
    """A hash of the code the counts depend on (the model, and the depth curriculum's
    schedule): a cache made before a change to it is not used."""
    import hashlib

    package = Path(__file__).parent
    digest = hashlib.sha1()
    for path in [*sorted((package / "model").glob("*.py")), package / "train" / "curriculum.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def runs_train_flops(runs: list, cache: Path | None = None) -> list[float] | None:
    """Training FLOPs of each run (trm.studies.Run), or None when a run's step count is set
    by train.epochs (known only once its dataset exists). Counting builds each cell's model
    on the meta device (torch, a few seconds for the default); the counts are kept in
    `cache` by run signature (seeds share one), so later plans are quick."""
    if any(r.spec.train.epochs > 0 for r in runs):
        return None
    cache = Path(cache) if cache is not None else flops_cache()
    stamp = _model_code_stamp()
    try:
        stored = json.loads(Path(cache).read_text())
        counts = stored["flops"] if stored.get("model_code") == stamp else {}
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        counts = {}
    missing = {r.sig: r for r in runs if r.sig not in counts}
    if missing:
        from trm.describe import task_shapes
        from trm.model import flops

        for sig, r in missing.items():
            shape = task_shapes(r.spec.data)
            steps = r.spec.train.steps
            counts[sig] = float(flops.schedule_train_flops(
                r.spec, shape["vocab_size"], shape["seq_len"], steps, steps))
        try:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(cache).with_suffix(".tmp")
            tmp.write_text(json.dumps({"model_code": stamp, "flops": counts}))
            tmp.replace(cache)
        except OSError:
            pass  # a cache only: a read-only checkout plans as before, a little slower
    return [counts[r.sig] for r in runs]


def plan(todo: list, n_studies: int, cores: int, done: int = 0,
         cache: Path | None = None) -> str:
    """The [plan] line for the runs to train (trm.studies.Run, one per run directory), the
    tables and figures of `n_studies` studies, and `done` runs that need no training."""
    return plan_line([r.task for r in todo], runs_train_flops(todo, cache), n_studies,
                     cores, done=done)
