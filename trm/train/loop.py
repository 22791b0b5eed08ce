"""The training loop, with the official semantics (reference-models.md section 2).

One optimizer step per supervision segment. The batch is a rolling carry of B slots: a slot
whose sample halted (or used up N_sup segments) takes the next batch's sample in that slot,
with its latents reset to the fixed init; the others keep their sample and their detached
latents. Loss per slot is the token mean over non-ignored labels, summed over the batch and
divided by the global batch, plus 0.5 x the halting losses.

Data parallel (trm.train.distributed): with W processes, rank r holds slots
[r*B/W, (r+1)*B/W) of the carry; every rank draws the same global batch and keeps its slice,
draws the same halting-exploration numbers for all B slots and keeps its slice, scales its
loss by 1/B (global) and all-reduces gradients with SUM; the puzzle-embedding sign-SGD sees the
all-gathered rows. So W processes compute the 1-process run up to float summation order.
Rank 0 writes every file. Checkpoints hold the GLOBAL carry (gathered in slot order) and the
replicated state (model, EMA, optimizers, sampler position, exploration RNG); RNG streams are
the same on every rank, so a checkpoint resumes exactly with any world size that divides B.

Precision and speed paths: train.precision (fp32, or bf16 = autocast to bfloat16 around the
model on CUDA or CPU, losses float32/float64; see trm/train/precision.py), train.compile (torch.compile of the
L/H networks in place, so state_dict keys do not change; TRM_COMPILE_BACKEND overrides the
backend, default inductor), train.tf32 (TF32 matmuls on CUDA).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trm import config as C
from trm import rundir
from trm.data import identity as data_identity
from trm.data.dataset import PuzzleSplit, load_split
from trm.files import atomic_write_json, atomic_write_text, clean_temp_files
from trm.model import build_model, grad_call_count
from trm.train import checkpoint as ckpt
from trm.train import curriculum
from trm.train import distributed
from trm.train import losses
from trm.train import precision
from trm.train.device import compile_networks, configure_backends, pick_device
from trm.train.ema import EMA
from trm.train.evaluate import autocast, build_scorers, eval_indices, evaluate_steps, example_puzzle_ids
from trm.train.metrics_record import SINK_KEYS, eval_summary, metrics_record
from trm.train.optim import build_optimizers, set_lr
from trm.train.sampler import GroupSampler


class Diverged(RuntimeError):
    pass


@torch.no_grad()
def sequence_correct(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per sequence: every non-ignored token predicted right (the BCE halting target)."""
    hit = (logits.argmax(-1) == labels) & mask
    return hit.sum(-1) == mask.sum(-1)


@torch.no_grad()
def q_continue_target(is_last: torch.Tensor, next_q_halt: torch.Tensor,
                      next_q_cont: torch.Tensor) -> torch.Tensor:
    """HRM's Q-learning target for 'continue', from the next segment's Q-values: its halt
    value at the last allowed step, else the better of halting and continuing."""
    return torch.sigmoid(torch.where(is_last, next_q_halt, torch.maximum(next_q_halt, next_q_cont)))


@torch.no_grad()
def halt_decision(halting: str, n_supervision: int, steps: torch.Tensor, q_halt: torch.Tensor,
                  q_cont: torch.Tensor | None, min_steps: torch.Tensor) -> torch.Tensor:
    """Which slots halt after this segment (training only). Always at N_sup; before that
    when the head says so (bce: halt logit > 0; q_learning: Q(halt) > Q(continue)), but not
    before `min_steps` (exploration: a random minimum for a fraction of slots)."""
    is_last = steps >= n_supervision
    if halting == "none" or n_supervision <= 1:
        return is_last
    wants = q_halt > 0 if halting == "bce" else q_halt > q_cont
    return is_last | (wants & (steps >= min_steps))


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
    """The rolling batch: per-slot sample, latents, segment counter and halted flag.
    In a data-parallel run each rank holds its slice of the slots."""

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
    def from_state(cls, s: dict, device, slots: slice = slice(None)) -> "Carry":
        """`slots`: this rank's part of a saved (global) carry."""
        return cls(
            tuple(t[slots].to(device) for t in s["latents"]),
            s["inputs"][slots].to(device),
            s["labels"][slots].to(device),
            s["puzzle_ids"][slots].to(device),
            s["steps"][slots].to(device),
            s["halted"][slots].to(device),
        )


