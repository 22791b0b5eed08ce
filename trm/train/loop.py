"""The training loop, with the official semantics (reference-models.md section 2).

One optimizer step per supervision segment. The batch is a rolling carry of B slots: a slot
whose sample halted (or used up N_sup segments) takes the next batch's sample in that slot,
with its latents reset to the fixed init; the others keep their sample and their detached
latents. Loss per slot is the token mean over non-ignored labels, summed over the batch and
divided by the global batch, plus 0.5 x the halting losses.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trm import config as C
from trm.data.dataset import PuzzleSplit, load_split
from trm.model import build_model
from trm.train import checkpoint as ckpt
from trm.train import losses
from trm.train.ema import EMA
from trm.train.evaluate import evaluate, example_puzzle_ids
from trm.train.optim import build_optimizers, set_lr
from trm.train.sampler import GroupSampler


class Diverged(RuntimeError):
    pass


class Optimizers:
    """The main optimizer and the puzzle-embedding sign-SGD, stepped together on one schedule."""

    def __init__(self, model: torch.nn.Module, spec: C.OptimSpec, total_steps: int):
        self.model, self.spec, self.total_steps = model, spec, total_steps
        self.pairs = build_optimizers(model, spec, total_steps)
        self.current_lr = 0.0

    def zero_grad(self) -> None:
        for opt, _ in self.pairs:
            opt.zero_grad(set_to_none=True)

    def step(self, completed_steps: int):
        """One optimizer step (the schedule reads how many were taken before it)."""
        self.current_lr = set_lr(self.pairs, completed_steps, self.spec, self.total_steps)[0]
        norm = None
        if self.spec.grad_clip:
            params = [p for p in self.model.parameters() if p.grad is not None]
            norm = torch.nn.utils.clip_grad_norm_(params, self.spec.grad_clip)
        for opt, _ in self.pairs:
            opt.step()
        return norm

    def state_dict(self) -> dict:
        return {"optimizers": [opt.state_dict() for opt, _ in self.pairs]}

    def load_state_dict(self, state: dict) -> None:
        for (opt, _), s in zip(self.pairs, state["optimizers"], strict=True):
            opt.load_state_dict(s)


@dataclass
class Carry:
    """The rolling batch: per-slot sample, latents, segment counter and halted flag."""

    latents: tuple
    inputs: torch.Tensor
    labels: torch.Tensor
    puzzle_ids: torch.Tensor
    steps: torch.Tensor
    halted: torch.Tensor

    def state_dict(self) -> dict:
        return {
            "latents": list(self.latents),
            "inputs": self.inputs,
            "labels": self.labels,
            "puzzle_ids": self.puzzle_ids,
            "steps": self.steps,
            "halted": self.halted,
        }

    @classmethod
    def from_state(cls, s: dict, device) -> "Carry":
        return cls(
            tuple(t.to(device) for t in s["latents"]),
            s["inputs"].to(device),
            s["labels"].to(device),
            s["puzzle_ids"].to(device),
            s["steps"].to(device),
            s["halted"].to(device),
        )


def pick_device(spec: C.TrainSpec) -> torch.device:
    if spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def total_steps(spec: C.RunSpec, train: PuzzleSplit) -> int:
    """Fixed optimizer-step budget; with `epochs`, counted the official way."""
    t = spec.train
    if t.epochs <= 0:
        return t.steps
    groups = int(train.meta.get("total_groups", len(train.group_indices) - 1))
    mean_ex = float(train.meta.get("mean_puzzle_examples", 1.0))
    return max(1, int(t.epochs * groups * mean_ex / t.global_batch_size))


class Trainer:
    def __init__(self, spec: C.RunSpec, run_dir: Path, data_dir: Path):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        t = spec.train
        torch.set_num_threads(t.threads)
        torch.manual_seed(t.seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        self.device = pick_device(t)
        if self.device.type == "cuda" and t.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.train_split = load_split(self.data_dir, "train")
        self.test_split = load_split(self.data_dir, "test")
        meta = self.train_split.meta
        self.ignore_id = meta.get("ignore_label_id", 0)
        self.ignore_id = -100 if self.ignore_id is None else int(self.ignore_id)
        self.model = build_model(
            spec.model,
            vocab_size=int(meta["vocab_size"]),
            seq_len=int(meta["seq_len"]),
            num_puzzle_ids=int(meta.get("num_puzzle_identifiers", 1)),
        ).to(self.device)
        self.total_steps = total_steps(spec, self.train_split)
        self.optim = Optimizers(self.model, spec.optim, self.total_steps)
        self.ema = EMA(self.model, t.ema_rate) if t.ema else None
        self.sampler = GroupSampler(self.train_split, t.global_batch_size, t.seed)
        self.example_pids = example_puzzle_ids(self.train_split)
        self.explore = torch.Generator(device="cpu").manual_seed(t.seed + 1_000_003)
        self.step = 0
        self.carry = self._empty_carry()
        self.train_time = 0.0

    # ---------------------------------------------------------------- carry
    def _empty_carry(self) -> Carry:
        B, L = self.spec.train.global_batch_size, self.train_split.inputs.shape[1]
        z = lambda: torch.zeros(B, L, dtype=torch.long, device=self.device)  # noqa: E731
        return Carry(
            self.model.initial_latents(B, self.device),
            z(),
            z(),
            torch.zeros(B, dtype=torch.long, device=self.device),
            torch.zeros(B, dtype=torch.long, device=self.device),
            torch.ones(B, dtype=torch.bool, device=self.device),  # all slots take new data
        )

    def _refill(self, c: Carry) -> Carry:
        idx = self.sampler.next_batch()
        s = self.train_split
        new_in = torch.as_tensor(s.inputs[idx], dtype=torch.long, device=self.device)
        new_lab = torch.as_tensor(s.labels[idx], dtype=torch.long, device=self.device)
        new_pid = torch.as_tensor(self.example_pids[idx], dtype=torch.long, device=self.device)
        h = c.halted
        return Carry(
            self.model.reset_latents(c.latents, h),
            torch.where(h[:, None], new_in, c.inputs),
            torch.where(h[:, None], new_lab, c.labels),
            torch.where(h, new_pid, c.puzzle_ids),
            torch.where(h, torch.zeros_like(c.steps), c.steps),
            c.halted,
        )

    # ---------------------------------------------------------------- one step
    def train_step(self) -> dict:
        m, t = self.spec.model, self.spec.train
        c = self._refill(self.carry)
        B = t.global_batch_size
        latents, logits, q_halt, q_cont = self.model(c.latents, c.inputs, c.puzzle_ids)
        steps = c.steps + 1
        mask = c.labels != self.ignore_id
        with torch.no_grad():
            hit = (logits.argmax(-1) == c.labels) & mask
            seq_correct = hit.sum(-1) == mask.sum(-1)
        loss = losses.lm_loss(logits, c.labels, t.loss, self.ignore_id)  # summed token means
        halt_loss = torch.zeros((), dtype=loss.dtype, device=loss.device)
        if m.halting != "none":
            halt_loss = losses.halt_bce(q_halt, seq_correct)
        is_last = steps >= m.n_supervision
        if m.halting == "q_learning":
            # Q-learning continue target from a second, no-grad segment on the new carry
            # (official HRM; no replay buffer or target network).
            with torch.no_grad():
                _, _, nq_halt, nq_cont = self.model(latents, c.inputs, c.puzzle_ids)
                target = torch.sigmoid(torch.where(is_last, nq_halt, torch.maximum(nq_halt, nq_cont)))
            halt_loss = halt_loss + losses.halt_bce(q_cont, target)
        total = (loss + t.halt_loss_weight * halt_loss) / B
        if not torch.isfinite(total):
            raise Diverged(f"non-finite loss {float(total.detach())} at step {self.step + 1}")
        self.optim.zero_grad()
        total.backward()
        grad_norm = self.optim.step(self.step)
        if self.ema is not None:
            self.ema.update(self.model)
        # Halting decisions for the next segment (training only; eval runs all steps).
        with torch.no_grad():
            halted = is_last.clone()
            if m.halting != "none" and m.n_supervision > 1:
                if m.halting == "bce":
                    halted |= q_halt > 0
                else:
                    halted |= q_halt > q_cont
                explore = torch.rand(B, generator=self.explore) < m.halt_exploration_prob
                min_steps = torch.randint(2, m.n_supervision + 1, (B,), generator=self.explore)
                min_steps = (explore.long() * min_steps).to(self.device)
                halted &= steps >= min_steps
                halted |= is_last
        self.carry = Carry(latents, c.inputs, c.labels, c.puzzle_ids, steps, halted)
        self.step += 1
        done = halted
        return {
            "step": self.step,
            "loss": float(total.detach()),
            "lm_loss": float(loss.detach()) / B,
            "lr": self.optim.current_lr,
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "halted_frac": float(halted.float().mean()),
            "train_exact": float(seq_correct[done].float().mean()) if done.any() else None,
            "mean_segments": float(steps[done].float().mean()) if done.any() else None,
        }

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else {},
            "optim": self.optim.state_dict(),
            "sampler": self.sampler.state_dict(),
            "carry": self.carry.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "explore_rng": self.explore.get_state(),
            "train_time": self.train_time,
        }

    def load_state_dict(self, s: dict) -> None:
        self.step = int(s["step"])
        self.model.load_state_dict(s["model"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.optim.load_state_dict(s["optim"])
        self.sampler.load_state_dict(s["sampler"])
        self.carry = Carry.from_state(s["carry"], self.device)
        torch.set_rng_state(s["torch_rng"])
        self.explore.set_state(s["explore_rng"])
        self.train_time = float(s["train_time"])

    # ---------------------------------------------------------------- eval
    def evaluate(self, max_examples: int = 0) -> dict:
        ev = self.spec.eval
        n_sup = ev.n_supervision or self.spec.model.n_supervision
        n_steps = max([n_sup, *ev.extra_n_supervision])
        ctx = self.ema.applied(self.model) if self.ema else _nullcontext()
        with ctx:
            return evaluate(self.model, self.test_split, n_steps, ev.batch_size, self.device, max_examples)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def run(spec: C.RunSpec, run_dir: Path, data_dir: Path, progress: bool | None = None) -> dict:
    """Train (resuming from run_dir/checkpoints when present), evaluate, write metrics.json.

    metrics.json is written last and atomically: its presence means the run is finished.
    Its content is a pure function of the spec and data (timings live in run_info.json),
    so a killed-and-resumed run writes the same bytes as an uninterrupted one.
    """
    from trm.train import provenance

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    C.dump_spec(spec, run_dir / "spec.yaml")
    trainer = Trainer(spec, run_dir, data_dir)
    ckpt_dir = run_dir / "checkpoints"
    resumed_from = 0
    state = ckpt.load(ckpt_dir)
    if state is not None:
        trainer.load_state_dict(state)
        resumed_from = trainer.step
    info = provenance.run_info(spec, trainer, resumed_from)
    ckpt.atomic_write_json(run_dir / "run_info.json", info)
    log_path = run_dir / "train.jsonl"
    _truncate_log(log_path, trainer.step)
    t = spec.train
    status, diverged_at, error = "ok", None, None
    bar = _progress(trainer.total_steps, trainer.step, progress)
    with open(log_path, "a") as log:
        while trainer.step < trainer.total_steps:
            t0 = time.perf_counter()
            try:
                rec = trainer.train_step()
            except Diverged as e:
                status, diverged_at, error = "diverged", trainer.step + 1, str(e)
                break
            trainer.train_time += time.perf_counter() - t0
            bar.update(1)
            s = trainer.step
            if s % t.log_interval == 0 or s == trainer.total_steps:
                log.write(_json(rec) + "\n")
                log.flush()
            if t.eval_interval and s % t.eval_interval == 0 and s < trainer.total_steps:
                ev = trainer.evaluate(max_examples=spec.eval.max_examples)
                log.write(_json({"step": s, "eval_exact_accuracy": ev["exact_accuracy"],
                                 "eval_cell_accuracy": ev["cell_accuracy"]}) + "\n")
                log.flush()
            if s % t.checkpoint_interval == 0 or s == trainer.total_steps:
                ckpt.save(trainer.state_dict(), ckpt_dir)
    bar.close()
    metrics = _metrics(spec, trainer, status, diverged_at, error)
    info.update(provenance.finish(info, trainer))
    ckpt.atomic_write_json(run_dir / "run_info.json", info)
    ckpt.atomic_write_json(run_dir / "metrics.json", metrics)
    return metrics


def _metrics(spec: C.RunSpec, trainer: Trainer, status: str, diverged_at, error) -> dict:
    counts = trainer.model.param_counts()
    calls = trainer.model.call_counts()
    out = {
        "status": status,
        "task": spec.data.task,
        "model": spec.name,
        "sig": C.signature(spec),
        "seed": spec.train.seed,
        "steps": trainer.step,
        "total_steps": trainer.total_steps,
        "diverged_at_step": diverged_at,
        "error": error,
        **counts,
        **calls,
        "effective_depth": C.effective_depth(spec.model),
        "train_flops": None,
        "data_provenance": trainer.train_split.meta.get("provenance", {"kind": "unknown"}),
        "spec": C.to_dict(spec),
    }
    if status != "ok":
        return out
    ev = trainer.evaluate()
    n_sup = spec.eval.n_supervision or spec.model.n_supervision
    np.savez_compressed(
        trainer.run_dir / "predictions.npz", correct=ev["correct"][n_sup - 1]
    )
    out.update(
        {
            "n_test": ev["n"],
            "n_supervision_eval": n_sup,
            "exact_accuracy": ev["exact_accuracy"][n_sup - 1],
            "cell_accuracy": ev["cell_accuracy"][n_sup - 1],
            "per_step": {"exact_accuracy": ev["exact_accuracy"], "cell_accuracy": ev["cell_accuracy"]},
            "test_time": [
                {
                    "n_supervision": k,
                    "exact_accuracy": ev["exact_accuracy"][k - 1],
                    "cell_accuracy": ev["cell_accuracy"][k - 1],
                }
                for k in sorted({n_sup, *spec.eval.extra_n_supervision})
            ],
            "halting": ev["halting"],
        }
    )
    return out


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)


def _truncate_log(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint, so the log matches a clean run."""
    if not path.exists():
        return
    import json

    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if rec.get("step", 0) <= step:
            keep.append(line)
    ckpt.atomic_write_text(path, "".join(line + "\n" for line in keep))


def _progress(total: int, start: int, enabled: bool | None):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        enabled = False
    if enabled is False:
        class _Null:
            def update(self, n):
                pass

            def close(self):
                pass
        return _Null()
    # disable=None: quiet when not a TTY (Snakemake logs, SLURM).
    return tqdm(total=total, initial=start, disable=None if enabled is None else not enabled,
                mininterval=5, desc="train")
