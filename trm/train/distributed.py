"""Data parallelism over torch.distributed with the official HRM/TRM semantics.

Set-up comes from the environment a launcher provides, in this order:

  1. a process group that is already initialised (a test, or a caller that did it itself);
  2. torchrun / any env:// launcher: RANK, WORLD_SIZE (+ LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
  3. submitit on SLURM (SUBMITIT_EXECUTOR=slurm, SLURM_NTASKS > 1):
     submitit.helpers.TorchDistributedEnvironment().export() fills the variables of 2;
  4. plain srun (SLURM_NTASKS > 1, SLURM_PROCID): rank from SLURM_PROCID, world from
     SLURM_NTASKS, local rank from SLURM_LOCALID, master = first host of SLURM_JOB_NODELIST
     (`scontrol show hostnames`), port derived from the job id;
  5. otherwise a single process (no process group at all).

Backend: NCCL when the run uses CUDA (one GPU per process, cuda:LOCAL_RANK), gloo on CPU.

What a data-parallel step does (official pretrain.py + CastedSparseEmbeddingSignSGD_Distributed):
  - the global batch B (train.global_batch_size) is fixed and must be divisible by the world
    size W; rank r holds slots [r*B/W, (r+1)*B/W) of the rolling carry;
  - every rank draws the same global batch from the same sampler and keeps its slice, so the
    union over ranks is exactly the 1-process batch;
  - the loss is pre-scaled by 1/B (the GLOBAL batch) and gradients are all-reduced with SUM,
    so every rank ends with the 1-process gradient (up to float summation order);
  - parameters and buffers are broadcast from rank 0 once, after construction/resume;
  - the puzzle-embedding sign-SGD gathers every rank's (row gradient, id) pairs, in rank
    order, so every rank applies the same sparse update to its replica of the table.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import zlib
from dataclasses import dataclass

import torch
import torch.distributed as dist

# How long a collective may wait before failing (a crashed rank must not hang the others forever).
TIMEOUT_MIN = float(os.environ.get("TRM_DIST_TIMEOUT_MIN", "30"))


class DistributedSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class DistEnv:
    """What the launcher told this process; world_size 1 means 'no process group'."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    source: str = "single"  # existing | env | submitit | slurm | single


def _int(environ, key, default=None):
    value = environ.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as e:
        raise DistributedSetupError(f"environment variable {key}={value!r} is not an integer") from e


def _slurm_first_host(nodelist: str) -> str:
    """First hostname of a SLURM nodelist such as 'gpu[01-04],cpu7'."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    # No scontrol: expand the first entry by hand ('gpu[01-04,07]' -> 'gpu01').
    first = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist
    if "[" in first:
        prefix, rest = first.split("[", 1)
        return prefix + rest.split("]")[0].split(",")[0].split("-")[0]
    return first


def detect(environ=None, first_host=_slurm_first_host) -> DistEnv:
    """Read the launcher's environment (pure apart from `first_host`; no process group)."""
    env = os.environ if environ is None else environ
    world = _int(env, "WORLD_SIZE")
    if world is not None and "RANK" in env:
        return DistEnv(rank=_int(env, "RANK"), world_size=world,
                       local_rank=_int(env, "LOCAL_RANK", _int(env, "SLURM_LOCALID", 0)),
                       master_addr=env.get("MASTER_ADDR"),
                       master_port=_int(env, "MASTER_PORT"), source="env")
    ntasks = _int(env, "SLURM_NTASKS", 1)
    if ntasks > 1 and "SLURM_PROCID" in env:
        job = env.get("SLURM_JOB_ID", "0")
        port = _int(env, "MASTER_PORT") or 20000 + zlib.crc32(job.encode()) % 40000
        return DistEnv(rank=_int(env, "SLURM_PROCID"), world_size=ntasks,
                       local_rank=_int(env, "SLURM_LOCALID", 0),
                       master_addr=env.get("MASTER_ADDR") or first_host(env.get("SLURM_JOB_NODELIST", "")),
                       master_port=port,
                       source="submitit" if env.get("SUBMITIT_EXECUTOR") == "slurm" else "slurm")
    return DistEnv()


