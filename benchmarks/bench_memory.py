"""Training memory and step time vs recursion depth, on CPU (its own command, not a test).

    python benchmarks/bench_memory.py [--steps 5] [--out benchmarks/results/bench_memory.json]

Claim under test: with grad_steps=last_cycle only the last n+1 network calls keep activations
for backward, so training memory does not grow with T (n_cycles), while step time grows with
the number of network calls T*(n+1). grad_steps=all (full backprop through the step) is run as
the contrast, whose memory must grow ~T.

Each configuration runs in a fresh subprocess (ru_maxrss is a high-water mark of the whole
process, so configurations must not share one). Two memory figures:
- saved_MiB: bytes of the distinct tensor storages autograd saves for backward during one
  training forward (torch.autograd.graph.saved_tensors_hooks): the activation memory, exact
  and deterministic;
- peak_rss_delta_MiB: growth of the process's peak RSS over training steps, above a baseline
  taken after the model, data and optimizer state exist (allocator noise included).
Step time: median wall time of a full training step (forward, loss, backward, optimizer).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
T_VALUES = (1, 3, 6)
N_LATENT = 3
GRAD_MODES = ("last_cycle", "all")
SIZE = dict(hidden_size=64, num_heads=4, layers=2, expansion=4.0, puzzle_emb_len=16,
            puzzle_emb_dim=64, mixer="attention", pos_encoding="rope")
TASK = dict(vocab=11, seq_len=81, batch=16)  # Sudoku-shaped: 81 cells + 16 prefix tokens


def maxrss_mib() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 / 1024 if platform.system() == "Linux" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker(cfg: dict) -> dict:
    sys.path.insert(0, str(REPO))
    import torch

    from trm.config import ModelSpec, OptimSpec
    from trm.model import build_model
    from trm.train.losses import lm_loss
    from trm.train.optim import build_optimizers, set_lr

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = ModelSpec(**SIZE, n_latent_steps=N_LATENT, n_cycles=cfg["T"], grad_steps=cfg["grad_steps"])
    B, L, V = TASK["batch"], TASK["seq_len"], TASK["vocab"]
    model = build_model(spec, V, L, num_puzzle_ids=1)
    model.train()
    ospec = OptimSpec(warmup_steps=1)
    optimizers = build_optimizers(model, ospec, total_steps=100)
    inputs = torch.randint(1, V, (B, L))
    labels = torch.randint(1, V, (B, L))
    ids = torch.zeros(B, dtype=torch.long)

    def step(i: int):
        latents = model.initial_latents(B)
        _, logits, _, _ = model(latents, inputs, ids)
        loss = lm_loss(logits, labels) / B
        loss.backward()
        set_lr(optimizers, i, ospec, 100)
        for opt, _ in optimizers:
            opt.step()
            opt.zero_grad()

    # Optimizer state (2 moments per weight) exists before the baseline: step with zero grads.
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizers[0][0].step()
    optimizers[0][0].zero_grad()
    baseline = maxrss_mib()

    # Activation memory: distinct storages autograd keeps for backward in one forward.
    storages: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _, logits, _, _ = model(model.initial_latents(B), inputs, ids)
    # The parameters themselves are saved too (for the weight-gradient matmuls): not activations.
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = sum(n for ptr, n in storages.items() if ptr not in param_ptrs)
    del logits

    step(0)  # warm-up (first-call allocations)
    times = []
    for i in range(1, cfg["steps"] + 1):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    calls = model.call_counts()
    return dict(
        grad_steps=cfg["grad_steps"], T=cfg["T"], n=N_LATENT, **calls,
        saved_MiB=saved / 2**20,
        peak_rss_delta_MiB=maxrss_mib() - baseline,
        step_ms_median=1000 * statistics.median(times),
        step_ms_all=[1000 * t for t in times],
    )


def run_config(cfg: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_memory.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import torch

    rows = []
    for grad_steps in GRAD_MODES:
        for T in T_VALUES:
            row = run_config(dict(grad_steps=grad_steps, T=T, steps=args.steps))
            rows.append(row)
            print(f"  done {grad_steps} T={T}: {row['step_ms_median']:.0f} ms", file=sys.stderr)

    # Ratios against T=1 of the same gradient mode.
    for r in rows:
        ref = next(x for x in rows if x["grad_steps"] == r["grad_steps"] and x["T"] == 1)
        r["calls_ratio"] = r["forward_calls_per_step"] / ref["forward_calls_per_step"]
        r["time_ratio"] = r["step_ms_median"] / ref["step_ms_median"]
        r["saved_ratio"] = r["saved_MiB"] / ref["saved_MiB"]
        # Cost model: a no-grad call costs 1 forward; a grad call ~3 (forward + 2x backward).
        cost = lambda x: x["forward_calls_per_step"] + 2 * x["grad_calls_per_step"]  # noqa: E731
        r["cost_model_ratio"] = cost(r) / cost(ref)

    header = (f"{'grad_steps':<11} {'T':>2} {'calls':>5} {'grad':>4} {'saved MiB':>9} {'x T=1':>6} "
              f"{'peak RSS +MiB':>13} {'ms/step':>8} {'time x':>6} {'calls x':>7} {'model x':>7}")
    print(f"\nmodel {SIZE}, n={N_LATENT}, batch {TASK['batch']}, seq {TASK['seq_len']}+16, 1 thread")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['grad_steps']:<11} {r['T']:>2} {r['forward_calls_per_step']:>5} "
              f"{r['grad_calls_per_step']:>4} {r['saved_MiB']:>9.1f} {r['saved_ratio']:>6.2f} "
              f"{r['peak_rss_delta_MiB']:>13.1f} {r['step_ms_median']:>8.0f} "
              f"{r['time_ratio']:>6.2f} {r['calls_ratio']:>7.2f} {r['cost_model_ratio']:>7.2f}")
    print("x = ratio to T=1 of the same grad_steps; model x = (calls + 2 * grad calls) ratio")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        benchmark="bench_memory", time=time.strftime("%Y-%m-%dT%H:%M:%S"),
        torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
        model=SIZE, task=TASK, n_latent_steps=N_LATENT, steps=args.steps, rows=rows,
    ), indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
