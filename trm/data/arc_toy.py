"""A seeded toy ARC-like task generator: the last-resort source, so ARC pipelines run (and CI
tests them) with no ARC data at all. It is NOT ARC: each task applies one hidden rule drawn from
a small family (a dihedral transform, a colour permutation, both, or a vertical "gravity") to
random sparse grids. Provenance marks such builds kind="generated".
"""

from __future__ import annotations

import numpy as np

from trm.data.arc_tasks import EVAL_SUBSET, ArcTask
from trm.data.dihedral import dihedral

TOY_VERSION = "trm-arc-toy-v1"
RULES = ("dihedral", "recolour", "dihedral+recolour", "gravity")


def _random_grid(rng: np.random.Generator, max_side: int = 10) -> np.ndarray:
    h, w = rng.integers(3, max_side + 1, size=2)
    colours = rng.integers(1, 10, size=(h, w))
    return np.where(rng.random((h, w)) < 0.3, colours, 0).astype(np.uint8)


def _gravity(grid: np.ndarray) -> np.ndarray:
    """Every coloured cell falls to the bottom of its column, keeping column order."""
    out = np.zeros_like(grid)
    for c in range(grid.shape[1]):
        col = grid[:, c][grid[:, c] != 0]
        if len(col):
            out[-len(col):, c] = col
    return out


def _rule(rng: np.random.Generator):
    kind = RULES[rng.integers(len(RULES))]
    tid = int(rng.integers(1, 8))
    mapping = np.concatenate([[0], rng.permutation(9) + 1]).astype(np.uint8)
    if kind == "dihedral":
        return lambda g: dihedral(g, tid)
    if kind == "recolour":
        return lambda g: mapping[g]
    if kind == "dihedral+recolour":
        return lambda g: dihedral(mapping[g], tid)
    return _gravity


def toy_tasks(n_train: int, n_eval: int, seed: int) -> list[ArcTask]:
    rng = np.random.default_rng([seed, 29])
    tasks = []
    for i in range(n_train + n_eval):
        rule = _rule(rng)
        pairs = []
        for _ in range(4):  # 3 demos + 1 test
            g = _random_grid(rng)
            pairs.append((g, np.ascontiguousarray(rule(g))))
        subset = "training" if i < n_train else EVAL_SUBSET
        tid = f"toy{i:05d}"
        raw = {k: [{"input": a.tolist(), "output": b.tolist()} for a, b in ps]
               for k, ps in (("train", pairs[:3]), ("test", pairs[3:]))}
        tasks.append(ArcTask(tid, subset, "generator", pairs[:3], pairs[3:], raw))
    return tasks
