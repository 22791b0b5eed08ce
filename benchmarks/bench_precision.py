"""bf16 against fp32 at the tiny scale: accuracy over seeds and the training-step time.

    python benchmarks/bench_precision.py [--scale tiny] [--model trm_mlp] [--task sudoku]
        [--seeds 5] [--jobs 2] [--out benchmarks/results/precision.json] [key=value ...]

Trains the same cell with train.precision=fp32 and =bf16 for every seed (seed k of both
share data order and init), then reports per precision the mean exact accuracy with a 95%
t-interval, the paired (same seed) difference with its t-interval, and the median ratio of
training time per optimizer step. bf16 needs a CPU with AVX512-BF16 or AMX (or a GPU); on
other CPUs it is refused (set TRM_NATIVE_BF16=1 to measure the emulated path anyway).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHILD = r"""
import json, sys
from pathlib import Path
from trm import config as C
from trm.data.build import build_dataset
from trm.train import loop
scale, model, task, over, seed, root = json.loads(sys.argv[1])
spec = C.resolve(model, task, scale, over, seed=seed)
data = Path(root) / "data" / C.data_signature(spec)
build_dataset(spec.data, data)
run = Path(root) / "runs" / f"{spec.train.precision}-seed{seed}"
m = loop.run(spec, run, data, progress=False)
info = json.loads((run / "run_info.json").read_text())
print(json.dumps({"precision": spec.train.precision, "seed": seed, "status": m["status"],
                  "exact": m.get("exact_accuracy"), "cell": m.get("cell_accuracy"),
                  "train_s": info.get("train_time_s"), "steps": info.get("steps")}))
"""


def t_interval(xs: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, math.nan, math.nan
    half = stats.t.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, m - half, m + half


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--model", default="trm_mlp")
    ap.add_argument("--task", default="sudoku")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/precision.json")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    from trm import config as C

    over = dict(C.parse_override(s) for s in a.overrides)
    root = Path(tempfile.mkdtemp(prefix="trm-precision-"))
    jobs = [(p, s) for s in range(a.seeds) for p in ("fp32", "bf16")]

    def one(job):
        p, s = job
        arg = json.dumps([a.scale, a.model, a.task, over | {"train.precision": p}, s, str(root)])
        proc = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
        if not lines:
            raise SystemExit(f"{p} seed {s} failed:\n{proc.stderr[-2000:]}")
        rec = json.loads(lines[-1])
        print(json.dumps(rec), file=sys.stderr, flush=True)
        return rec

    with ThreadPoolExecutor(a.jobs) as ex:
        recs = list(ex.map(one, jobs))
    by = {p: {r["seed"]: r for r in recs if r["precision"] == p} for p in ("fp32", "bf16")}
    seeds = sorted(set(by["fp32"]) & set(by["bf16"]))
    out = {"scale": a.scale, "model": a.model, "task": a.task, "overrides": over, "seeds": seeds,
           "runs": recs, "load_avg_end": os.getloadavg()[0]}
    for p in ("fp32", "bf16"):
        xs = [100 * by[p][s]["exact"] for s in seeds]
        m, lo, hi = t_interval(xs)
        out[p] = {"exact_mean": round(m, 2), "ci95": [round(lo, 2), round(hi, 2)],
                  "sd": round(statistics.stdev(xs), 2) if len(xs) > 1 else None,
                  "per_seed": [round(x, 1) for x in xs]}
    diffs = [100 * (by["bf16"][s]["exact"] - by["fp32"][s]["exact"]) for s in seeds]
    m, lo, hi = t_interval(diffs)
    out["bf16_minus_fp32_pp"] = {"mean": round(m, 2), "ci95": [round(lo, 2), round(hi, 2)]}
    ratios = [by["fp32"][s]["train_s"] / by["bf16"][s]["train_s"] for s in seeds]
    out["step_time_fp32_over_bf16_median"] = round(statistics.median(ratios), 3)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
