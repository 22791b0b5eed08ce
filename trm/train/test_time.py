"""Test-time compute on one trained run, every setting in one process (no retraining):

    python -m trm.train.test_time --run RUN_DIR --study test_time --settings JSON --out PATH

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
[{sweep, <setting columns>, exact_accuracy, ..., test_flops_per_puzzle}], "time_s": {...}}.
A run that did not finish is recorded with its status and no rows (the table shows it).
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
from trm.train.evaluate import autocast, eval_indices, evaluate, example_puzzle_ids, ignore_label_id

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
# One run
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


def run_test_time(run_dir, settings: dict, *, data_dir=None, device=None,
                  verbose: bool = True) -> dict:
    """All sweeps of `settings` (trm.studies.test_time.check_settings) on one trained run.
    Returns the record (status "ok"); raises if the run cannot be evaluated."""
    from trm.model import build_model
    from trm.train.evaluate_run import load_weights, open_trained_run

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
    is_arc = spec.data.task in ("arc1", "arc2")
    recursive = m.arch == "recursive"
    flops = _flops_hook()

    def test_flops(n_sup, n=None, T=None):
        if flops is None:
            return None
        return int(flops(m, vocab, seq_len, n_sup, n, T))

    rows, times = [], {}

    # ---- N_sup: one evaluation of max(m) x K steps, read after each step
    t0 = time.perf_counter()
    multipliers = settings["n_supervision_multipliers"]
    n_steps = max(multipliers) * k_eval
    scorers = []
    if is_arc and settings["arc_votes"]:
        names = json.loads((Path(data_dir) / "identifiers.json").read_text())
        scorers = [ArcVoteSubsetScorer(names, test, k_eval, settings["arc_votes"])]
    if verbose:
        print(f"test-time: {run_dir}: {len(indices)} examples, N_sup up to {n_steps}", file=sys.stderr)
    plain = evaluate(model, test, n_steps, bs, dev, indices=indices, scorers=scorers, bf16=bf16)
    for mult in multipliers:
        k = mult * k_eval
        rows.append({"sweep": "n_supervision", "multiplier": mult, "n_supervision": k,
                     "n_latent_steps": model.n_latent_steps, "n_cycles": model.n_cycles,
                     "exact_accuracy": plain["exact_accuracy"][k - 1],
                     "cell_accuracy": plain["cell_accuracy"][k - 1],
                     "test_flops_per_puzzle": test_flops(k)})
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

    # ---- depth: other (n, T) at K steps
    t0 = time.perf_counter()
    trained_depth = (model.n_latent_steps, model.n_cycles)
    for d in settings["depths"]:
        n, T = d["n_latent_steps"], d["n_cycles"]
        row = {"sweep": "depth", "n_latent_steps": n, "n_cycles": T, "n_supervision": k_eval,
               "depth_per_step": C.effective_depth(dataclasses.replace(m, n_latent_steps=n, n_cycles=T))}
        if not recursive:
            rows.append(row | {"error": f"arch {m.arch} has no recursion depth"})
            continue
        if (n, T) == trained_depth:
            ev = plain
        else:
            try:
                model.set_depth(n, T)
            except ValueError as e:  # e.g. multi_scale_z carries fewer z's than n
                rows.append(row | {"error": str(e)})
                continue
            ev = evaluate(model, test, k_eval, bs, dev, indices=indices, bf16=bf16)
            model.set_depth(*trained_depth)
        rows.append(row | {"exact_accuracy": ev["exact_accuracy"][k_eval - 1],
                           "cell_accuracy": ev["cell_accuracy"][k_eval - 1],
                           "test_flops_per_puzzle": test_flops(k_eval, n, T)})
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
        "settings": settings,
        # Accuracy after every step of the N_sup sweep (the figure draws the whole curve).
        "per_step_exact_accuracy": plain["exact_accuracy"],
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
