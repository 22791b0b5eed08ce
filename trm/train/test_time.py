"""Test-time compute on one trained run, every setting in one process (no retraining): the
evaluating layer of the test-time feature, between planning (trm/studies/test_time.py: the
settings vocabulary and which runs a study evaluates) and reporting (trm/results/test_time.py:
tables and figures from the records written here).

    python -m trm.train.test_time --run RUN_DIR --study test_time --settings JSON --out PATH
    python -m trm eval --run RUN_DIR --n-supervision 8 16 --n-cycles 3 4    # evaluate_run

Every path that evaluates at more supervision steps reads them from one evaluation of the
most steps (trm.train.evaluate.evaluate_steps): these sweeps, `trm eval`, and the trainer's
own final evaluation at eval.extra_n_supervision (metrics.json's test_time list).

The same weights (EMA when the run trained with EMA, as its own final evaluation) run on a
fixed seeded subsample of the test split (`max_examples` examples, whole groups, so that
ARC tasks keep all their augmented variants; eval_indices with the data seed, so every run
on one dataset sees the same puzzles). Four sweeps, each at the run's evaluation N_sup
(`K`) unless it varies it:

  n_supervision  accuracy after m x K supervision steps, m in n_supervision_multipliers:
                 ONE evaluation of max(m) x K steps, read after each step;
  depth          accuracy at other (n latent steps, T cycles) via model.set_depth;
  trajectories   PTRM-style (after Sghaier et al.): K' parallel trajectories per puzzle, each
                 with Gaussian noise of std sigma added to every carried latent (y and z)
                 before EVERY SUPERVISION STEP (PTRM: "at each deep-recursion step"; in TRM's
                 pseudo-code deep_recursion is one supervision step, so the noise is not
                 added inside the n x T latent updates). Per puzzle the trajectory whose
                 halting-head logit q_halt is highest after the last step is kept. Also
                 reported: the oracle (any of the K' right: what a perfect selector gets)
                 and the mean single-trajectory accuracy. K'=1 with sigma=0 is plain
                 evaluation exactly (tests/test_test_time.py). The first K' of max(K')
                 trajectories are used for each K', so the curve over K' is nested;
  arc_votes      ARC only: pass@K voting over only the first m augmented variants of each
                 test input (in the split's order), at K steps, from one evaluation.

The noise comes from a torch.Generator seeded by (noise_seed, sigma) and drawn batch by batch
in a fixed order: a rerun with the same settings and batch size gives the same numbers.

Writes `out` atomically: {"status": "ok"|<the run's status>|"missing"|"error", ..., "rows":
[{sweep, <setting columns>, exact_accuracy, ..., test_flops_per_puzzle}], "halting",
"time_s": {...}}. A run that did not finish is recorded with its status and no rows (the
table shows it). `trm eval` writes the same record to RUN_DIR/test_time/eval.json, with its
step counts and depths as absolute grids (evaluate_run).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from trm import config as C
from trm import rundir
from trm.files import atomic_write_json
from trm.train.arc_eval import ArcScorer, VoteTable, score
from trm.data.dataset import load_split
from trm.model import build_model
from trm.train import checkpoint as ckpt
from trm.train import precision
from trm.train.evaluate import (accuracy_at, autocast, build_scorers, eval_indices, evaluate_steps,
                                example_puzzle_ids, halting_stats, ignore_label_id, task_metrics_at)
from trm.train.device import configure_backends, pick_device

SWEEPS = ("n_supervision", "depth", "trajectories", "arc_votes")


# --------------------------------------------------------------------------------------
# Noisy parallel trajectories
# --------------------------------------------------------------------------------------


def noise_generator(noise_seed: int, sigma: float, device: torch.device) -> torch.Generator:
    """A generator per (seed, sigma): adding a sigma to the grid leaves the others' noise."""
    digest = hashlib.sha256(f"{int(noise_seed)}:{float(sigma)!r}".encode()).digest()
    gen = torch.Generator(device=device)
    gen.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return gen


