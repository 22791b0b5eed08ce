"""Evaluation as both official codes do it: every test example runs all supervision steps
(halting is never used to stop at test time), and accuracy is read after each step.

Every test-time path reads accuracy after K supervision steps the same way: ONE evaluation
of max(K) steps (`evaluate_steps`), read after each step (`accuracy_at`, `eval_record_at`).
The trainer's final evaluation at eval.n_supervision and eval.extra_n_supervision, the
test-time study's N_sup and depth sweeps and `trm eval` (both trm/train/test_time.py) go
through it; it lives here, below the trainer, because the test-time evaluator opens trained
runs with the trainer's device set-up.

    ev = evaluate(model, split, n_steps, batch_size, device, indices=..., scorers=[...], comm=...)
    ev["exact_accuracy"][k - 1]    # headline: all non-ignored tokens right, after k steps
    ev["cell_accuracy"][k - 1]     # token accuracy over non-ignored labels
    ev["correct"]                  # [n_steps, n] per-example exact correctness (bool)
    ev["halting"]                  # halting-head statistics (see halting_stats)
    ev["scorers"][name]            # task scorers: maze valid-and-optimal, ARC voting
    ev["by_difficulty"]            # only when the split records difficulty: exact accuracy per
    ev["by_cell_difficulty"]       # difficulty bin after each step (and token accuracy per
                                   # cell-difficulty bin); see difficulty_record

Task scorers (trm.train.maze_eval.MazeScorer, trm.train.arc_eval.ArcScorer) see every batch:
    ctx = scorer.begin(idx, inputs, labels)        # numpy arrays of the batch
    scorer.step(ctx, k, preds, q_halt)              # after step k (1-based), numpy
    payload = scorer.end(ctx)                       # small and picklable
    result = scorer.finalize([payload, ...])        # payloads in batch order
Data parallel: batch j (a fixed chunk of `indices`) runs on rank j % world_size, and the
per-batch records are all-gathered and merged in batch order, so the result is the same
(bit for bit on CPU) for any number of ranks, and identical on every rank.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from trm.data.dataset import PuzzleSplit

# Salt of the fixed periodic-eval subsample, so it never coincides with a training stream.
SUBSAMPLE_SALT = 0xE7A1


def example_puzzle_ids(split: PuzzleSplit) -> np.ndarray:
    counts = np.diff(split.puzzle_indices)
    return np.repeat(split.puzzle_identifiers, counts)


def ignore_label_id(split: PuzzleSplit) -> int:
    v = split.meta.get("ignore_label_id", 0)
    return -100 if v is None else int(v)


def eval_indices(split: PuzzleSplit, max_examples: int, seed: int) -> np.ndarray:
    """The examples a (periodic) evaluation uses: all of them when max_examples <= 0 or the
    split is no larger, else a FIXED seeded subsample of whole groups (an ARC task comes with
    all its augmented variants, so voting stays meaningful): groups in a seeded random order
    are taken until at least max_examples examples are in. The seed is the data seed, so every
    run on one dataset is evaluated on the same subsample. Sorted example indices."""
    n = split.num_examples
    if max_examples <= 0 or max_examples >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([SUBSAMPLE_SALT, int(seed)])
    g, p = split.group_indices, split.puzzle_indices
    order = rng.permutation(len(g) - 1)
    starts, ends = p[g[order]], p[g[order + 1]]
    cum = np.cumsum(ends - starts)
    take = int(np.searchsorted(cum, max_examples) + 1)
    idx = np.concatenate([np.arange(a, b) for a, b in zip(starts[:take], ends[:take])])
    return np.sort(idx).astype(np.int64)


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast around the model (train.precision=bf16, CUDA or CPU); a no-op for fp32."""
    if not bf16:
        return contextlib.nullcontext()
    # The autocast cache keeps one bf16 copy of every weight for the whole context. Under
    # no_grad (HRM's Q-target pass, evaluation) nothing else holds those copies, so caching
    # only adds memory: in a training step the first pass's bf16 weights are still held by the
    # graph when the Q pass runs, and a cached second set made HRM's bf16 peak exceed fp32
    # (paper scale b8: 1,165 vs 1,112 MiB; 1,117 without it). Values are the same either way.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=torch.is_grad_enabled())


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: PuzzleSplit,
    n_steps: int,
    batch_size: int,
    device: torch.device,
    max_examples: int = 0,
    *,
    indices: np.ndarray | None = None,
    scorers=(),
    comm=None,
    bf16: bool = False,
    forward=None,
    halting_at: int | None = None,
) -> dict:
    """Run every example of `indices` (default: the first max_examples, or all) for n_steps
    supervision steps. `forward` replaces model.__call__ (e.g. a compiled wrapper)."""
    was_training = model.training
    model.eval()
    fwd = forward or model
    ignore = ignore_label_id(split)
    if indices is None:
        n_all = split.num_examples
        indices = np.arange(n_all if max_examples <= 0 else min(max_examples, n_all))
    indices = np.asarray(indices, dtype=np.int64)
    n = len(indices)
    rank, world = (comm.rank, comm.world_size) if comm is not None else (0, 1)
    pids_all = example_puzzle_ids(split)
    records = []
    for j, start in enumerate(range(0, n, batch_size)):
        if j % world != rank:
            continue
        idx = indices[start:start + batch_size]
        inp_np = np.asarray(split.inputs[idx])
        lab_np = np.asarray(split.labels[idx])
        inputs = torch.as_tensor(inp_np, dtype=torch.long, device=device)
        labels = torch.as_tensor(lab_np, dtype=torch.long, device=device)
        pids = torch.as_tensor(pids_all[idx], dtype=torch.long, device=device)
        mask = labels != ignore
        b = len(idx)
        by_cell = _CellTally(split, idx, lab_np != ignore, n_steps)
        exact = np.zeros((n_steps, b), dtype=bool)
        halted = np.zeros((n_steps, b), dtype=bool)
        cells = np.zeros(n_steps, dtype=np.int64)
        ctxs = [s.begin(idx, inp_np, lab_np) for s in scorers]
        latents = model.initial_latents(b, device)
        for k in range(n_steps):
            with autocast(device, bf16):
                latents, logits, q_halt, _ = fwd(latents, inputs, pids)
            pred = logits.argmax(-1)
            hit = (pred == labels) & mask
            exact[k] = (hit.sum(-1) == mask.sum(-1)).cpu().numpy()
            cells[k] = int(hit.sum())
            by_cell.add(k, hit)
            q = q_halt.float().cpu().numpy()
            halted[k] = q > 0
            if scorers:
                pred_np = pred.cpu().numpy()
                for s, ctx in zip(scorers, ctxs):
                    s.step(ctx, k + 1, pred_np, q)
        records.append({"j": j, "exact": exact, "halted": halted, "cells": cells,
                        "cells_total": int(mask.sum()), "by_cell": by_cell.payload(),
                        "scorers": [s.end(ctx) for s, ctx in zip(scorers, ctxs)]})
    model.train(was_training)
    if comm is not None and comm.enabled:
        records = [r for part in comm.all_gather_object(records) for r in part]
    records.sort(key=lambda r: r["j"])
    if records:
        exact = np.concatenate([r["exact"] for r in records], axis=1)
        halted = np.concatenate([r["halted"] for r in records], axis=1)
        cells = np.sum([r["cells"] for r in records], axis=0)
    else:
        exact = halted = np.zeros((n_steps, 0), dtype=bool)
        cells = np.zeros(n_steps, dtype=np.int64)
    cells_total = sum(r["cells_total"] for r in records)
    halting_at = halting_at or n_steps
    return _difficulty_results(split, indices, exact, [r["by_cell"] for r in records]) | {
        "n": n,
        "indices": indices,
        "exact_accuracy": _mean_rows(exact),
        "cell_accuracy": (cells / max(cells_total, 1)).tolist(),
        "correct": exact,
        "halted": halted,
        "halting": halting_stats(exact, halted, halting_at),
        "scorers": {s.name: s.finalize([r["scorers"][i] for r in records])
                    for i, s in enumerate(scorers)},
    }


