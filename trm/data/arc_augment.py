"""ARC augmentation (dihedral x colour permutation), the token canvas, and inverses.

Token map (official): PAD 0, EOS 1, colour c -> c + 2 (vocab 12). The canvas is CANVAS x CANVAS
= 30 x 30 (seq_len 900) officially; a smaller side (data.grid, for CPU-sized toy runs) uses the
same encoding on a smaller square. A grid of h x w sits at (dr, dc) in the canvas; EOS fills the
row just below it (columns dc..dc+w-1) and the column just right of it (rows dr..dr+h-1) when
those fall inside the canvas; the corner stays PAD. A grid as large as the canvas therefore has
no EOS on that side (as a 30-wide grid officially), and still decodes: the crop stops at the edge.

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

CANVAS = 30  # the official canvas side; every function below takes the side as a parameter
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


def grid_fits(grid: np.ndarray, canvas: int = CANVAS) -> bool:
    """Whether `grid` can be written on (and decoded from) a canvas of side `canvas`."""
    h, w = np.shape(grid)
    return h <= canvas and w <= canvas


def base_canvas(grid: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    """Tokens of `grid` at offset (0, 0) with its EOS row/column, colours still 0-9 + 2."""
    h, w = grid.shape
    if not grid_fits(grid, canvas):
        # Refuse rather than let numpy clip: a clipped grid would decode to a different task.
        raise ValueError(f"a {h}x{w} grid does not fit a {canvas}x{canvas} canvas")
    out = np.zeros((canvas, canvas), np.uint8)
    out[:h, :w] = grid + COLOUR_OFFSET
    if h < canvas:
        out[h, :w] = EOS
    if w < canvas:
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


def encode_grid(grid: np.ndarray, dr: int = 0, dc: int = 0, canvas: int = CANVAS) -> np.ndarray:
    """One grid as canvas^2 tokens at offset (dr, dc) (reference path, used by tests)."""
    out = np.zeros((1, canvas * canvas), np.uint8)
    place(base_canvas(np.asarray(grid, np.uint8), canvas)[None], [0],
          token_lut(IDENTITY_MAP)[None], [0], [dr], [dc], out)
    return out[0]


def canvas_side(n_tokens: int) -> int:
    """The side of a square canvas of n_tokens (a built dataset's seq_len)."""
    side = int(round(n_tokens ** 0.5))
    if side * side != n_tokens:
        raise ValueError(f"an ARC canvas is square; {n_tokens} tokens is not")
    return side


def crop(tokens: np.ndarray) -> np.ndarray:
    """Decode a predicted canvas: the largest-area top-left rectangle of colour tokens (as the
    official evaluator's crop), returned as colours 0-9. The side comes from the token count,
    so a flat row of any built dataset decodes without being told its canvas."""
    t = np.asarray(tokens)
    side = canvas_side(t.size)
    g = t.reshape(side, side)
    is_colour = (g >= COLOUR_OFFSET) & (g < VOCAB_SIZE)
    best, best_shape = 0, (0, 0)
    width = side
    for rows in range(1, side + 1):
        row = is_colour[rows - 1, :width]
        width = int(np.argmin(row)) if not row.all() else width
        if rows * width > best:
            best, best_shape = rows * width, (rows, width)
    h, w = best_shape
    return (g[:h, :w] - COLOUR_OFFSET).astype(np.uint8)
