"""A seeded toy ARC-like task generator: the last-resort source, so ARC pipelines run (and CI
tests them) with no ARC data at all, and the CPU-sized default has an ARC-like task it can learn.
It is NOT ARC. Provenance marks such builds kind="generated".

Each task applies one hidden rule, drawn from a small ARC-like family, to random sparse grids:

  dihedral   one of the 7 non-identity rotations/reflections of the whole grid
  recolour   a permutation of the task's palette (the other colours are left alone)
  gravity    every coloured cell falls as far as it can in one direction, keeping its order
  shift      every coloured cell moves one cell in one direction; what leaves the grid is lost
  outline    the grid's outer frame is painted in one colour, the inside is kept

Tasks are shaped as ARC tasks are: 3 demonstrations + 1 test pair, all inputs of one task of
one shape (drawn per task). Grids are 2..canvas-1 per side (so every grid keeps its EOS border
inside the canvas, and a train example has room to be translated). A task draws a palette of 2-3 colours and every grid of the task uses only those;
the demos together use every palette colour, so the test output never depends on a colour the
demos did not show (a recolour of an unseen colour would be a guess, not a rule). The rule's
identity is never in the input: only the puzzle embedding, fitted on the demos, can carry it.
"""

from __future__ import annotations

import numpy as np

from trm.data.arc_augment import CANVAS
from trm.data.arc_tasks import EVAL_SUBSET, ArcTask
from trm.data.dihedral import dihedral

TOY_VERSION = "trm-arc-toy-v4"
RULES = ("dihedral", "recolour", "gravity", "shift", "outline")
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # down, up, right, left (row, col steps)
DENSITY = 0.3  # share of coloured cells: sparse, as ARC grids mostly are
N_DEMOS = 3


def _random_grid(rng: np.random.Generator, palette: np.ndarray, h: int, w: int) -> np.ndarray:
    colours = palette[rng.integers(len(palette), size=(h, w))]
    return np.where(rng.random((h, w)) < DENSITY, colours, 0).astype(np.uint8)


def _gravity(grid: np.ndarray, d: tuple[int, int]) -> np.ndarray:
    """Coloured cells fall in direction d, keeping their order along the line."""
    # Rotate (np.rot90 turns counter-clockwise) so that d points down, fall, rotate back.
    turns = {(1, 0): 0, (0, 1): 3, (-1, 0): 2, (0, -1): 1}[d]
    g = np.rot90(grid, turns)
    out = np.zeros_like(g)
    for c in range(g.shape[1]):
        col = g[:, c][g[:, c] != 0]
        if len(col):
            out[g.shape[0] - len(col):, c] = col
    return np.ascontiguousarray(np.rot90(out, -turns))


def _shift(grid: np.ndarray, d: tuple[int, int]) -> np.ndarray:
    h, w = grid.shape
    out = np.zeros_like(grid)
    dr, dc = d
    out[max(dr, 0):h + min(dr, 0), max(dc, 0):w + min(dc, 0)] = \
        grid[max(-dr, 0):h + min(-dr, 0), max(-dc, 0):w + min(-dc, 0)]
    return out


def _outline(grid: np.ndarray, colour: int) -> np.ndarray:
    out = grid.copy()
    out[0, :] = out[-1, :] = colour
    out[:, 0] = out[:, -1] = colour
    return out


def _rule(rng: np.random.Generator, palette: np.ndarray):
    """(kind, function) of one task's hidden rule."""
    kind = RULES[rng.integers(len(RULES))]
    if kind == "dihedral":
        tid = int(rng.integers(1, 8))
        return kind, lambda g: dihedral(g, tid)
    if kind == "recolour":
        # Palette colours go to distinct colours 1-9 (a bijection, so the output determines the
        # input as in a real recolour task), at least one changed (else it is the identity).
        while True:
            image = rng.permutation(9)[:len(palette)] + 1
            if not np.array_equal(image, palette):
                break
        lut = np.arange(10, dtype=np.uint8)
        lut[palette] = image
        return kind, lambda g: lut[g]
    d = DIRECTIONS[rng.integers(len(DIRECTIONS))]
    if kind == "gravity":
        return kind, lambda g: _gravity(g, d)
    if kind == "shift":
        return kind, lambda g: _shift(g, d)
    colour = int(rng.integers(1, 10))
    return kind, lambda g: _outline(g, colour)


def _task_pairs(rng: np.random.Generator, max_side: int):
    palette = np.sort(rng.choice(np.arange(1, 10), size=int(rng.integers(2, 4)), replace=False))
    kind, rule = _rule(rng, palette)
    # One input shape per task, as in many ARC tasks: the test input has its demos' shape, so
    # a rule that moves cells (dihedral, gravity, shift) is one fixed map per task, which the
    # puzzle embedding can carry; tasks differ in shape. (With a shape per pair, a tiny model
    # stayed at 0% exact after 300-600 steps.)
    h, w = (int(x) for x in rng.integers(2, max_side + 1, size=2))
    while True:
        inputs = [_random_grid(rng, palette, h, w) for _ in range(N_DEMOS + 1)]
        outputs = [np.ascontiguousarray(rule(g)).astype(np.uint8) for g in inputs]
        shown = set(np.unique(np.concatenate([g.ravel() for g in inputs[:N_DEMOS]]))) - {0}
        # Redraw until the demos show the whole palette, no pair is unchanged by the rule (an
        # identity pair is solved by copying) and no output is blank (e.g. a shift that pushes
        # every cell out: solved by predicting background alone, measured to be most of what a
        # tiny model solves when such outputs are allowed).
        if shown == set(palette.tolist()) and all(b.any() for b in outputs) and not any(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(inputs, outputs)):
            return kind, list(zip(inputs, outputs))


def toy_tasks(n_train: int, n_eval: int, seed: int, canvas: int = CANVAS) -> list[ArcTask]:
    """n_train training tasks then n_eval evaluation tasks, every grid at most canvas-1 a side."""
    if canvas < 3:
        raise ValueError(f"toy ARC tasks need a canvas of at least 3 (2x2 grids + EOS), got {canvas}")
    rng = np.random.default_rng([seed, 29])
    tasks = []
    for i in range(n_train + n_eval):
        kind, pairs = _task_pairs(rng, canvas - 1)
        subset = "training" if i < n_train else EVAL_SUBSET
        tid = f"toy{i:05d}"
        raw = {k: [{"input": a.tolist(), "output": b.tolist()} for a, b in ps]
               for k, ps in (("train", pairs[:N_DEMOS]), ("test", pairs[N_DEMOS:]))}
        raw["rule"] = kind  # for inspection only; the builder never encodes it
        tasks.append(ArcTask(tid, subset, "generator", pairs[:N_DEMOS], pairs[N_DEMOS:], raw))
    return tasks