def evaluate_steps(model: torch.nn.Module, split: PuzzleSplit, ks, batch_size: int,
                   device: torch.device, **kw) -> dict:
    """The test-time evaluator: ONE evaluation of max(ks) supervision steps (evaluate's
    keywords pass through), whose numbers after each k in ks are read with accuracy_at or
    eval_record_at. Reading k from a longer evaluation gives the same numbers as stopping at
    k: a step never depends on the steps after it."""
    return evaluate(model, split, max(ks), batch_size, device, **kw)


def accuracy_at(ev: dict, k: int) -> dict:
    """Exact and token accuracy after k supervision steps."""
    return {"exact_accuracy": ev["exact_accuracy"][k - 1], "cell_accuracy": ev["cell_accuracy"][k - 1]}


def task_metrics_at(ev: dict, k: int) -> dict:
    """Task-specific scalars after k supervision steps: Maze valid-and-optimal rate; ARC
    pass@K under both scorings ('pass@K' = task all-or-nothing as HRM, 'pass@K_per_input' =
    per-test-input fraction as TRM) when step k was voted."""
    out = {}
    maze = ev["scorers"].get("maze")
    if maze is not None:
        out["valid_optimal_accuracy"] = maze["valid_optimal_accuracy"][k - 1]
    arc = ev["scorers"].get("arc")
    if arc is not None and k in arc:
        out.update(arc[k]["task_all_or_nothing"])
        out.update({f"{name}_per_input": v for name, v in arc[k]["per_test_input"].items()})
    return out


