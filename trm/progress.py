"""One line per finished run on the terminal, with its accuracy and an estimate of the time
left: `python -m trm.progress RUN_DIR` (called by the train rule after each run).

The workflow writes results/index/progress.json when it starts (Snakefile `onstart`): its
start time and the run directories it may train. The estimate is (runs still without
metrics.json) / (runs finished since the start per second), so it already reflects how many
runs go in parallel. Torch-free and quick: it reads two small JSON files and stats the run dirs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

PROGRESS_FILE = Path("results/index/progress.json")


def start(run_dirs: list[str], path: Path = PROGRESS_FILE) -> None:
    """Record the workflow's start: when, which runs, how many were already finished."""
    done = [d for d in run_dirs if (Path(d) / "metrics.json").exists()]
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
        m = json.loads((run_dir / "metrics.json").read_text())
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
    done = sum((Path(d) / "metrics.json").exists() for d in dirs)
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
