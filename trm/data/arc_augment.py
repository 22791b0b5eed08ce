"""ARC augmentation (dihedral x colour permutation), the 30x30 token canvas, and inverses.

Token map (official): PAD 0, EOS 1, colour c -> c + 2 (vocab 12), seq_len 900. A grid of h x w
sits at (dr, dc) in the canvas; EOS fills the row just below it (columns dc..dc+w-1) and the column
just right of it (rows dr..dr+h-1) when those fall inside the canvas; the corner stays PAD.

A variant is named as TRM names it: "<task>|||t<k>|||<m0..m9>" where k is the dihedral id and
m is the colour map (m[old] = new, m[0] = 0); the original is just "<task>". Predictions on a
variant are mapped back with `inverse_transform_grid` (inverse colour map, then inverse dihedral,
since the forward transform is dihedral(mapping[grid])).
"""

from __future__ import annotations

import hashlib

import numpy as np

from trm.data.dihedral import dihedral, inverse_dihedral
from trm.data.jit import njit

CANVAS = 30
PAD, EOS, COLOUR_OFFSET = 0, 1, 2
VOCAB_SIZE = 10 + COLOUR_OFFSET
SEP = "|||"
IDENTITY_MAP = np.arange(10, dtype=np.uint8)


def variant_name(task_id: str, tid: int, mapping: np.ndarray) -> str:
    if tid == 0 and np.array_equal(mapping, IDENTITY_MAP):
        return task_id
    return f"{task_id}{SEP}t{tid}{SEP}{''.join(str(int(x)) for x in mapping)}"


def parse_variant_name(name: str) -> tuple[str, int, np.ndarray]:
    """'<task>|||t<k>|||<map>' or '<task>' -> (task id, dihedral id, colour map [10])."""
    parts = name.split(SEP)
    if len(parts) == 1:
        return name, 0, IDENTITY_MAP.copy()
    task, t, m = parts
    return task, int(t[1:]), np.array([int(ch) for ch in m], np.uint8)


def transform_grid(grid: np.ndarray, tid: int, mapping: np.ndarray) -> np.ndarray:
    return dihedral(np.asarray(mapping, np.uint8)[np.asarray(grid)], tid)


def inverse_transform_grid(grid: np.ndarray, tid: int, mapping: np.ndarray) -> np.ndarray:
    inv = np.argsort(np.asarray(mapping)).astype(np.uint8)
    return inv[inverse_dihedral(np.asarray(grid), tid)]


