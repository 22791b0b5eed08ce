"""Wall time of the embedded default on a fresh clone: README command 1's `snakemake`.

    python benchmarks/bench_default_run.py [--repo .] [--keep] [--out benchmarks/results/default_run.json]

Clones the committed HEAD into a temporary folder (so nothing built here is reused: no
datasets, no runs, no numba cache), runs a bare `snakemake` there with this interpreter's
environment (the clone's own `trm` is put first on the path and checked), and records the
wall time, the per-task and per-status run counts from results/tables/runs.csv, and the
progress lines. Installing the environment is not timed (README command 1's pip steps take
about a minute and do not depend on the project's settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--keep", action="store_true", help="keep the clone (its results/) afterwards")
    ap.add_argument("--out", default="benchmarks/results/default_run.json")
    ap.add_argument("snakemake_args", nargs="*", help="extra arguments for snakemake")
    a = ap.parse_args()

    repo = Path(a.repo).resolve()
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="trm-default-run-"))
    clone = work / "trm-bench"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    # The jobs' shell commands call `python`: put this interpreter's folder first on PATH, so
    # a benchmark started as .venv/bin/python without activating the venv measures the same.
    env = dict(os.environ, PYTHONPATH=str(clone),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    where = subprocess.run([sys.executable, "-c", "import trm; print(trm.__file__)"], cwd=clone,
                           env=env, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(clone)):
        raise SystemExit(f"the clone's trm is not the one imported ({where}); check the install")
    snakemake = [sys.executable, "-m", "snakemake", *a.snakemake_args]
    load_before = os.getloadavg()[0]  # before the run: the machine may be shared
    t0 = time.time()
    proc = subprocess.run(snakemake, cwd=clone, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    log = proc.stdout + proc.stderr
    progress = [line for line in log.splitlines() if line.startswith("[") and " runs" in line]
    result = {
        "wall_s": round(wall, 1), "returncode": proc.returncode, "git_head": head,
        "uncommitted_changes_not_measured": bool(dirty),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_before": load_before, "load_after": os.getloadavg()[0], "progress_tail": progress[-3:],
        # What Snakemake estimated before training (trm/progress.py), to set against wall_s.
        "plan_lines": [line for line in log.splitlines() if line.startswith("[plan]")],
    }
    runs_csv = clone / "results" / "tables" / "runs.csv"
    if runs_csv.exists():
        import pandas as pd

        runs = pd.read_csv(runs_csv).drop_duplicates("run_dir")
        result["runs"] = int(len(runs))
        result["runs_by_task"] = runs.groupby("task").size().to_dict()
        result["runs_by_status"] = runs.groupby("status").size().to_dict()
        result["train_time_s_sum"] = float(runs["train_time_s"].sum())
        result["precision"] = sorted(set(runs.get("precision", pd.Series(dtype=str)).dropna().astype(str)))
    figures = sorted(p.name for p in (clone / "results" / "figures").glob("*.pdf"))
    result["figures"] = figures
    # When each figure appeared, in seconds from the start (the headline studies come first).
    result["figure_at_s"] = {p.name: round(p.stat().st_mtime - t0, 1)
                             for p in sorted((clone / "results" / "figures").glob("*.pdf"))}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if proc.returncode:
        print(log[-4000:], file=sys.stderr)
    if a.keep:
        print(f"kept {clone}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