class Comm:
    """The collectives the trainer needs; every method is the identity for one process."""

    def __init__(self, env: DistEnv, device: torch.device, backend: str | None, owned: bool):
        self.env, self.device, self.backend, self.owned = env, device, backend, owned
        self.rank, self.world_size = env.rank, env.world_size

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        return {"world_size": self.world_size, "rank": self.rank, "local_rank": self.env.local_rank,
                "backend": self.backend, "source": self.env.source}

    # ------------------------------------------------------------------ basic collectives
    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """In place; returns t."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-shaped tensors of all ranks along dim 0, in rank order."""
        if not self.enabled:
            return t
        src = _wire(t)
        parts = [torch.empty_like(src) for _ in range(self.world_size)]
        dist.all_gather(parts, src)
        return torch.cat(parts, dim=0).to(t.dtype)

    def gather_cat_to_main(self, t: torch.Tensor) -> torch.Tensor | None:
        """Like all_gather_cat, but only rank 0 receives (None elsewhere)."""
        if not self.enabled:
            return t
        src = _wire(t)
        parts = [torch.empty_like(src) for _ in range(self.world_size)] if self.is_main else None
        dist.gather(src, parts, dst=0)
        return torch.cat(parts, dim=0).to(t.dtype) if self.is_main else None

    def all_gather_object(self, obj) -> list:
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Parameters AND buffers (puzzle table, latent inits) from rank 0, so replicas match."""
        if not self.enabled:
            return
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)

    @torch.no_grad()
    def all_reduce_grads(self, module: torch.nn.Module) -> None:
        """SUM the gradients of all ranks (the loss was scaled by 1/global batch), coalesced
        into one flat buffer per dtype so a step costs one collective, not one per tensor."""
        if not self.enabled:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        by_dtype: dict = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(g)
        for group in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in group])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for g in group:
                n = g.numel()
                g.copy_(flat[offset:offset + n].view_as(g))
                offset += n

    @torch.no_grad()
    def gather_puzzle_grads(self, puzzle_emb) -> None:
        """Official CastedSparseEmbeddingSignSGD_Distributed: all-gather the (row gradient, id)
        pairs of the batch slices, so every rank's sign-SGD sees the global batch. Rewrites
        puzzle_emb.local_rows / local_ids in place (read by trm.train.optim.PuzzleSignSGD)."""
        if not self.enabled or puzzle_emb is None:
            return
        rows, ids = puzzle_emb.local_rows, puzzle_emb.local_ids
        if rows is None or rows.grad is None:
            return  # same on every rank: the same code path produced (or skipped) the rows
        grad = self.all_gather_cat(rows.grad)
        all_ids = self.all_gather_cat(ids)
        holder = torch.zeros_like(grad)
        holder.grad = grad
        puzzle_emb.local_rows, puzzle_emb.local_ids = holder, all_ids

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def _wire(t: torch.Tensor) -> torch.Tensor:
    """Contiguous, and bool as uint8 (not every backend reduces/gathers bool)."""
    t = t.detach().contiguous()
    return t.to(torch.uint8) if t.dtype == torch.bool else t


def single(device: torch.device) -> Comm:
    return Comm(DistEnv(), device, None, owned=False)


def setup(device_pref: str = "auto") -> Comm:
    """Join (or create) the process group the environment describes; pick this rank's device.

    device_pref: TrainSpec.device ("auto" | "cpu" | "cuda")."""
    want_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise DistributedSetupError("train.device=cuda but no CUDA device is available")
    if dist.is_available() and dist.is_initialized():
        env = DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(),
                      local_rank=_int(os.environ, "LOCAL_RANK", 0), source="existing")
        device = _device(want_cuda, env)
        return Comm(env, device, dist.get_backend(), owned=False)
    env = detect()
    if env.world_size <= 1:
        return single(_device(want_cuda, env))
    if not dist.is_available():
        raise DistributedSetupError("WORLD_SIZE > 1 but torch.distributed is not available")
    if env.source == "submitit":
        try:  # submitit's own view of the job (hostnames, port from the job id)
            from submitit.helpers import TorchDistributedEnvironment

            te = TorchDistributedEnvironment()
            env = DistEnv(rank=te.rank, world_size=te.world_size, local_rank=te.local_rank,
                          master_addr=te.master_addr, master_port=te.master_port, source="submitit")
        except Exception:  # noqa: BLE001 - fall back on the plain SLURM reading
            pass
    if env.master_addr is None or env.master_port is None:
        raise DistributedSetupError(
            f"world size {env.world_size} (from {env.source}) but MASTER_ADDR/MASTER_PORT are not set")
    os.environ.update({"MASTER_ADDR": str(env.master_addr), "MASTER_PORT": str(env.master_port),
                       "RANK": str(env.rank), "WORLD_SIZE": str(env.world_size),
                       "LOCAL_RANK": str(env.local_rank)})
    device = _device(want_cuda, env)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {}
    if device.type == "cuda":
        kwargs["device_id"] = device
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank,
                            world_size=env.world_size,
                            timeout=datetime.timedelta(minutes=TIMEOUT_MIN), **kwargs)
    return Comm(env, device, backend, owned=True)


def _device(want_cuda: bool, env: DistEnv) -> torch.device:
    if not want_cuda:
        return torch.device("cpu")
    # Deterministic cuBLAS (torch.use_deterministic_algorithms) needs this before first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    n = torch.cuda.device_count()
    # One GPU per process. When the launcher already restricted CUDA_VISIBLE_DEVICES to one
    # GPU per task, that GPU is cuda:0 whatever the local rank.
    index = env.local_rank if n > 1 else 0
    if index >= n:
        raise DistributedSetupError(f"local rank {env.local_rank} but only {n} visible GPU(s)")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def check_batch(global_batch: int, world_size: int) -> int:
    """Per-rank slots; a clear error when the global batch does not split evenly."""
    if global_batch % world_size:
        raise DistributedSetupError(
            f"train.global_batch_size={global_batch} is not divisible by the world size "
            f"{world_size}; the global batch is fixed (it sets the optimisation), so choose a "
            f"world size that divides it or change the batch (a different run signature)")
    return global_batch // world_size
