"""Training-step cost of the named models (its own command, not a test).

    python benchmarks/bench_step.py [--scale paper] [--batch 8] [--steps 5] [--models trm_mlp trm_att hrm]

One training step as the training loop does it: one supervision segment through all the
recursion (no-grad calls, then the gradient window), stablemax loss + halting loss, backward,
optimizer step (AdamATan2 at paper scale), on random Sudoku-shaped tokens, 1 CPU thread,
fp32. Reports the median over `steps` after 2 warm-up steps and the peak RSS of the process
(each model in a fresh subprocess). Compare with the official code's figures in
shared/notes/reference-costs.md only as ratios measured side by side on one machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def worker(model_name: str, scale: str, batch: int, steps: int) -> dict:
    import torch

    from trm import config as C
    from trm.describe import task_shapes
    from trm.model import build_model
    from trm.train import losses
    from trm.train.optim import build_optimizers, set_lr

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = C.resolve(model_name, "sudoku", scale)
    shapes = task_shapes(spec.data)
    model = build_model(spec.model, shapes["vocab_size"], shapes["seq_len"], 1)
    opts = build_optimizers(model, spec.optim, 1000)
    V, L = shapes["vocab_size"], shapes["seq_len"]
    inputs = torch.randint(1, V, (batch, L))
    labels = torch.randint(2, V, (batch, L))
    pids = torch.zeros(batch, dtype=torch.long)
    lat = model.initial_latents(batch, torch.device("cpu"))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        lat, logits, q_halt, q_cont = model(lat, inputs, pids)
        loss = losses.lm_loss(logits, labels, "stablemax", 0)
        loss = loss + 0.5 * losses.halt_bce(q_halt, torch.zeros_like(q_halt))
        for o, _ in opts:
            o.zero_grad()
        (loss / batch).backward()
        set_lr(opts, i, spec.optim, 1000)
        for o, _ in opts:
            o.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return {
        "model": model_name,
        "scale": scale,
        "batch": batch,
        "params": model.param_counts()["params"],
        **model.call_counts(),
        "median_ms": round(1000 * statistics.median(times), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", default="paper")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--models", nargs="*", default=["trm_mlp", "trm_att", "hrm"])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_step.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.scale, a.batch, a.steps)))
        return
    rows = []
    for m in a.models:
        out = subprocess.run([sys.executable, __file__, "--worker", m, "--scale", a.scale,
                              "--batch", str(a.batch), "--steps", str(a.steps)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['model']:10s} {r['scale']:6s} b{r['batch']:<4d} params {r['params']:>11,d} "
              f"calls {r['forward_calls_per_step']:>2d} (grad {r['grad_calls_per_step']}) "
              f"median {r['median_ms']:>9.1f} ms  peak RSS {r['peak_rss_mib']:>7.1f} MiB", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
