"""Training-step cost of the named models in fp32 and bf16, against the machine's matmul
throughput (its own command, not a test).

    python benchmarks/bench_step.py                       # paper scale, b8 and b32, fp32 + bf16
    python benchmarks/bench_step.py --quick               # tiny scale, b8, a few seconds a row
    python benchmarks/bench_step.py --batch 8 --models hrm --precision fp32

The timed step is the Trainer's own `train_step` (trm/train/loop.py), on generated 9x9 Sudoku
(the paper's shapes): refill of halted slots, one supervision segment through all the
recursion, HRM's second no-grad segment for the Q-learning target, stablemax + halting loss,
backward, optimizer step (AdamATan2 at paper scale), gradient release, EMA update where the
model uses EMA. 1 CPU thread. Each (model, batch, precision) runs in a fresh subprocess so
that the peak RSS (VmHWM, the process's high-water mark) is its own, with the C allocator a
training run would get (`--allocator`, as train.allocator: auto = tcmalloc where installed,
else the system's; the JSON and every row say which).

Reported per row: median step time over `--steps` timed steps (after two warm-up steps; the
FLOPs are counted in one more step after the peak RSS has been read), matmul FLOPs per step counted from shapes (benchmarks/steplib.py:
2*m*n*k per matmul; backward counted from its own shapes = 2x the forward of each grad-carrying
matmul, nothing for the no-grad calls), the achieved matmul FLOP/s and its fraction of the
measured square-matmul throughput of the same dtype, and peak RSS (plus the RSS once the
trainer is built, so the step's own growth can be read). The matmul throughput is measured
twice: once at the start of the run and once inside each worker right after its steps (the
machine may be shared; `fraction_of_matmul_peak_here` compares like with like). The fp32/bf16
ratio of each (model, batch) is printed at the end.

bf16 is `train.precision=bf16` (autocast on CPU); it is refused on a CPU without native bf16
(AVX512-BF16 / AMX) unless TRM_NATIVE_BF16=1, and such rows are recorded as skipped.
Timings on a shared machine: read ratios measured in one run. JSON: benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import steplib  # noqa: E402


def rss_mib() -> float:
    """Peak RSS of this process so far. VmHWM, not ru_maxrss: on Linux ru_maxrss survives
    exec, so a worker started by a parent that holds torch and the matmul buffers would
    report the parent's high-water mark (it did: every row read the same 478 MiB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1 / 1024 if platform.system() == "Linux" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker(a) -> dict:
    import torch

    from trm.train.precision import PrecisionError

    torch.set_num_threads(1)
    from trm.train.allocator import active

    row = {"model": a.worker, "scale": a.scale, "batch": a.batch, "precision": a.precision,
           "allocator": active()}
    with tempfile.TemporaryDirectory() as run_dir:
        try:
            trainer = steplib.make_trainer(a.worker, a.scale, a.batch, a.precision, Path(a.data),
                                           json.loads(a.data_over), Path(run_dir), device="cpu")
        except PrecisionError as e:
            return row | {"skipped": str(e)}
        row["params"] = trainer.model.param_counts()["params"]
        row.update(trainer.model.call_counts())
        row["rss_after_build_mib"] = round(rss_mib(), 1)
        steplib.time_steps(trainer, 2)  # warm-up: the optimizer's state, the allocator's pools
        times = steplib.time_steps(trainer, a.steps)
        # The high-water mark is read before the FLOP count: FlopCounterMode imports torch's
        # decomposition and dispatch machinery (tens of MiB) that a training run never loads.
        peak = rss_mib()
        flops = steplib.step_flops(trainer)
    med = statistics.median(times)
    # The machine is shared: measure the matmul throughput right here, after the steps, so the
    # fraction compares like with like (the parent's figure is taken at another moment).
    local = steplib.matmul_peak(a.precision, "cpu", n=256 if a.scale in ("smoke", "tiny") else 1024, seconds=1.0)
    row["matmul_peak_here_gflops"] = round(local["flops_per_s"] / 1e9, 1)
    row["fraction_of_matmul_peak_here"] = round(flops / med / local["flops_per_s"], 4)
    row.update({
        "steps_timed": len(times),
        "median_ms": round(1000 * med, 1),
        "times_ms": [round(1000 * t, 1) for t in times],
        "matmul_flops_per_step": flops,
        "achieved_gflops": round(flops / med / 1e9, 2),
        "peak_rss_mib": round(peak, 1),
    })
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="paper")
    p.add_argument("--batch", type=int, nargs="*", default=[8, 32])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--models", nargs="*", default=["trm_mlp", "trm_att", "hrm"])
    p.add_argument("--precision", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--quick", action="store_true", help="tiny scale, batch 8, 2 steps")
    p.add_argument("--allocator", default="auto", choices=["auto", "system", "tcmalloc", "jemalloc"],
                   help="the workers' C allocator, as train.allocator (default auto, as a run)")
    p.add_argument("--data-root", default=str(HERE / "results" / "data"))
    p.add_argument("--out", default=str(HERE / "results" / "bench_step.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--data-over", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        a.batch, a.precision = a.batch[0], a.precision[0]
        print(json.dumps(worker(a)))
        return
    if a.quick:
        a.scale, a.batch, a.steps = "tiny", [8], 2

    import torch

    torch.set_num_threads(1)
    n = 256 if a.quick else 1024
    peaks = {d: steplib.matmul_peak(d, "cpu", n=n, seconds=0.3 if a.quick else 1.0) for d in ("fp32", "bf16")}
    for d, pk in peaks.items():
        print(f"matmul {d}: {pk['flops_per_s'] / 1e9:8.1f} GFLOP/s ({pk['n']}^3, 1 thread)", flush=True)
    data_dir, data_over = steplib.sudoku_data(Path(a.data_root), n_train=max(64, *a.batch))
    # Each worker starts with the allocator a training run would get (trm/train/allocator.py).
    from trm.train.allocator import choose, environment

    alloc_name, alloc_path = choose(a.allocator)
    worker_env = environment(alloc_name, alloc_path)
    print(f"allocator: {alloc_name}" + (f" ({alloc_path})" if alloc_path else ""), flush=True)

    rows = []
    for batch in a.batch:
        for m in a.models:
            for prec in a.precision:
                cmd = [sys.executable, __file__, "--worker", m, "--scale", a.scale, "--batch", str(batch),
                       "--precision", prec, "--steps", str(a.steps), "--data", str(data_dir),
                       "--data-over", json.dumps(data_over)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=worker_env)
                if out.returncode != 0:
                    raise SystemExit(f"worker {m} b{batch} {prec} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                if "skipped" in r:
                    print(f"{m:8s} b{batch:<3d} {prec}: skipped ({r['skipped']})", flush=True)
                else:
                    r["fraction_of_matmul_peak"] = round(r["achieved_gflops"] * 1e9 / peaks[prec]["flops_per_s"], 4)
                    print(f"{m:8s} b{batch:<3d} {prec:4s} {r['median_ms']:>9.1f} ms  "
                          f"{r['matmul_flops_per_step'] / 1e9:8.1f} GFLOP  {r['achieved_gflops']:7.1f} GFLOP/s "
                          f"= {100 * r['fraction_of_matmul_peak_here']:5.1f}% of {prec} matmul measured in the worker "
                          f"({r['matmul_peak_here_gflops']:.0f} GFLOP/s; {100 * r['fraction_of_matmul_peak']:5.1f}% of the "
                          f"run's)  peak RSS {r['peak_rss_mib']:7.1f} MiB", flush=True)
                rows.append(r)

    ratios = []
    by = {(r["model"], r["batch"], r["precision"]): r for r in rows if "skipped" not in r}
    for (m, b, prec), r in by.items():
        if prec == "fp32" and (m, b, "bf16") in by:
            h = by[(m, b, "bf16")]
            ratios.append({"model": m, "batch": b, "bf16_speedup": round(r["median_ms"] / h["median_ms"], 2),
                           "bf16_over_fp32_peak_rss": round(h["peak_rss_mib"] / r["peak_rss_mib"], 3)})
            print(f"{m:8s} b{b:<3d} bf16 speedup {ratios[-1]['bf16_speedup']:.2f}x, "
                  f"peak RSS bf16/fp32 {ratios[-1]['bf16_over_fp32_peak_rss']:.3f}")
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": 1,
                    "native_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                                        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())},
        "allocator": {"requested": a.allocator, "used": alloc_name, "library": alloc_path},
        "matmul_peak": peaks,
        "flop_count": "matmul FLOPs from shapes (torch.utils.flop_counter): 2*m*n*k per matmul; "
                      "backward from its own shapes (2x forward for grad-carrying matmuls)",
        "rows": rows,
        "ratios": ratios,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
