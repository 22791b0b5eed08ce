"""One prepared GPU check: the speed paths, DP over NCCL and a short real training, in one JSON.

    bash benchmarks/gpu_check.sh                        # one GPU, at most 8 minutes
    python benchmarks/gpu_check.py --cpu-tiny --out X   # the same code path on CPU, tiny shapes (CI)

Sections of the JSON (benchmarks/results/gpu_check.json by default):
- env: device, torch/CUDA/NCCL versions, precision, compile backend, TF32.
- matmul_peak: measured bf16 (and fp32/TF32) square-matmul throughput of the device.
- steps: trm_mlp, trm_att, hrm at paper scale, batch 768 (the paper's global batch), each the
  Trainer's real train_step with train.precision=bf16, train.compile=true, train.tf32=true:
  matmul FLOPs per step counted from shapes on one eager step (benchmarks/steplib.py), then
  compile warm-up steps, then the median of the timed steps; tokens/s (batch x sequence
  positions incl. the puzzle prefix, per second), achieved matmul FLOP/s as a fraction of the
  measured bf16 matmul throughput, peak memory of the timed steps (CUDA max_memory_allocated /
  reserved; on CPU the process's peak RSS).
- ddp_smoke: one process in a real process group (NCCL on CUDA, gloo on CPU) with every
  collective of the data-parallel path forced on (world size 1 normally skips them), a few
  steps compared with the same steps without a process group: the losses must be identical.
- train: about 3 minutes (--train-s) of real training of trm_mlp on generated 9x9 Sudoku
  (bf16 + compile), the loss per step, and whether it fell (mean of the last tenth of the
  steps below the mean of the first tenth).
The script watches its own clock (--budget-s, default 450 s) and shortens the training so the
whole check ends inside 8 minutes; every section records its own wall time.

--cpu-tiny: the tiny scale, batch 8, fp32 or bf16 (bf16 where the CPU has it natively),
compile with the "eager" dynamo backend (no C++ toolchain needed), gloo, a few seconds of
training: the CI test of this script (tests/test_gpu_check.py) runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import steplib  # noqa: E402

MODELS = ("trm_mlp", "trm_att", "hrm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nccl_version() -> str | None:
    import torch

    try:
        v = torch.cuda.nccl.version()
        return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception:  # noqa: BLE001 - informational only
        return None


class Clock:
    def __init__(self, budget_s: float):
        self.t0, self.budget_s = time.perf_counter(), budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()


def memory_stats(device: str) -> dict:
    import torch

    if device == "cuda":
        return {"peak_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                "peak_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1)}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the process's peak RSS (shared by every section on CPU)
            return {"peak_rss_mib": round(int(line.split()[1]) / 1024, 1)}
    return {}


def time_model(model: str, cfg: dict, data_dir: Path, data_over: dict, peak: float) -> dict:
    import torch

    from trm.train.device import compile_networks

    dev = cfg["device"]
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    if dev == "cuda":
        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        # Built eager (compile=False) so that the FLOP counter sees plain aten ops on the first
        # step; the networks are compiled in place right after, as Trainer does with compile=true.
        tr = steplib.make_trainer(model, cfg["scale"], cfg["batch"], cfg["precision"], data_dir, data_over,
                                  Path(run_dir), device=dev, compile=False, tf32=cfg["tf32"])
        flops = steplib.step_flops(tr)
        if cfg["compile"]:
            compile_networks(tr.model)
        t_compile = time.perf_counter()
        steplib.time_steps(tr, cfg["warmup_steps"], sync)  # compilation happens here
        compile_s = time.perf_counter() - t_compile
        if dev == "cuda":  # the peak of the compiled steps, not of the eager FLOP-count step
            torch.cuda.reset_peak_memory_stats()
        times = steplib.time_steps(tr, cfg["timed_steps"], sync)
        seq = tr.train_split.seq_len + tr.model.prefix_len
        out = {
            "model": model, "batch": cfg["batch"], "precision": cfg["precision"], "compile": cfg["compile"],
            "tf32": cfg["tf32"], "params": tr.model.param_counts()["params"], **tr.model.call_counts(),
            "warmup_s": round(compile_s, 2),
        }
        del tr
    med = statistics.median(times)
    out.update({
        "timed_steps": len(times), "median_step_ms": round(1000 * med, 2),
        "times_ms": [round(1000 * t, 2) for t in times],
        "tokens_per_s": round(cfg["batch"] * seq / med, 1),
        "matmul_flops_per_step": flops,
        "achieved_tflops": round(flops / med / 1e12, 4),
        "fraction_of_bf16_matmul_peak": round(flops / med / peak, 4),
        **memory_stats(dev),
        "wall_s": round(time.perf_counter() - t0, 2),
    })
    return out


def ddp_smoke(cfg: dict, data_dir: Path, data_over: dict, steps: int = 3) -> dict:
    """A real 1-process group with the DP collectives forced on vs no group: same losses."""
    import torch
    import torch.distributed as dist

    from trm.train import distributed

    t0 = time.perf_counter()
    dev = cfg["device"]
    backend = "nccl" if dev == "cuda" else "gloo"
    port = _free_port()
    kwargs = {"device_id": torch.device("cuda", 0)} if dev == "cuda" else {}
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1, **kwargs)
    try:
        class Forced(distributed.Comm):
            # World size 1 makes every collective the identity; force them so that NCCL/gloo
            # really runs the coalesced grad all-reduce, the puzzle-row gather and the rest.
            enabled = property(lambda self: True)

        env = distributed.DistEnv(rank=0, world_size=1, local_rank=0, source="existing")
        comm = Forced(env, torch.device(dev, 0) if dev == "cuda" else torch.device("cpu"), backend, owned=False)
        losses = {}
        for name, c in (("process_group", comm), ("single", None)):
            with tempfile.TemporaryDirectory() as run_dir:
                from trm import config as C
                from trm.train.loop import Trainer

                over = {**data_over, "train.global_batch_size": 8, "train.device": dev,
                        "train.precision": "fp32", "train.epochs": 0, "train.steps": 1000}
                spec = C.resolve("hrm", "sudoku", "smoke", over)  # hrm: 2 nets, Q-learning pass
                tr = Trainer(spec, Path(run_dir), data_dir, comm=c)
                losses[name] = [tr.train_step()["loss"] for _ in range(steps)]
        t = torch.ones(4, device=comm.device)
        comm.all_reduce_sum(t)
        reduce_ok = bool((t == 1).all())
    finally:
        dist.destroy_process_group()
    a, b = losses["process_group"], losses["single"]
    rel = max(abs(x - y) / max(abs(y), 1e-30) for x, y in zip(a, b))
    # A sum over one rank is a copy, so on CPU the runs are bit-identical; on CUDA a few
    # kernels (scatter-add in the embedding backward) may not be deterministic, hence 1e-5.
    return {"backend": backend, "world_size": 1, "collectives_forced": True, "steps": steps,
            "losses": losses, "identical_to_single_process": a == b, "max_rel_diff": rel,
            "all_reduce_ok": reduce_ok, "ok": reduce_ok and rel <= 1e-5,
            "wall_s": round(time.perf_counter() - t0, 2)}


def train_run(cfg: dict, data_dir: Path, data_over: dict, seconds: float) -> dict:
    import torch

    dev = cfg["device"]
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        # Official lr 1e-4; a short warm-up (the official 2000 steps would cover the whole
        # check) so that a few minutes show learning.
        tr = steplib.make_trainer("trm_mlp", cfg["scale"], cfg["batch"], cfg["precision"], data_dir, data_over,
                                  Path(run_dir), device=dev, compile=cfg["compile"], tf32=cfg["tf32"],
                                  extra={"optim.warmup_steps": cfg["train_warmup"]})
        log = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(log) < cfg["train_min_steps"]:
            rec = tr.train_step()
            sync()
            log.append({"step": rec["step"], "t_s": round(time.perf_counter() - start, 2),
                        "loss": rec["loss"], "lm_loss": rec["lm_loss"], "train_exact": rec["train_exact"]})
    k = max(1, len(log) // 10)
    first = statistics.mean(r["loss"] for r in log[:k])
    last = statistics.mean(r["loss"] for r in log[-k:])
    return {"model": "trm_mlp", "batch": cfg["batch"], "precision": cfg["precision"], "compile": cfg["compile"],
            "seconds": round(time.perf_counter() - start, 1), "steps": len(log),
            "loss_first_tenth": first, "loss_last_tenth": last, "loss_fell": last < first,
            "log": log, "wall_s": round(time.perf_counter() - t0, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-tiny", action="store_true", help="CPU, tiny shapes (the CI path)")
    p.add_argument("--out", default=str(HERE / "results" / "gpu_check.json"))
    p.add_argument("--data-root", default=None, help="where the generated Sudoku is cached")
    p.add_argument("--budget-s", type=float, default=None, help="whole-check clock (default 450 GPU, 25 CPU)")
    p.add_argument("--train-s", type=float, default=None, help="training seconds (default 180 GPU, 3 CPU)")
    p.add_argument("--models", nargs="*", default=list(MODELS))
    a = p.parse_args(argv)

    import torch

    from trm.train import precision as P

    if a.cpu_tiny:
        os.environ.setdefault("TRM_COMPILE_BACKEND", "eager")
        cfg = dict(device="cpu", scale="tiny", batch=8, precision=P.resolve("auto", "cpu"), compile=True,
                   tf32=False, warmup_steps=1, timed_steps=2, train_warmup=10, matmul_n=256,
                   budget=a.budget_s or 25.0, train_s=a.train_s or 2.0, n_train=64, train_min_steps=10)
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (use --cpu-tiny for the CPU path)", file=sys.stderr)
            return 2
        cfg = dict(device="cuda", scale="paper", batch=768, precision="bf16", compile=True, tf32=True,
                   warmup_steps=3, timed_steps=10, train_warmup=100, matmul_n=8192,
                   budget=a.budget_s or 450.0, train_s=a.train_s or 180.0, n_train=2000, train_min_steps=20)
    clock = Clock(cfg["budget"])
    out: dict = {"ok": False, "mode": "cpu_tiny" if a.cpu_tiny else "gpu", "config": cfg, "sections_failed": []}
    out["env"] = {
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "device_name": torch.cuda.get_device_name(0) if cfg["device"] == "cuda" else "cpu",
        "nccl": _nccl_version() if cfg["device"] == "cuda" else None,
        "compile_backend": os.environ.get("TRM_COMPILE_BACKEND", "inductor"),
    }

    def save():
        out["elapsed_s"] = round(clock.elapsed(), 1)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")

    def section(name, fn):
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 - record it and go on: one JSON with everything
            out[name] = {"error": f"{type(e).__name__}: {e}"}
            out["sections_failed"].append(name)
        save()
        print(f"[{clock.elapsed():6.1f}s] {name}: {json.dumps(out[name])[:400]}", flush=True)

    dev = cfg["device"]
    section("matmul_peak", lambda: {d: steplib.matmul_peak(d, dev, n=cfg["matmul_n"], seconds=1.0 if dev == "cuda" else 0.2)
                                    for d in ("bf16", "fp32")})
    if dev == "cuda":  # fp32 matmuls with TF32 allowed (what train.tf32 turns on)
        torch.backends.cuda.matmul.allow_tf32 = True
        section("matmul_peak_tf32", lambda: steplib.matmul_peak("fp32", dev, n=cfg["matmul_n"]))
    peak = (out["matmul_peak"].get("bf16") or {}).get("flops_per_s") or float("nan")
    root = Path(a.data_root) if a.data_root else HERE / "results" / "data"
    t_data = time.perf_counter()
    data_dir, data_over = steplib.sudoku_data(root, n_train=cfg["n_train"], blanks=45)
    out["data"] = {"dir": str(data_dir), **data_over, "build_s": round(time.perf_counter() - t_data, 1)}

    out["steps"] = {}
    for m in a.models:
        try:
            out["steps"][m] = time_model(m, cfg, data_dir, data_over, peak)
        except Exception as e:  # noqa: BLE001
            out["steps"][m] = {"error": f"{type(e).__name__}: {e}"}
            out["sections_failed"].append(f"steps.{m}")
        save()
        print(f"[{clock.elapsed():6.1f}s] steps.{m}: {json.dumps(out['steps'][m])[:400]}", flush=True)
    section("ddp_smoke", lambda: ddp_smoke(cfg, data_dir, data_over))
    # Whatever the clock has left, minus a margin for the trainer's build and compilation.
    margin = 60.0 if dev == "cuda" else 2.0
    train_s = max(1.0, min(cfg["train_s"], clock.left() - margin))
    section("train", lambda: train_run(cfg, data_dir, data_over, train_s))
    out["ok"] = (not out["sections_failed"] and out["ddp_smoke"].get("ok", False)
                 and out["train"].get("loss_fell", False))
    save()
    print(f"gpu_check: ok={out['ok']} in {clock.elapsed():.0f}s -> {a.out}", flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