def total_steps(spec: C.RunSpec, train: PuzzleSplit) -> int:
    """Fixed optimizer-step budget; with `epochs`, counted the official way."""
    t = spec.train
    if t.epochs <= 0:
        return t.steps
    groups = int(train.meta.get("total_groups", len(train.group_indices) - 1))
    mean_ex = float(train.meta.get("mean_puzzle_examples", 1.0))
    return max(1, int(t.epochs * groups * mean_ex / t.global_batch_size))


class Trainer:
    def __init__(self, spec: C.RunSpec, run_dir: Path, data_dir: Path, comm=None):
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.data_dir = Path(data_dir)
        t = spec.train
        torch.set_num_threads(t.threads)
        torch.manual_seed(t.seed)  # same on every rank (and the model is broadcast anyway)
        self.comm = comm or distributed.single(pick_device(t))
        self.device = self.comm.device
        configure_backends(t, self.device)
        # A spec file written elsewhere may name bf16 for a device that lacks it: refuse.
        precision.check_supported(t.precision, self.device.type)
        self.bf16 = t.precision == "bf16"
        self.global_batch = t.global_batch_size
        self.local_batch = distributed.check_batch(self.global_batch, self.comm.world_size)
        self.slots = slice(self.comm.rank * self.local_batch, (self.comm.rank + 1) * self.local_batch)
        self.train_split = load_split(self.data_dir, "train")
        self.test_split = load_split(self.data_dir, "test")
        # Identity before any batch: the arrays hash to dataset.json's content hash and were
        # built for this data spec; an external dataset is recorded with its real shape.
        self.data_provenance = data_identity.check_dataset(
            self.data_dir, spec.data, {"train": self.train_split, "test": self.test_split})
        meta = self.train_split.meta
        self.ignore_id = meta.get("ignore_label_id", 0)
        self.ignore_id = -100 if self.ignore_id is None else int(self.ignore_id)
        self.model = build_model(
            spec.model,
            vocab_size=int(meta["vocab_size"]),
            seq_len=int(meta["seq_len"]),
            num_puzzle_ids=int(meta.get("num_puzzle_identifiers", 1)),
        ).to(self.device)
        self.comm.broadcast_module(self.model)
        if t.compile:
            compile_networks(self.model)
        self.total_steps = total_steps(spec, self.train_split)
        # train.depth_curriculum as step ranges (one stage at the model's depth without one).
        self.depth_stages = curriculum.depth_schedule(spec, self.total_steps)
        self.optim = Optimizers(self.model, spec.optim, self.total_steps)
        self.ema = EMA(self.model, t.ema_rate) if t.ema else None
        # The global sampler on every rank (identical state); each rank keeps its slice.
        self.sampler = GroupSampler(self.train_split, self.global_batch, t.seed)
        self.example_pids = example_puzzle_ids(self.train_split)
        self.explore = torch.Generator(device="cpu").manual_seed(t.seed + 1_000_003)
        self.step = 0
        self.carry = self._empty_carry()
        self.train_time = 0.0
        # Evaluation: the headline N_sup, test-time extras, the fixed periodic subsample.
        ev = spec.eval
        self.n_sup_eval = ev.n_supervision or spec.model.n_supervision
        self.eval_ks = sorted({self.n_sup_eval, *ev.extra_n_supervision})
        self.periodic_indices = eval_indices(self.test_split, ev.max_examples, spec.data.seed)
        self._scorers = None
        self.arc_votes = None
        if ev.arc_aggregated_voting and spec.data.task in ("arc1", "arc2"):
            from trm.train.arc_eval import VoteTable

            self.arc_votes = VoteTable()

    # ---------------------------------------------------------------- carry
    def _empty_carry(self) -> Carry:
        b, L = self.local_batch, self.train_split.inputs.shape[1]
        z = lambda: torch.zeros(b, L, dtype=torch.long, device=self.device)  # noqa: E731
        return Carry(
            self.model.initial_latents(b, self.device),
            z(),
            z(),
            torch.zeros(b, dtype=torch.long, device=self.device),
            torch.zeros(b, dtype=torch.long, device=self.device),
            torch.ones(b, dtype=torch.bool, device=self.device),  # all slots take new data
        )

    def _refill(self, c: Carry) -> Carry:
        idx = self.sampler.next_batch()[self.slots]  # this rank's slice of the global batch
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

    # ---------------------------------------------------------------- depth schedule
    def depth_at(self, step: int) -> tuple[int, int]:
        """(n, T) of the optimizer step that starts after `step` completed steps."""
        return curriculum.depth_at(self.depth_stages, step, self.spec.model)

    def _set_training_depth(self) -> None:
        """The curriculum's depth for the next step (trm/train/curriculum.py)."""
        if self.spec.model.arch != "recursive":
            return
        n, T = self.depth_at(self.step)
        if (self.model.n_latent_steps, self.model.n_cycles) != (n, T):
            self.model.set_depth(n, T)

    def training_call_counts(self, steps_run: int | None = None) -> dict:
        """Network calls per optimizer step over the first `steps_run` steps (default: the
        steps done so far), each stage of a depth curriculum weighted by its steps; without
        one, model.call_counts() at the model's depth (its integers, so records of runs
        without a curriculum keep their bytes)."""
        steps_run = self.step if steps_run is None else steps_run
        mean = curriculum.mean_call_counts(self.spec, self.total_steps, steps_run, grad_call_count)
        return dict(self.model.call_counts()) if mean is None else mean

    def depth_schedule_record(self) -> dict:
        """train.depth_curriculum as run_info.json shows it (curriculum.schedule_record)."""
        return curriculum.schedule_record(self.spec, self.total_steps, grad_call_count)

    # ---------------------------------------------------------------- one step
    def train_step(self) -> dict:
        m, t = self.spec.model, self.spec.train
        self._set_training_depth()
        c = self._refill(self.carry)
        B = self.global_batch
        with autocast(self.device, self.bf16):
            latents, logits, q_halt, q_cont = self.model(c.latents, c.inputs, c.puzzle_ids)
        steps = c.steps + 1
        mask = c.labels != self.ignore_id
        seq_correct = sequence_correct(logits, c.labels, mask)  # the halting head's target
        loss = losses.lm_loss(logits, c.labels, t.loss, self.ignore_id)  # summed token means
        halt_loss = torch.zeros((), dtype=loss.dtype, device=loss.device)
        if m.halting != "none":
            halt_loss = losses.halt_bce(q_halt, seq_correct)
        is_last = steps >= m.n_supervision
        if m.halting == "q_learning":
            # Q-learning continue target from a second, no-grad segment on the new carry
            # (official HRM; no replay buffer or target network).
            with torch.no_grad(), autocast(self.device, self.bf16):
                _, _, nq_halt, nq_cont = self.model(latents, c.inputs, c.puzzle_ids)
            halt_loss = halt_loss + losses.halt_bce(q_cont, q_continue_target(is_last, nq_halt, nq_cont))
        total = (loss + t.halt_loss_weight * halt_loss) / B  # 1/GLOBAL batch on every rank
        # Global loss values (for logs) and one divergence verdict shared by all ranks.
        sums = self.comm.all_reduce_sum(torch.stack([total.detach(), loss.detach()]).double())
        if not torch.isfinite(sums[0]):
            raise Diverged(f"non-finite loss {float(sums[0])} at step {self.step + 1}")
        total.backward()
        self.comm.all_reduce_grads(self.model)
        self.comm.gather_puzzle_grads(getattr(self.model, "puzzle_emb", None))
        grad_norm = self.optim.step(self.step)
        # Free the gradients right after the step (set_to_none), as the official loop does:
        # zeroing only before the next backward keeps a full set of gradients alive through
        # the next forward (HRM paper scale b8: peak 1,129 vs the official 996 MiB).
        self.optim.zero_grad()
        if self.ema is not None:
            self.ema.update(self.model)
        # Halting decisions for the next segment (training only; eval runs all steps).
        # The exploration draws cover all B global slots on every rank; each keeps its slice.
        with torch.no_grad():
            min_steps = torch.zeros_like(steps)
            if m.halting != "none" and m.n_supervision > 1:
                explore = torch.rand(B, generator=self.explore) < m.halt_exploration_prob
                draws = torch.randint(2, m.n_supervision + 1, (B,), generator=self.explore)
                min_steps = (explore.long() * draws)[self.slots].to(self.device)
            halted = halt_decision(m.halting, m.n_supervision, steps, q_halt, q_cont, min_steps)
        self.carry = Carry(latents, c.inputs, c.labels, c.puzzle_ids, steps, halted)
        self.step += 1
        # Per-slot statistics of the whole global batch (identical on every rank).
        per_slot = self.comm.all_gather_cat(torch.stack([halted.long(), seq_correct.long(), steps], 1))
        done, correct, seg = per_slot[:, 0].bool(), per_slot[:, 1].bool(), per_slot[:, 2]
        rec = {
            "step": self.step,
            "loss": float(sums[0]),
            "lm_loss": float(sums[1]) / B,
            "lr": self.optim.current_lr,
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "halted_frac": float(done.float().mean()),
            "train_exact": float(correct[done].float().mean()) if done.any() else None,
            "mean_segments": float(seg[done].float().mean()) if done.any() else None,
        }
        if t.depth_curriculum:  # only then: logs of runs without one keep their exact bytes
            rec["n_latent_steps"], rec["n_cycles"] = self.model.n_latent_steps, self.model.n_cycles
        return rec

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Collective in a data-parallel run (the carry is gathered); complete on rank 0,
        None elsewhere."""
        carry = {}
        for key, value in self.carry.state_dict().items():
            if key == "latents":
                carry[key] = [self.comm.gather_cat_to_main(t) for t in value]
            else:
                carry[key] = self.comm.gather_cat_to_main(value)
        if not self.comm.is_main:
            return None
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema else {},
            "optim": self.optim.state_dict(),
            "sampler": self.sampler.state_dict(),
            "carry": carry,  # the global carry, slots in order
            "torch_rng": torch.get_rng_state(),
            "explore_rng": self.explore.get_state(),  # replicated: the same on every rank
            "train_time": self.train_time,
            "arc_votes": self.arc_votes.state_dict() if self.arc_votes is not None else None,
            "world_size": self.comm.world_size,  # informational: any divisor of B resumes
            "identity": self.identity(),  # a resume must be this run's: ckpt.check_identity
        }

    def identity(self) -> dict:
        return {"sig": C.signature(self.spec), "seed": self.spec.train.seed,
                "total_steps": self.total_steps}

    def load_state_dict(self, s: dict) -> None:
        self.step = int(s["step"])
        self.model.load_state_dict(s["model"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.optim.load_state_dict(s["optim"])
        self.sampler.load_state_dict(s["sampler"])
        saved_b = int(s["carry"]["steps"].shape[0])
        if saved_b != self.global_batch:
            raise ValueError(f"checkpoint carry has {saved_b} slots, train.global_batch_size is "
                             f"{self.global_batch}")
        self.carry = Carry.from_state(s["carry"], self.device, self.slots)
        torch.set_rng_state(s["torch_rng"])
        self.explore.set_state(s["explore_rng"])
        self.train_time = float(s["train_time"])
        self._set_training_depth()  # mid-curriculum: the stage of the restored step
        if self.arc_votes is not None and s.get("arc_votes") is not None:
            from trm.train.arc_eval import VoteTable

            self.arc_votes = VoteTable.from_state(s["arc_votes"])

    # ---------------------------------------------------------------- eval
    def scorers(self) -> list:
        if self._scorers is None:
            self._scorers = build_scorers(self.spec.data.task, self.test_split, self.data_dir,
                                          self.eval_ks)
        return self._scorers

    def evaluate(self, periodic: bool = False) -> dict:
        """All ranks take part. periodic=True: the fixed subsample (eval.max_examples);
        otherwise the whole test split. EMA weights when the run uses EMA."""
        ev = self.spec.eval
        ctx = self.ema.applied(self.model) if self.ema else _nullcontext()
        # Always at the model's own depth: a periodic evaluation mid-curriculum measures the
        # model that is being trained, not the stage's shallower recursion.
        m = self.spec.model
        training_depth = (self.model.n_latent_steps, self.model.n_cycles)
        if m.arch == "recursive":
            self.model.set_depth(m.n_latent_steps, m.n_cycles)
        try:
            with ctx:
                out = evaluate_steps(self.model, self.test_split, self.eval_ks, ev.batch_size,
                                     self.device, indices=self.periodic_indices if periodic else None,
                                     scorers=self.scorers(), comm=self.comm, bf16=self.bf16,
                                     halting_at=self.n_sup_eval)
        finally:
            if m.arch == "recursive":
                self.model.set_depth(*training_depth)
        arc = out["scorers"].get("arc")
        if arc is not None:
            from trm.train.arc_eval import score

            for k in arc:
                arc[k]["voting"] = "per_checkpoint"
            if self.arc_votes is not None:
                self.arc_votes.merge(self._scorers[0].tables[self.n_sup_eval])
                arc[self.n_sup_eval] = score(self.arc_votes) | {"voting": "aggregated"}
        return out


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

    In a data-parallel launch (torchrun, submitit/SLURM tasks) every rank calls this; the
    process group is set up from the environment (trm.train.distributed.setup), rank 0 writes.
    """
    comm = distributed.setup(spec.train.device)
    try:
        return _run(spec, Path(run_dir), Path(data_dir), progress, comm)
    finally:
        comm.close()


