"""Maze scoring beyond exact match: is the predicted path valid AND optimal?

Tokens (HRM/TRM maze builders, data notes 4.1): charset "# SGo" -> 1..5, PAD 0:
    1 wall '#', 2 free ' ', 3 start 'S', 4 goal 'G', 5 path 'o'.
Shortest paths in these mazes are almost never unique, so the exact-match label encodes the
generator's A* tie-break; a prediction is valid-and-optimal when
  * every non-free cell of the question (wall, S, G, PAD) is copied unchanged, and every free
    cell is predicted free or path;
  * the path cells plus S and G form one simple 4-connected path from S to G: S and G have
    exactly one marked neighbour, every path cell exactly two;
  * the number of marked cells (S and G included) is the BFS shortest distance + 1.
The degree conditions make the component of S a simple path ending at G (other components
would be cycles); a walk from S to G has at least distance + 1 cells, so the count condition
rules out any extra cycle and any longer path. Everything is vectorised over the batch.
"""

from __future__ import annotations

import math

import numpy as np

PAD, WALL, FREE, START, GOAL, PATH = 0, 1, 2, 3, 4, 5


def _side(seq_len: int) -> int:
    side = math.isqrt(seq_len)
    if side * side != seq_len:
        raise ValueError(f"maze sequences must be square grids, got length {seq_len}")
    return side


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """[b, H, W] bool -> count of 4-neighbours that are set (nothing outside the grid)."""
    m = mask.astype(np.int8)
    out = np.zeros_like(m)
    out[:, 1:, :] += m[:, :-1, :]
    out[:, :-1, :] += m[:, 1:, :]
    out[:, :, 1:] += m[:, :, :-1]
    out[:, :, :-1] += m[:, :, 1:]
    return out


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[:, 1:, :] |= mask[:, :-1, :]
    out[:, :-1, :] |= mask[:, 1:, :]
    out[:, :, 1:] |= mask[:, :, :-1]
    out[:, :, :-1] |= mask[:, :, 1:]
    return out


def shortest_distances(questions: np.ndarray) -> np.ndarray:
    """BFS distance (moves) from S to G for each question [b, L]; -1 when unreachable or when
    S or G is missing. Frontier expansion over the whole batch at once."""
    q = np.asarray(questions)
    b, L = q.shape
    side = _side(L)
    g = q.reshape(b, side, side)
    passable = (g != WALL) & (g != PAD)
    start, goal = g == START, g == GOAL
    ok = (start.sum((1, 2)) == 1) & (goal.sum((1, 2)) == 1)
    dist = np.full(b, -1, dtype=np.int64)
    dist[ok & (start & goal).any((1, 2))] = 0
    reached = start.copy()
    active = ok & (dist < 0)
    d = 0
    while active.any():
        d += 1
        grown = _dilate(reached) & passable
        new = grown & ~reached
        moved = new.any((1, 2))
        hit = active & (new & goal).any((1, 2))
        dist[hit] = d
        reached = grown
        active &= ~hit & moved
    return dist


def valid_optimal(preds: np.ndarray, questions: np.ndarray, dist: np.ndarray | None = None) -> np.ndarray:
    """[b] bool: each predicted token grid is a valid shortest S->G path for its question."""
    p, q = np.asarray(preds), np.asarray(questions)
    if dist is None:
        dist = shortest_distances(q)
    b, L = q.shape
    side = _side(L)
    free = q == FREE
    copied = np.where(free, (p == FREE) | (p == PATH), p == q).all(axis=1)
    on = ((p == PATH) & free) | (q == START) | (q == GOAL)
    deg = _neighbours(on.reshape(b, side, side)).reshape(b, L)
    ends = (q == START) | (q == GOAL)
    deg_ok = np.where(ends, deg == 1, np.where(on, deg == 2, True)).all(axis=1)
    count_ok = on.sum(axis=1) == dist + 1
    return copied & deg_ok & count_ok & (dist > 0)


class MazeScorer:
    """Per supervision step: share of examples whose prediction is valid and optimal."""

    name = "maze"

    def begin(self, idx, inputs, labels):
        return {"q": inputs, "dist": shortest_distances(inputs), "valid": []}

    def step(self, ctx, k, preds, q_halt):
        ctx["valid"].append(valid_optimal(preds, ctx["q"], ctx["dist"]))

    def end(self, ctx):
        return {"valid": np.stack(ctx["valid"]) if ctx["valid"] else np.zeros((0, 0), bool),
                "solvable": ctx["dist"] > 0}

    def finalize(self, payloads):
        if not payloads:
            return {"valid_optimal_accuracy": [], "valid": np.zeros((0, 0), bool), "n_unsolvable": 0}
        valid = np.concatenate([p["valid"] for p in payloads], axis=1)
        solvable = np.concatenate([p["solvable"] for p in payloads])
        return {
            "valid_optimal_accuracy": [float(v.mean()) if v.size else 0.0 for v in valid],
            "valid": valid,  # [n_steps, n] per example (not written to JSON)
            "n_unsolvable": int((~solvable).sum()),  # questions with no S->G path (data error)
        }
