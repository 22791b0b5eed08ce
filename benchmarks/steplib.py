"""Shared pieces of the step benchmarks (bench_step.py on CPU, gpu_check.py on one GPU).

- `sudoku_data`: a small generated 9x9 Sudoku dataset (real puzzles, the paper's shapes:
  vocab 11, 81 cells), built once and cached, so the benchmarks run the real Trainer on it.
- `make_trainer`: the Trainer of a named model at a scale with the benchmark's batch,
  precision, device and speed knobs; `trainer.train_step()` is the timed step, i.e. exactly
  what a run does: refill, forward through all the recursion, HRM's second no-grad segment
  for the Q-learning target, losses, backward, optimizer step, gradient release, EMA update.
- `step_flops`: matmul FLOPs of one training step counted from the operands' shapes by
  torch.utils.flop_counter (2*m*n*k per matmul / addmm / bmm, SDPA as its two batched
  matmuls; a backward op is counted from its own shapes, which gives 2x the forward for each
  matmul that carries gradient (grad of input + grad of weight) and 0 for the no-grad calls).
  Elementwise work (norms, SiLU, the optimizer) is not counted: it is the matmul fraction.
- `matmul_peak`: the machine's measured matmul throughput for a dtype (square matmul).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sudoku_data(root: Path, n_train: int, n_test: int = 64, blanks: int = 45, seed: int = 0) -> tuple[Path, dict]:
    """Build (or reuse) generated 9x9 Sudoku data; returns (dir, data overrides)."""
    from trm.data.build import build_dataset, data_spec_for

    over = {"data.source": "generate", "data.grid": 9, "data.blanks": blanks, "data.n_train": n_train,
            "data.n_test": n_test, "data.n_aug": 0, "data.seed": seed}
    out = Path(root) / f"sudoku9_b{blanks}_n{n_train}_t{n_test}_s{seed}"
    if not (out / "train" / "dataset.json").exists() or not (out / "test" / "dataset.json").exists():
        build_dataset(data_spec_for("sudoku", "paper", over), out)
    return out, over


def make_trainer(model: str, scale: str, batch: int, precision: str, data_dir: Path, data_over: dict,
                 run_dir: Path, device: str = "cpu", compile: bool = False, tf32: bool = False,
                 threads: int = 1, extra: dict | None = None):
    from trm import config as C
    from trm.train.loop import Trainer

    over = {**data_over, "train.global_batch_size": batch, "train.precision": precision,
            "train.device": device, "train.compile": compile, "train.tf32": tf32,
            "train.threads": threads, "train.epochs": 0, "train.steps": 100_000,
            **(extra or {})}
    spec = C.resolve(model, "sudoku", scale, over)
    return Trainer(spec, run_dir, data_dir)


def step_flops(trainer) -> int:
    """Matmul FLOPs of one training step (runs one step: use it as a warm-up step)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return int(counter.get_total_flops())


def matmul_peak(dtype_name: str, device: str = "cpu", n: int = 1024, seconds: float = 1.0) -> dict:
    """Median FLOP/s of an n x n x n matmul (2 n^3 FLOPs), repeated for ~`seconds`."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):  # warm-up: kernel selection, AMX tile config, clocks
        a @ b
    sync()
    times, start = [], time.perf_counter()
    reps = 1 if device == "cpu" else 20  # one GPU matmul is too short to time alone
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        times.append((time.perf_counter() - t0) / reps)
    t = statistics.median(times)
    return {"dtype": dtype_name, "n": n, "median_s": t, "flops_per_s": 2 * n**3 / t}


def time_steps(trainer, steps: int, sync=lambda: None) -> list[float]:
    """Wall time of `steps` consecutive train_step calls (seconds each)."""
    out = []
    for _ in range(steps):
        sync()
        t0 = time.perf_counter()
        trainer.train_step()
        sync()
        out.append(time.perf_counter() - t0)
    return out