def _run(spec: C.RunSpec, run_dir: Path, data_dir: Path, progress, comm) -> dict:
    from trm.train import logging_extras, provenance

    main = comm.is_main
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Half-written temp files of an earlier attempt that was killed mid-write.
        clean_temp_files(run_dir)
        clean_temp_files(run_dir / rundir.CHECKPOINTS)
    trainer = Trainer(spec, run_dir, data_dir, comm)
    ckpt_dir = run_dir / rundir.CHECKPOINTS
    resumed_from = 0
    state = ckpt.load(ckpt_dir)  # every rank reads the same file
    if state is not None:
        ckpt.check_identity(state, trainer.identity(), ckpt_dir / ckpt.LATEST)
        trainer.load_state_dict(state)
        resumed_from = trainer.step
    del state
    if main:  # only now: a refused dataset or checkpoint leaves the run directory as it was
        C.dump_spec(spec, run_dir / rundir.SPEC)
    info = provenance.run_info(spec, trainer, resumed_from) if main else {}
    if main and spec.train.depth_curriculum:
        info["depth_curriculum"] = trainer.depth_schedule_record()
    log_path = run_dir / rundir.TRAIN_LOG
    if main:
        atomic_write_json(run_dir / rundir.RUN_INFO, info)
        _truncate_log(log_path, trainer.step)
    sinks = logging_extras.open_sinks(spec, run_dir, enabled=main)
    t = spec.train
    status, diverged_at, error = "ok", None, None
    bar = _progress(trainer.total_steps, trainer.step, progress if main else False)
    log = open(log_path, "a") if main else None
    try:
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
                if main:
                    log.write(_json(rec) + "\n")
                    log.flush()
                sinks.log(rec, s)
            if t.eval_interval and s % t.eval_interval == 0 and s < trainer.total_steps:
                erec = {"step": s, **eval_summary(trainer.evaluate(periodic=True), trainer.n_sup_eval)}
                if main:
                    log.write(_json(erec) + "\n")
                    log.flush()
                sinks.log(erec, s)
            if s % t.checkpoint_interval == 0 or s == trainer.total_steps:
                state = trainer.state_dict()  # collective
                if main:
                    ckpt.save(state, ckpt_dir)
                del state
    finally:
        bar.close()
        if log is not None:
            log.close()
    metrics = metrics_record(spec, trainer, status, diverged_at, error)
    if main:
        info.update(provenance.finish(info, trainer))
        atomic_write_json(run_dir / rundir.RUN_INFO, info)
        rundir.write_metrics(run_dir, metrics)
        sinks.log({k: v for k, v in metrics.items() if k in SINK_KEYS}, trainer.step)
    sinks.close()
    comm.barrier()  # nobody leaves before rank 0 has written the record
    return metrics


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
    atomic_write_text(path, "".join(line + "\n" for line in keep))


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