def eval_record_at(ev: dict, k: int) -> dict:
    """One entry of metrics.json's test_time list: every accuracy after k supervision steps."""
    return {"n_supervision": k, **accuracy_at(ev, k), **task_metrics_at(ev, k)}


# --------------------------------------------------------------------------------------
# Accuracy by instance difficulty
# --------------------------------------------------------------------------------------

MAX_DISTINCT_BINS = 12  # up to this many distinct values: one bin each
QUANTILE_BINS = 8  # beyond: this many quantile bins (fewer where values tie)


def difficulty_bins(counts: np.ndarray) -> tuple[list[list[int]], str]:
    """Bins [[lo, hi], ...] (inclusive integer ranges) over values 0..len(counts)-1, where
    counts[v] items have value v: one bin per value present when at most MAX_DISTINCT_BINS
    are, else QUANTILE_BINS bins cut at the quantiles of the items (ties merge bins).
    Returns (bins, "distinct" | "quantile"). Every bin holds at least one item."""
    counts = np.asarray(counts, dtype=np.int64)
    present = np.flatnonzero(counts)
    if len(present) <= MAX_DISTINCT_BINS:
        return [[int(v), int(v)] for v in present], "distinct"
    cum = np.cumsum(counts)
    cuts = np.linspace(0, 1, QUANTILE_BINS + 1)[:-1] * cum[-1]
    # The smallest value whose cumulative count exceeds each cut (inverted CDF): every start
    # is a value that occurs, so no bin is empty.
    starts = np.unique(np.searchsorted(cum, cuts, side="right"))
    ends = np.append(starts[1:] - 1, present[-1])
    return [[int(a), int(b)] for a, b in zip(starts, ends)], "quantile"


def binned_accuracy(hits: np.ndarray, totals: np.ndarray, bins: list[list[int]]):
    """hits [steps, V], totals [V] by value -> (items per bin, accuracy [steps][bins])."""
    hits, totals = np.atleast_2d(hits), np.asarray(totals)
    count = [int(totals[lo:hi + 1].sum()) for lo, hi in bins]
    acc = [[float(h[lo:hi + 1].sum() / c) if c else 0.0 for (lo, hi), c in zip(bins, count)]
           for h in hits]
    return count, acc


def difficulty_record(values: np.ndarray, correct: np.ndarray, name: str,
                      key: str = "exact_accuracy") -> dict:
    """Accuracy per difficulty bin after each step, from per-item values [n] (negative =
    undefined, left out) and correctness [steps, n]: {"name", "binning", "bins", "count",
    key: [[per bin] per step]}."""
    values = np.asarray(values, dtype=np.int64)
    correct = np.asarray(correct, dtype=bool)
    keep = values >= 0
    v = values[keep]
    size = int(v.max()) + 1 if v.size else 0
    totals = np.bincount(v, minlength=size)
    hits = np.array([np.bincount(v, weights=row[keep], minlength=size) for row in correct])
    return _record(name, totals, hits.reshape(len(correct), size), key)


def _record(name: str, totals: np.ndarray, hits: np.ndarray, key: str) -> dict:
    bins, binning = difficulty_bins(totals)
    count, acc = binned_accuracy(hits, totals, bins)
    return {"name": name, "binning": binning, "bins": bins, "count": count, key: acc}