@torch.no_grad()
def evaluate_trajectories(model, split, indices, n_steps: int, batch_size: int, device,
                          n_trajectories: int, sigma: float, generator: torch.Generator | None,
                          bf16: bool = False) -> dict:
    """Run every example of `indices` as n_trajectories noisy trajectories for n_steps
    supervision steps. Returns {"correct": [K, n] bool, "q_halt": [K, n] float} after the
    last step. A batch holds batch_size // K puzzles (x K trajectories), so K=1 runs the
    same batches as `evaluate`."""
    was_training = model.training
    model.eval()
    indices = np.asarray(indices, dtype=np.int64)
    n, K = len(indices), int(n_trajectories)
    ignore = ignore_label_id(split)
    pids_all = example_puzzle_ids(split)
    per_batch = max(1, batch_size // K)
    correct = np.zeros((K, n), dtype=bool)
    q_final = np.zeros((K, n), dtype=np.float64)
    for start in range(0, n, per_batch):
        idx = indices[start:start + per_batch]
        b = len(idx)
        # Trajectory-major rows: row t * b + i is trajectory t of puzzle i.
        inputs = torch.as_tensor(np.asarray(split.inputs[idx]), dtype=torch.long, device=device).repeat(K, 1)
        labels = torch.as_tensor(np.asarray(split.labels[idx]), dtype=torch.long, device=device).repeat(K, 1)
        pids = torch.as_tensor(pids_all[idx], dtype=torch.long, device=device).repeat(K)
        mask = labels != ignore
        latents = model.initial_latents(K * b, device)
        logits = q_halt = None
        for _ in range(n_steps):
            if sigma > 0:
                latents = tuple(
                    lat + sigma * torch.randn(lat.shape, generator=generator, device=lat.device,
                                              dtype=lat.dtype)
                    for lat in latents)
            with autocast(device, bf16):
                latents, logits, q_halt, _ = model(latents, inputs, pids)
        hit = (logits.argmax(-1) == labels) & mask
        exact = hit.sum(-1) == mask.sum(-1)  # the same test as evaluate()
        correct[:, start:start + b] = exact.view(K, b).cpu().numpy()
        q_final[:, start:start + b] = q_halt.float().view(K, b).cpu().numpy()
    model.train(was_training)
    return {"correct": correct, "q_halt": q_final}


def select_by_halting(correct: np.ndarray, q_halt: np.ndarray, k: int) -> dict:
    """Among the first k trajectories: the one with the highest q_halt per puzzle (the first
    on ties, so identical trajectories select trajectory 0)."""
    c, q = correct[:k], q_halt[:k]
    pick = q.argmax(axis=0)
    n = c.shape[1]
    chosen = c[pick, np.arange(n)]
    return {
        "exact_accuracy": float(chosen.mean()) if n else 0.0,
        "oracle_accuracy": float(c.any(axis=0).mean()) if n else 0.0,
        "mean_trajectory_accuracy": float(c.mean()) if n else 0.0,
    }


# --------------------------------------------------------------------------------------
# ARC: voting over the first m augmented variants
# --------------------------------------------------------------------------------------


class ArcVoteSubsetScorer(ArcScorer):
    """ArcScorer that keeps every example's vote (not the batch's sum), so that finalize()
    can vote over the first m variants of each test input for several m from one pass."""

    name = "arc_votes"

    def __init__(self, names, split, step: int, vote_counts):
        super().__init__(names, split, [step])
        self.vote_counts = sorted(int(m) for m in vote_counts)

    def step(self, ctx, k, preds, q_halt):
        if k not in self.steps:
            return
        ctx["votes"] = self.predicted_votes(ctx, preds, q_halt)

    def end(self, ctx):
        return {"votes": ctx["votes"], "truths": list(zip(ctx["keys"], ctx["truths"])),
                "tasks": [aug[0] for aug in ctx["augs"]]}

    def finalize(self, payloads) -> dict:
        votes = [v for p in payloads for v in p["votes"]]  # example order
        out = {}
        for m in self.vote_counts:
            table = VoteTable()
            table.evaluations = 1
            for p in payloads:
                for (key, truth), task in zip(p["truths"], p["tasks"]):
                    table.set_truth(key, task, truth)
            seen: dict[str, int] = {}
            for key, gkey, q in votes:
                seen[key] = seen.get(key, 0) + 1
                if seen[key] <= m:
                    table.add(key, gkey, 1, q)
            out[m] = score(table)
        return out


# --------------------------------------------------------------------------------------
# Opening a trained run
# --------------------------------------------------------------------------------------


def find_data_dir(run_dir: Path, spec: C.RunSpec, data_dir) -> Path:
    """The run's dataset: `data_dir` when given, else the one run_info.json recorded, else
    the default location of the spec's data."""
    if data_dir is not None:
        return Path(data_dir)
    info = run_dir / rundir.RUN_INFO
    if info.is_file():
        recorded = json.loads(info.read_text()).get("data_dir")
        if recorded and (Path(recorded) / "test" / "dataset.json").is_file():
            return Path(recorded)
    from trm.data.resolve import default_data_dir

    fallback = default_data_dir(spec)
    if (fallback / "test" / "dataset.json").is_file():
        return fallback
    raise FileNotFoundError(f"{run_dir}: cannot find the run's dataset (run_info.json data_dir, "
                            f"{fallback}); name it with --data DIR (data_dir= from Python)")


def load_weights(model: torch.nn.Module, state: dict, use_ema: bool) -> None:
    """The checkpoint's weights into `model`; with use_ema its EMA shadow (what the run's
    own final evaluation used)."""
    model.load_state_dict(state["model"])
    if use_ema:
        shadow = state["ema"]["shadow"]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in shadow:
                    p.copy_(shadow[name])


@dataclasses.dataclass
class TrainedRun:
    """A finished (or checkpointed) run opened for evaluation, with every identity check
    training makes: its spec, checkpoint state, dataset and test split, and the device."""
    run_dir: Path
    spec: C.RunSpec
    state: dict
    data_dir: Path
    test: object  # PuzzleSplit
    device: torch.device


def open_trained_run(run_dir, data_dir=None, device=None) -> TrainedRun:
    """Load a run's spec and checkpoint and its test split, refusing weights or data that are
    not this run's; configures the backends (determinism, threads, precision) as training."""
    run_dir = Path(run_dir)
    spec = C.load_spec(run_dir / rundir.SPEC)
    state = ckpt.load(run_dir / rundir.CHECKPOINTS)
    if state is None:
        raise FileNotFoundError(f"{run_dir / rundir.LATEST_CHECKPOINT}: no checkpoint to evaluate")
    # The weights must be this run's (its spec.yaml), not a checkpoint copied from another.
    ckpt.check_identity(state, {"sig": C.signature(spec), "seed": spec.train.seed},
                        run_dir / rundir.LATEST_CHECKPOINT)
    data_dir = find_data_dir(run_dir, spec, data_dir)
    # The same identity checks as training: arrays match their content hash, built for this
    # run's data spec (an external dataset passes; its hash was recorded at training).
    from trm.data import identity

    identity.check_spec(data_dir, spec.data)
    identity.verify_content(data_dir)
    test = load_split(data_dir, "test")
    t = spec.train
    dev = torch.device(device) if device is not None else pick_device(t)
    configure_backends(t, dev)
    precision.check_supported(t.precision, dev.type)
    torch.set_num_threads(t.threads)
    return TrainedRun(run_dir, spec, state, data_dir, test, dev)


# --------------------------------------------------------------------------------------
# One run: the evaluator
# --------------------------------------------------------------------------------------


def _flops_hook():
    """trm.model.flops.test_flops_per_puzzle when that module is there (written apart);
    None otherwise, and the FLOPs columns stay empty."""
    try:
        from trm.model.flops import test_flops_per_puzzle
    except ImportError:
        return None
    return test_flops_per_puzzle


def _source_status(run_dir: Path) -> str:
    path = run_dir / rundir.METRICS
    if not path.is_file():
        return "missing"
    try:
        return str(json.loads(path.read_text()).get("status") or "missing")
    except (OSError, json.JSONDecodeError):
        return "missing"


def _multiplier(k: int, k_eval: int):
    """k as a multiple of K: a whole number for a study's steps, a fraction where `trm eval`
    asks for a step count K does not divide."""
    return k // k_eval if k % k_eval == 0 else k / k_eval


def run_test_time(run_dir, settings: dict, *, n_supervision=None, depth_n_supervision=None,
                  task_metrics: bool = False, data_dir=None, device=None,
                  verbose: bool = True) -> dict:
    """All sweeps of `settings` (trm.studies.test_time.check_settings) on one trained run.
    n_supervision: the N_sup sweep's step counts (default: the multipliers x the run's
    evaluation N_sup K); depth_n_supervision: the step counts every depth is read at
    (default: K). `trm eval` names both, and asks for task_metrics: the n_supervision and
    depth rows then also carry the task's own scores (Maze valid-and-optimal paths), the
    halting statistics and the total depth. Returns the record (status "ok"); raises if the
    run cannot be evaluated."""
    t_start, cpu_start = time.perf_counter(), time.process_time()
    run = open_trained_run(run_dir, data_dir, device)
    run_dir, spec, state, data_dir, test, dev = (run.run_dir, run.spec, run.state, run.data_dir,
                                                 run.test, run.device)
    meta = test.meta
    m, t = spec.model, spec.train
    bf16 = t.precision == "bf16"
    vocab, seq_len = int(meta["vocab_size"]), int(meta["seq_len"])
    model = build_model(m, vocab_size=vocab, seq_len=seq_len,
                        num_puzzle_ids=int(meta.get("num_puzzle_identifiers", 1))).to(dev)
    use_ema = bool(t.ema and state.get("ema"))
    load_weights(model, state, use_ema)
    # Not compiled even when the run trained compiled: a few evaluations cost less than
    # the compilation (and the results are the same).
    indices = eval_indices(test, int(settings["max_examples"]), spec.data.seed)
    bs = spec.eval.batch_size
    k_eval = spec.eval.n_supervision or m.n_supervision
    nsup_ks = sorted(n_supervision or [mult * k_eval for mult in settings["n_supervision_multipliers"]])
    depth_ks = sorted(depth_n_supervision or [k_eval])
    is_arc = spec.data.task in ("arc1", "arc2")
    recursive = m.arch == "recursive"
    flops = _flops_hook()

    def test_flops(n_sup, n=None, T=None):
        if flops is None:
            return None
        return int(flops(m, vocab, seq_len, n_sup, n, T))

    rows, times = [], {}

    # ---- N_sup: one evaluation of the most steps, read after each step
    t0 = time.perf_counter()
    plain_ks = sorted({*nsup_ks, *depth_ks})  # the trained depth's row reads this evaluation too
    scorers = []
    if is_arc and settings["arc_votes"]:
        names = json.loads((Path(data_dir) / "identifiers.json").read_text())
        scorers = [ArcVoteSubsetScorer(names, test, k_eval, settings["arc_votes"])]
    if verbose:
        print(f"test-time: {run_dir}: {len(indices)} examples, N_sup up to {max(plain_ks)}",
              file=sys.stderr)
    # The task's own scorers (Maze paths) only where asked for: a study's rows keep their columns.
    task_scorers = (build_scorers(spec.data.task, test, data_dir, plain_ks)
                    if task_metrics and spec.data.task == "maze" else [])

    def scores(ev: dict, k: int, depth_per_step: int) -> dict:
        if not task_metrics:
            return accuracy_at(ev, k)
        return {**accuracy_at(ev, k), **task_metrics_at(ev, k), "total_depth": k * depth_per_step,
                "halting": halting_stats(ev["correct"], ev["halted"], k)}

    plain = evaluate_steps(model, test, plain_ks, bs, dev, indices=indices,
                           scorers=scorers + task_scorers, bf16=bf16)
    trained_per_step = C.effective_depth(m)
    for k in nsup_ks:
        rows.append({"sweep": "n_supervision", "multiplier": _multiplier(k, k_eval), "n_supervision": k,
                     "n_latent_steps": model.n_latent_steps, "n_cycles": model.n_cycles,
                     **scores(plain, k, trained_per_step), "test_flops_per_puzzle": test_flops(k)})
    times["n_supervision"] = time.perf_counter() - t0

    # ---- ARC votes (from the same evaluation, at K steps)
    if scorers:
        for votes, sc in plain["scorers"]["arc_votes"].items():
            rows.append({"sweep": "arc_votes", "votes": votes, "n_supervision": k_eval,
                         "augmentations_voted_mean": sc["augmentations_voted"]["mean"],
                         "pass@1": sc["task_all_or_nothing"]["pass@1"],
                         "pass@2": sc["task_all_or_nothing"]["pass@2"],
                         "pass@2_per_input": sc["per_test_input"]["pass@2"],
                         "test_flops_per_puzzle": (None if flops is None else
                                                   test_flops(k_eval) * int(round(sc["augmentations_voted"]["mean"])))})

    # ---- depth: other (n, T), one evaluation each, read at every step count of depth_ks
    t0 = time.perf_counter()
    trained_depth = (model.n_latent_steps, model.n_cycles)
    for d in settings["depths"]:
        n, T = d["n_latent_steps"], d["n_cycles"]
        depth_rows = [{"sweep": "depth", "n_latent_steps": n, "n_cycles": T, "n_supervision": k,
                       "depth_per_step": C.effective_depth(dataclasses.replace(m, n_latent_steps=n, n_cycles=T))}
                      for k in depth_ks]
        if not recursive:
            rows += [row | {"error": f"arch {m.arch} has no recursion depth"} for row in depth_rows]
            continue
        if (n, T) == trained_depth:
            ev = plain
        else:
            try:
                model.set_depth(n, T)
            except ValueError as e:  # e.g. multi_scale_z carries fewer z's than n
                rows += [row | {"error": str(e)} for row in depth_rows]
                continue
            ev = evaluate_steps(model, test, depth_ks, bs, dev, indices=indices, scorers=task_scorers,
                                bf16=bf16)
            model.set_depth(*trained_depth)
        rows += [row | scores(ev, row["n_supervision"], row["depth_per_step"])
                 | {"test_flops_per_puzzle": test_flops(row["n_supervision"], n, T)} for row in depth_rows]
    times["depth"] = time.perf_counter() - t0

    # ---- noisy parallel trajectories, selected by the halting head
    t0 = time.perf_counter()
    ks = settings["trajectories"]
    for sigma in settings["noise_sigma"]:
        # sigma 0: every trajectory is the same; one is enough.
        k_run = max(ks) if sigma > 0 else 1
        gen = noise_generator(settings["noise_seed"], sigma, dev) if sigma > 0 else None
        traj = evaluate_trajectories(model, test, indices, k_eval, bs, dev, k_run, sigma, gen, bf16)
        for k in ks:
            sel = select_by_halting(traj["correct"], traj["q_halt"], min(k, k_run))
            rows.append({"sweep": "trajectories", "trajectories": k, "noise_sigma": sigma,
                         "n_supervision": k_eval, **sel,
                         "test_flops_per_puzzle": None if flops is None else k * test_flops(k_eval)})
    times["trajectories"] = time.perf_counter() - t0
    times["total"] = time.perf_counter() - t_start
    # CPU seconds too: on a shared machine wall time measures the neighbours as well.
    times["total_cpu"] = time.process_time() - cpu_start

    return {
        "status": "ok",
        "run_dir": str(run_dir),
        "task": spec.data.task,
        "model": spec.name,
        "sig": C.signature(spec),
        "seed": t.seed,
        "checkpoint_step": int(state["step"]),
        "weights": "ema" if use_ema else "live",
        "device": str(dev),
        "eval_batch_size": bs,
        "n_test": int(len(indices)),
        "n_test_split": int(test.num_examples),
        "trained": {"n_latent_steps": m.n_latent_steps, "n_cycles": m.n_cycles,
                    "n_supervision": m.n_supervision, "n_supervision_eval": k_eval},
        # metrics.json's status: `trm eval` also evaluates the checkpoint of an unfinished run.
        "run_status": _source_status(run_dir),
        # ARC: the arc_votes sweep votes within this one evaluation.
        "arc_voting": "per_checkpoint" if is_arc else None,
        "settings": settings,
        # Accuracy after every step of the N_sup sweep (the figure draws the whole curve).
        "per_step_exact_accuracy": plain["exact_accuracy"],
        # The halting head at the run's evaluation N_sup (metrics.json's "halting").
        "halting": halting_stats(plain["correct"], plain["halted"], k_eval),
        # The same sweep per instance-difficulty bin, where the dataset records difficulty
        # (bins of this subsample; trm.train.evaluate.difficulty_record).
        **{key: plain[key] for key in ("by_difficulty", "by_cell_difficulty") if key in plain},
        "rows": rows,
        "time_s": {k: round(v, 3) for k, v in times.items()},
    }


def write_test_time(run_dir, study: str, settings: dict, out, **kw) -> dict:
    """run_test_time, recorded: a run that did not finish gets its status and no rows, and an
    evaluation that fails gets status "error" with the message (the traceback goes to
    stderr, i.e. the job's log), so the table shows every run of the study."""
    run_dir = Path(run_dir)
    base = {"study": study, "run_dir": str(run_dir), "settings": settings, "rows": []}
    status = _source_status(run_dir)
    if status != "ok":
        record = base | {"status": status, "error": f"the trained run's status is {status}"}
    else:
        try:
            record = base | run_test_time(run_dir, settings, **kw)
        except Exception as e:  # recorded, shown in the table as "error"
            traceback.print_exc()
            record = base | {"status": "error", "error": f"{type(e).__name__}: {e}"}
    atomic_write_json(Path(out), record)
    return record


# `trm eval` writes its record where a test-time study named "eval" would.
EVAL_RECORD = "eval"


def evaluate_run(run_dir, n_supervision=(), n_cycles=(), n_latent_steps=(), arc_votes=(), *,
                 data_dir=None, device=None, verbose: bool = True) -> dict:
    """`python -m trm eval`: the whole test split on the grid n_cycles (T) x n_latent_steps (n)
    x n_supervision (K), through run_test_time, so the record has the test-time study's
    format. The trained K (and, when T or n is asked for, the trained (n, T)) is always in
    the grid: those rows reproduce metrics.json (same weights, examples, batch size and
    device type). Rows: sweep n_supervision, every K at the trained depth; sweep depth, every
    (n, T) of the grid at every K (none when neither T nor n is asked for); sweep
    arc_votes (ARC, with arc_votes). Writes RUN_DIR/test_time/eval.json atomically."""
    run_dir = Path(run_dir)
    spec = C.load_spec(run_dir / rundir.SPEC)
    m = spec.model
    k_eval = spec.eval.n_supervision or m.n_supervision
    ks = sorted({k_eval, *(int(k) for k in n_supervision)})
    ts = sorted({m.n_cycles, *(int(x) for x in n_cycles)})
    ns = sorted({m.n_latent_steps, *(int(x) for x in n_latent_steps)})
    if min(ks + ts + ns) <= 0:
        raise C.SpecError("n_supervision, n_cycles and n_latent_steps must all be > 0")
    if arc_votes and min(int(v) for v in arc_votes) <= 0:
        raise C.SpecError(f"--arc-votes must be >= 1, got {list(arc_votes)}")
    from trm.studies.test_time import check_settings, result_path

    depths = ([{"n_latent_steps": n, "n_cycles": t} for n in ns for t in ts]
              if n_cycles or n_latent_steps else [])
    settings = check_settings("trm eval", {"max_examples": 0, "depths": depths,
                                           "arc_votes": sorted({int(v) for v in arc_votes})})
    record = {"study": EVAL_RECORD, "run_dir": str(run_dir)} | run_test_time(
        run_dir, settings, n_supervision=ks, depth_n_supervision=ks, task_metrics=True,
        data_dir=data_dir, device=device, verbose=verbose)
    atomic_write_json(Path(result_path(str(run_dir), EVAL_RECORD)), record)
    return record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trm.train.test_time", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="the trained run's directory")
    p.add_argument("--study", required=True, help="the test-time study's name (recorded)")
    p.add_argument("--settings", required=True, help="the study's settings as JSON")
    p.add_argument("--out", required=True, help="where the JSON record goes")
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    from trm.studies.test_time import check_settings

    settings = check_settings("--settings", json.loads(a.settings))
    record = write_test_time(a.run, a.study, settings, a.out, device=a.device)
    line = f"{a.run}: test-time {record['status']}"
    if record["status"] == "ok":
        line += (f", {record['n_test']} examples, {record['time_s']['total']:.1f} s wall, "
                 f"{record['time_s']['total_cpu']:.1f} s CPU")
    print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
