"""ARC evaluation: augmentation voting and pass@K (reference-models.md 4.5), our own code.

The test split holds every test input of every evaluation task in all its augmented variants
(a dihedral transform and a permutation of colours 1-9, colour 0 fixed). For each variant's
prediction (at a chosen supervision step):

  1. crop: the largest top-left rectangle of colour tokens (2..11) of the canvas, the way the
     official evaluators read a grid (EOS/PAD end it), colours = token - 2. The canvas side is
     read from the sequence length (30x30 officially, data.grid on a small canvas), so every
     built ARC dataset is scored the same way;
  2. invert the augmentation named by the puzzle identifier ("<task>|||t<k>|||<perm>", TRM's
     format; no separator = the original): inverse dihedral, then inverse colour permutation;
  3. vote per (task, test input): the test input is recognised by its own cropped, inverted
     input grid (as TRM does), so variants of one input vote together;
  4. rank candidates by vote count, then by the mean sigmoid(q_halt) of their votes, then by
     the grid's text (a fixed tie-break so that ranks never depend on arrival order);
  5. pass@K: the true grid is among the top K candidates of that test input.
Two scorings of a task with several test inputs:
  task_all_or_nothing  (HRM arc_eval.ipynb): the task counts 1 only if ALL its inputs pass;
  per_test_input       (TRM evaluators/arc.py): the task counts (inputs passed)/(inputs).
Both are averaged over tasks. The true grid is the label cropped and inverted the same way
(checked to agree across variants; disagreements are counted in `truth_conflicts`).

Voting is per checkpoint by default (one evaluation's votes). Aggregated voting (TRM's default,
`eval.arc_aggregated_voting`) adds the votes of every evaluation so far (a checkpoint
ensemble); the trainer keeps that VoteTable in its checkpoints so resume stays exact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from trm.data.dihedral import inverse_dihedral

PASS_KS = (1, 2, 5, 10, 100, 1000)  # union of HRM's {1,2,10,100,1000} and TRM's {1,2,5,10,100,1000}
SEPARATOR = "|||"
COLOR_OFFSET = 2  # PAD 0, EOS 1, colour c -> c + 2
N_COLORS = 10


# --------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------


def crop_shapes(tokens: np.ndarray) -> np.ndarray:
    """[b, L] (L = side^2) tokens -> [b, 2] (rows, cols) of the largest top-left rectangle of
    colour tokens: with c(r) = min over the first r rows of each row's first non-colour
    column, the rectangle with r * c(r) largest (the smallest r on ties); (0, 0) if none."""
    t = np.asarray(tokens)
    b, L = t.shape
    side = int(round(L ** 0.5))
    if side * side != L:
        raise ValueError(f"ARC sequences must be square canvases, got length {L}")
    g = t.reshape(b, side, side)
    bad = (g < COLOR_OFFSET) | (g >= COLOR_OFFSET + N_COLORS)
    first_bad = np.where(bad.any(axis=2), bad.argmax(axis=2), side)  # [b, rows]
    cols = np.minimum.accumulate(first_bad, axis=1)
    area = cols * np.arange(1, side + 1)
    best = area.argmax(axis=1)
    rows = np.where(area.max(axis=1) > 0, best + 1, 0)
    return np.stack([rows, np.where(rows > 0, cols[np.arange(b), best], 0)], axis=1)


def crop(tokens: np.ndarray) -> np.ndarray:
    """One canvas [L] or [side, side] of tokens -> the colour grid [h, w] (values 0..9)."""
    flat = np.asarray(tokens).reshape(1, -1)
    (h, w), = crop_shapes(flat)
    side = int(round(flat.shape[1] ** 0.5))
    return (flat.reshape(side, side)[:h, :w] - COLOR_OFFSET).astype(np.uint8)


def parse_augmentation(name: str) -> tuple[str, int, np.ndarray | None]:
    """'<task>|||t<k>|||<perm>' -> (task, k, perm) where perm[c] = colour that c became;
    a name without the separator is an original puzzle (identity)."""
    if SEPARATOR not in name:
        return name, 0, None
    parts = name.split(SEPARATOR)
    task, tpart = parts[0], parts[1]
    if not tpart.startswith("t"):
        raise ValueError(f"puzzle name {name!r}: expected 't<k>' after '{SEPARATOR}'")
    perm = None
    if len(parts) > 2 and parts[2]:
        perm = np.array([int(c) for c in parts[2]], dtype=np.uint8)
        if sorted(perm.tolist()) != list(range(N_COLORS)):
            raise ValueError(f"puzzle name {name!r}: colour mapping is not a permutation of 0-9")
    return task, int(tpart[1:]), perm


def invert(grid: np.ndarray, tid: int, perm: np.ndarray | None) -> np.ndarray:
    """Undo an augmentation: inverse dihedral transform, then inverse colour permutation."""
    out = inverse_dihedral(np.asarray(grid), tid) if tid else np.asarray(grid)
    if perm is not None:
        out = np.argsort(perm).astype(np.uint8)[out]
    return np.ascontiguousarray(out, dtype=np.uint8)


def grid_key(grid: np.ndarray) -> str:
    """A grid as text 'HxW:digits' (a hash that is its own content: ranks tie-break on it)."""
    g = np.asarray(grid, dtype=np.uint8)
    return f"{g.shape[0]}x{g.shape[1]}:" + (g + ord("0")).tobytes().decode("ascii")


def key_grid(key: str) -> np.ndarray:
    shape, digits = key.split(":", 1)
    h, w = (int(x) for x in shape.split("x"))
    return (np.frombuffer(digits.encode("ascii"), dtype=np.uint8) - ord("0")).reshape(h, w)


def input_key(task: str, inverted_input: np.ndarray) -> str:
    return f"{task}{SEPARATOR}{hashlib.sha1(grid_key(inverted_input).encode()).hexdigest()[:16]}"


# --------------------------------------------------------------------------------------
# Votes and scores
# --------------------------------------------------------------------------------------


class VoteTable:
    """votes[input key][grid key] = [count, sum of sigmoid(q_halt)]; truth[input key] = grid
    key; task[input key] = task name. Plain containers, so it goes into checkpoints as is."""

    def __init__(self):
        self.votes: dict[str, dict[str, list]] = {}
        self.truth: dict[str, str] = {}
        self.task: dict[str, str] = {}
        self.truth_conflicts = 0
        self.evaluations = 0

    def add(self, key: str, gkey: str, count: int, qsum: float) -> None:
        cell = self.votes.setdefault(key, {}).setdefault(gkey, [0, 0.0])
        cell[0] += int(count)
        cell[1] += float(qsum)

    def set_truth(self, key: str, task: str, gkey: str) -> None:
        old = self.truth.get(key)
        if old is not None and old != gkey:
            self.truth_conflicts += 1
        self.truth.setdefault(key, gkey)
        self.task[key] = task

    def merge(self, other: "VoteTable") -> None:
        for key, cands in other.votes.items():
            for gkey, (count, qsum) in cands.items():
                self.add(key, gkey, count, qsum)
        for key, gkey in other.truth.items():
            self.set_truth(key, other.task[key], gkey)
        self.truth_conflicts += other.truth_conflicts
        self.evaluations += other.evaluations

    def ranked(self, key: str) -> list[tuple[str, int, float]]:
        """Candidates of one test input, best first: (grid key, votes, mean sigmoid q)."""
        cands = [(g, c, s / c) for g, (c, s) in self.votes.get(key, {}).items() if c > 0]
        return sorted(cands, key=lambda x: (-x[1], -x[2], x[0]))

    def state_dict(self) -> dict:
        return {"votes": self.votes, "truth": self.truth, "task": self.task,
                "truth_conflicts": self.truth_conflicts, "evaluations": self.evaluations}

    @classmethod
    def from_state(cls, s: dict) -> "VoteTable":
        t = cls()
        t.votes = {k: {g: [int(c), float(q)] for g, (c, q) in v.items()} for k, v in s["votes"].items()}
        t.truth, t.task = dict(s["truth"]), dict(s["task"])
        t.truth_conflicts, t.evaluations = int(s["truth_conflicts"]), int(s["evaluations"])
        return t


def score(table: VoteTable, ks=PASS_KS) -> dict:
    """pass@K under both scorings, and what was voted."""
    tasks: dict[str, list[int]] = {}  # task -> rank of the truth per test input (0 = missing)
    n_votes, n_cands = [], []
    for key in sorted(table.truth):
        ranked = table.ranked(key)
        truth = table.truth[key]
        pos = next((i + 1 for i, (g, _, _) in enumerate(ranked) if g == truth), 0)
        tasks.setdefault(table.task[key], []).append(pos)
        n_votes.append(sum(c for _, c, _ in ranked))
        n_cands.append(len(ranked))
    all_or_nothing, per_input = {}, {}
    for k in ks:
        ok = {t: [0 < p <= k for p in pos] for t, pos in tasks.items()}
        all_or_nothing[f"pass@{k}"] = float(np.mean([all(v) for v in ok.values()])) if ok else 0.0
        per_input[f"pass@{k}"] = float(np.mean([np.mean(v) for v in ok.values()])) if ok else 0.0
    votes = np.array(n_votes or [0])
    return {
        "task_all_or_nothing": all_or_nothing,
        "per_test_input": per_input,
        "n_tasks": len(tasks),
        "n_test_inputs": len(table.truth),
        # Predictions voted per test input = augmented variants x evaluations aggregated.
        "augmentations_voted": {"mean": float(votes.mean()), "min": int(votes.min()),
                                "max": int(votes.max())},
        "candidates_per_input_mean": float(np.mean(n_cands)) if n_cands else 0.0,
        "evaluations_voted": table.evaluations,
        "truth_conflicts": table.truth_conflicts,
    }


def top_candidates(table: VoteTable, k: int = 2) -> dict:
    """{task: {input key: [grid as lists, ...top k]}} (a submission-style view)."""
    out: dict = {}
    for key in sorted(table.truth):
        out.setdefault(table.task[key], {})[key] = [key_grid(g).tolist() for g, _, _ in table.ranked(key)[:k]]
    return out


# --------------------------------------------------------------------------------------
# The scorer the evaluation loop calls
# --------------------------------------------------------------------------------------


class ArcScorer:
    """Votes at the supervision steps in `steps`; finalize() -> {step: score(...)} and keeps the
    step's VoteTable in self.tables for aggregated voting."""

    name = "arc"

    def __init__(self, names: list[str], split, steps):
        self.steps = sorted({int(k) for k in steps})
        counts = np.diff(split.puzzle_indices)
        ex_puzzle_id = np.repeat(np.asarray(split.puzzle_identifiers), counts)
        self._aug = {}
        for pid in np.unique(ex_puzzle_id):
            self._aug[int(pid)] = parse_augmentation(names[int(pid)])
        self.ex_puzzle_id = ex_puzzle_id
        self.tables: dict[int, VoteTable] = {}

    @classmethod
    def from_data_dir(cls, data_dir, split, steps) -> "ArcScorer":
        path = Path(data_dir) / "identifiers.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ARC voting needs the puzzle names (identifiers.json)")
        return cls(json.loads(path.read_text()), split, steps)

    def begin(self, idx, inputs, labels):
        augs = [self._aug[int(p)] for p in self.ex_puzzle_id[idx]]
        in_shapes, lab_shapes = crop_shapes(inputs), crop_shapes(labels)
        side = int(round(inputs.shape[1] ** 0.5))
        keys, truths = [], []
        for i, (task, tid, perm) in enumerate(augs):
            (h, w), (lh, lw) = in_shapes[i], lab_shapes[i]
            grid_in = inputs[i].reshape(side, side)[:h, :w] - COLOR_OFFSET
            grid_lab = labels[i].reshape(side, side)[:lh, :lw] - COLOR_OFFSET
            keys.append(input_key(task, invert(grid_in, tid, perm)))
            truths.append(grid_key(invert(grid_lab, tid, perm)))
        return {"augs": augs, "keys": keys, "truths": truths, "side": side, "votes": {}}

    @staticmethod
    def predicted_votes(ctx, preds, q_halt) -> list[tuple[str, str, float]]:
        """Each example's vote: (its test input's key, its predicted grid mapped back to the
        original orientation and colours, sigmoid(q_halt) as the confidence)."""
        shapes = crop_shapes(preds)
        side = ctx["side"]
        sig = 1.0 / (1.0 + np.exp(-np.asarray(q_halt, dtype=np.float64)))
        votes = []
        for i, (task, tid, perm) in enumerate(ctx["augs"]):
            h, w = shapes[i]
            grid = preds[i].reshape(side, side)[:h, :w] - COLOR_OFFSET
            votes.append((ctx["keys"][i], grid_key(invert(grid, tid, perm)), float(sig[i])))
        return votes

    def step(self, ctx, k, preds, q_halt):
        if k not in self.steps:
            return
        part: dict = {}  # this batch's votes, summed in example order
        for key, gkey, conf in self.predicted_votes(ctx, preds, q_halt):
            cell = part.setdefault(key, {}).setdefault(gkey, [0, 0.0])
            cell[0] += 1
            cell[1] += conf
        ctx["votes"][k] = part

    def end(self, ctx):
        tasks = {key: aug[0] for key, aug in zip(ctx["keys"], ctx["augs"])}
        truth = {}
        conflicts = 0
        for key, t in zip(ctx["keys"], ctx["truths"]):
            if truth.setdefault(key, t) != t:
                conflicts += 1
        return {"votes": ctx["votes"], "truth": truth, "task": tasks, "conflicts": conflicts}

    def finalize(self, payloads) -> dict:
        self.tables = {}
        for k in self.steps:
            table = VoteTable()
            table.evaluations = 1
            for p in payloads:
                for key, gkey in p["truth"].items():
                    table.set_truth(key, p["task"][key], gkey)
                table.truth_conflicts += p["conflicts"]
                for key, cands in p["votes"].get(k, {}).items():
                    for gkey, (count, qsum) in cands.items():
                        table.add(key, gkey, count, qsum)
            self.tables[k] = table
        return {k: score(t) for k, t in self.tables.items()}