def random_plans(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` random (dihedral id, colour map) draws: colours 1-9 permuted, 0 (black) fixed."""
    tids = rng.integers(0, 8, size=count)
    perms = np.argsort(rng.random((count, 9)), axis=1).astype(np.uint8) + 1
    maps = np.concatenate([np.zeros((count, 1), np.uint8), perms], axis=1)
    return tids, maps


class TaskVariants:
    """Precomputed dihedral versions of one task's grids, for fast hashing and encoding."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]]):
        self.pairs = pairs
        # [t] -> concatenated grid bytes and shape signature, for duplicate detection
        self.flat = []
        self.shapes = []
        for t in range(8):
            grids = [dihedral(g, t) for pair in pairs for g in pair]
            self.flat.append(np.concatenate([g.reshape(-1) for g in grids]))
            self.shapes.append(repr([g.shape for g in grids]).encode())

    def key(self, tid: int, mapping: np.ndarray) -> bytes:
        """Identity of the transformed puzzle (all pairs, in order)."""
        h = hashlib.sha256(self.shapes[tid])
        h.update(mapping[self.flat[tid]].tobytes())
        return h.digest()


def plan_variants(pairs, n_aug: int, rng: np.random.Generator, retries_factor: int = 5):
    """The original plus up to n_aug distinct random variants (official: up to 5 x n_aug tries;
    a variant equal to one already kept, e.g. a symmetric task under a flip, is skipped).
    Returns [(tid, mapping)], the original first."""
    tv = TaskVariants(pairs)
    plans = [(0, IDENTITY_MAP.copy())]
    if n_aug <= 0:
        return plans
    seen = {tv.key(0, IDENTITY_MAP)}
    tids, maps = random_plans(rng, retries_factor * n_aug)
    for tid, mapping in zip(tids.tolist(), maps):
        k = tv.key(tid, mapping)
        if k in seen:
            continue
        seen.add(k)
        plans.append((tid, mapping))
        if len(plans) == n_aug + 1:
            break
    return plans


# --------------------------------------------------------------------------------------
# Canvas encoding
# --------------------------------------------------------------------------------------


def base_canvas(grid: np.ndarray) -> np.ndarray:
    """Tokens of `grid` at offset (0, 0) with its EOS row/column, colours still 0-9 + 2."""
    h, w = grid.shape
    out = np.zeros((CANVAS, CANVAS), np.uint8)
    out[:h, :w] = grid + COLOUR_OFFSET
    if h < CANVAS:
        out[h, :w] = EOS
    if w < CANVAS:
        out[:h, w] = EOS
    return out


@njit
def _place(bases, rec_base, luts, rec_lut, rec_dr, rec_dc, out):
    """out[r] = luts[rec_lut[r]][bases[rec_base[r]]] shifted by (dr, dc); what falls off is
    dropped, so an EOS row/column at the canvas edge disappears as in the official builder."""
    n = bases.shape[1]
    for r in range(rec_base.shape[0]):
        b = rec_base[r]
        lut = rec_lut[r]
        dr = rec_dr[r]
        dc = rec_dc[r]
        for i in range(n * n):
            out[r, i] = 0
        for i in range(n - dr):
            for j in range(n - dc):
                v = bases[b, i, j]
                if v != 0:
                    out[r, (i + dr) * n + j + dc] = luts[lut, v]


def token_lut(mapping: np.ndarray) -> np.ndarray:
    """Canvas-token map for a colour map: PAD/EOS fixed, c + 2 -> mapping[c] + 2."""
    colours = np.asarray(mapping, np.uint8) + COLOUR_OFFSET
    return np.concatenate([[PAD, EOS], colours]).astype(np.uint8)


def place(bases, rec_base, luts, rec_lut, rec_dr, rec_dc, out) -> None:
    """Write canvases: record r = base canvas rec_base[r], colour table luts[rec_lut[r]],
    offset (rec_dr[r], rec_dc[r])."""
    i64 = lambda x: np.asarray(x, np.int64)  # noqa: E731
    _place(bases, i64(rec_base), luts, i64(rec_lut), i64(rec_dr), i64(rec_dc), out)


def encode_grid(grid: np.ndarray, dr: int = 0, dc: int = 0) -> np.ndarray:
    """One grid as 900 tokens at offset (dr, dc) (reference path, used by tests)."""
    out = np.zeros((1, CANVAS * CANVAS), np.uint8)
    place(base_canvas(np.asarray(grid, np.uint8))[None], [0], token_lut(IDENTITY_MAP)[None],
          [0], [dr], [dc], out)
    return out[0]


def crop(tokens: np.ndarray) -> np.ndarray:
    """Decode a predicted canvas: the largest-area top-left rectangle of colour tokens (as the
    official evaluator's crop), returned as colours 0-9."""
    g = np.asarray(tokens).reshape(CANVAS, CANVAS)
    is_colour = (g >= COLOUR_OFFSET) & (g < VOCAB_SIZE)
    best, best_shape = 0, (0, 0)
    width = CANVAS
    for rows in range(1, CANVAS + 1):
        row = is_colour[rows - 1, :width]
        width = int(np.argmin(row)) if not row.all() else width
        if rows * width > best:
            best, best_shape = rows * width, (rows, width)
    h, w = best_shape
    return (g[:h, :w] - COLOUR_OFFSET).astype(np.uint8)