class _CellTally:
    """Right tokens per cell-difficulty value after each step, for one batch (nothing when
    the split has no cell difficulty). Counts by raw value, binned once all batches are in."""

    def __init__(self, split: PuzzleSplit, idx: np.ndarray, mask: np.ndarray, n_steps: int):
        self.values = None
        if split.cell_difficulty is None:
            return
        values = np.asarray(split.cell_difficulty[idx], dtype=np.int64)
        keep = mask & (values >= 0)
        self.values = values[keep]
        self.keep = keep
        size = int(self.values.max()) + 1 if self.values.size else 0
        self.totals = np.bincount(self.values, minlength=size)
        self.hits = np.zeros((n_steps, size), dtype=np.int64)

    def add(self, k: int, hit: torch.Tensor) -> None:
        if self.values is not None:
            right = hit.cpu().numpy()[self.keep]
            self.hits[k] = np.bincount(self.values, weights=right, minlength=len(self.totals))

    def payload(self):
        return None if self.values is None else (self.totals, self.hits)


def _difficulty_results(split: PuzzleSplit, indices: np.ndarray, exact: np.ndarray,
                        cell_payloads: list) -> dict:
    """The by-difficulty entries of evaluate's result ({} without recorded difficulty)."""
    names, out = split.difficulty_names, {}
    if split.difficulty is not None:
        values = np.asarray(split.difficulty[indices])
        out["by_difficulty"] = difficulty_record(values, exact, names.get("example") or "difficulty")
    parts = [p for p in cell_payloads if p is not None]
    if split.cell_difficulty is not None:
        size = max([len(t) for t, _ in parts], default=0)
        totals = np.zeros(size, dtype=np.int64)
        hits = np.zeros((exact.shape[0], size), dtype=np.int64)
        for t, h in parts:
            totals[:len(t)] += t
            hits[:, :len(t)] += h.astype(np.int64)
        out["by_cell_difficulty"] = _record(names.get("cell") or "cell_difficulty", totals,
                                            hits, "cell_accuracy")
    return out


def _mean_rows(a: np.ndarray) -> list[float]:
    return [float(row.mean()) if row.size else 0.0 for row in a]


def halting_stats(exact: np.ndarray, halted: np.ndarray, k: int) -> dict:
    """What the halting head says within the first k steps (evaluation itself never stops).

    mean_first_halt_step: mean over examples of the first step whose halt logit > 0 (k when it
      never fires); frac_halted_by_last_step: share whose head fired within k steps;
    exact_accuracy_at_halt: accuracy if each example stopped at its first halt (else at k),
      i.e. what adaptive computation would score at test time;
    q_halt_accuracy: per step, share where (halt logit > 0) == (prediction exactly right);
    halt_rate: per step, share with halt logit > 0."""
    exact, halted = exact[:k], halted[:k]
    n = exact.shape[1]
    if n == 0:
        return {"k": k, "mean_first_halt_step": 0.0, "frac_halted_by_last_step": 0.0,
                "exact_accuracy_at_halt": 0.0, "q_halt_accuracy": [0.0] * k, "halt_rate": [0.0] * k}
    fired = halted.any(axis=0)
    first = np.where(fired, halted.argmax(axis=0) + 1, k)
    at_halt = exact[first - 1, np.arange(n)]
    return {
        "k": k,
        "mean_first_halt_step": float(first.mean()),
        "frac_halted_by_last_step": float(fired.mean()),
        "exact_accuracy_at_halt": float(at_halt.mean()),
        "q_halt_accuracy": _mean_rows(halted == exact),
        "halt_rate": _mean_rows(halted),
    }


def build_scorers(task: str, split: PuzzleSplit, data_dir, steps) -> list:
    """The task's extra scorers: Maze valid-and-optimal paths; ARC voting at `steps` (the
    supervision steps whose predictions are voted, e.g. the trained N_sup and test-time K)."""
    if task == "maze":
        from trm.train.maze_eval import MazeScorer

        return [MazeScorer()]
    if task in ("arc1", "arc2"):
        from trm.train.arc_eval import ArcScorer

        return [ArcScorer.from_data_dir(data_dir, split, steps)]
    return []
