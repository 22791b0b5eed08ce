"""Seed-spread pilots: train a few cells over several seeds, outside the workflow.

    python benchmarks/pilot.py [--scale tiny] [--seeds 5] [--jobs 2] [--out pilot.jsonl]
        'MODEL|TASK|key=value,key=value' ...

Each cell is a model, a task and optional spec overrides (values parsed as YAML), e.g.
`'trm_mlp|sudoku|train.steps=600,data.blanks=24'`. Every (cell, seed) trains in its own
one-thread process under a scratch folder (`--root`, default a temporary one), so a pilot
never touches results/. One JSON line per run is appended to --out as it finishes; at the
end, per cell: exact accuracy per seed, mean ± sd and the median training time. Seed k of
every cell shares data order and initial weights, as in the workflow, so the per-seed
differences between two cells are what the study tables' paired test sees.

This is how the tiny scale's settings were chosen (README, "The tiny scale").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

CHILD = r"""
import json, sys
from pathlib import Path
from trm import config as C
from trm.data.build import build_dataset
from trm.train import loop
scale, model, task, over, seed, root = json.loads(sys.argv[1])
spec = C.resolve(model, task, scale, over, seed=seed)
data = Path(root) / "data" / C.data_signature(spec)
if not (data / "test" / "dataset.json").exists():
    build_dataset(spec.data, data)
run = Path(root) / "runs" / C.signature(spec) / f"seed{seed}"
m = loop.run(spec, run, data, progress=False)
info = json.loads((run / "run_info.json").read_text())
print(json.dumps({"status": m["status"], "exact": m.get("exact_accuracy"), "cell": m.get("cell_accuracy"),
                  "train_s": info.get("train_time_s"), "sig": C.signature(spec)}))
"""


def parse_cell(text: str) -> tuple[str, str, dict]:
    parts = text.split("|")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise SystemExit(f"cell {text!r}: expected 'MODEL|TASK' or 'MODEL|TASK|key=value,...'")
    over = {}
    for item in filter(None, (parts[2] if len(parts) == 3 else "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"cell {text!r}: override {item!r} is not key=value")
        over[key.strip()] = yaml.safe_load(value)
    return parts[0], parts[1], over


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", nargs="+")
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--root", default=None, help="scratch folder for data and runs")
    ap.add_argument("--out", default="benchmarks/results/pilot.jsonl")
    a = ap.parse_args()

    cells = [(c, *parse_cell(c)) for c in a.cells]
    root = Path(a.root or tempfile.mkdtemp(prefix="trm-pilot-"))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results: dict[str, dict[int, dict]] = {c[0]: {} for c in cells}

    def train(job):
        (label, model, task, over), seed = job
        arg = json.dumps([a.scale, model, task, over, seed, str(root)])
        r = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True, env=env)
        lines = r.stdout.strip().splitlines()
        rec = json.loads(lines[-1]) if r.returncode == 0 and lines else {
            "status": "error", "error": r.stderr.strip().splitlines()[-1:] or [f"exit {r.returncode}"]}
        rec = {"cell": label, "scale": a.scale, "seed": seed, **rec}
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        results[label][seed] = rec
        print(f"{label} seed {seed}: {rec.get('status')} exact {rec.get('exact')}", flush=True)

    jobs = [(c, s) for c in cells for s in range(a.seeds)]
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        list(pool.map(train, jobs))

    print(f"\n{a.scale}, {a.seeds} seeds (runs under {root}; lines appended to {out})")
    for label, by_seed in results.items():
        ok = [by_seed[s] for s in sorted(by_seed) if by_seed[s].get("status") == "ok"]
        xs = [100 * r["exact"] for r in ok]
        spread = f"{statistics.fmean(xs):.1f} ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else "n/a"
        t = statistics.median(r["train_s"] for r in ok) if ok else float("nan")
        failed = len(by_seed) - len(ok)
        print(f"  {label}: {', '.join(f'{x:.1f}' for x in xs)} -> {spread} % exact; "
              f"median train {t:.1f} s" + (f"; {failed} run(s) not ok" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
