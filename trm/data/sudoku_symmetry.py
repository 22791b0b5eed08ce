"""Validity-preserving Sudoku transforms, and equivalence keys for split hygiene.

The transforms are the official `shuffle_sudoku` family generalised to br x bc boxes:
digit relabelling, band order + row order inside each band, stack order + column order inside
each stack, and transpose (only for square boxes: transposing a 2x3-box grid gives 3x2 boxes,
a different puzzle family).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from trm.data.jit import HAVE_NUMBA, njit
from trm.data.sudoku_solver import BOX_SHAPES


@dataclass(frozen=True)
class Transform:
    transpose: bool
    row_perm: np.ndarray  # new row i takes old row row_perm[i] (after the optional transpose)
    col_perm: np.ndarray
    digit_map: np.ndarray  # [n+1], digit_map[0] = 0 keeps blanks blank


def _block_perm(n_blocks: int, block: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(n_blocks)
    return np.concatenate([b * block + rng.permutation(block) for b in order])


def random_transform(n: int, rng: np.random.Generator) -> Transform:
    br, bc = BOX_SHAPES[n]
    digit_map = np.concatenate([[0], rng.permutation(np.arange(1, n + 1))]).astype(np.int8)
    transpose = bool(br == bc and rng.random() < 0.5)
    row_perm = _block_perm(n // br, br, rng)
    col_perm = _block_perm(n // bc, bc, rng)
    return Transform(transpose, row_perm, col_perm, digit_map)


def apply_transform(grids: np.ndarray, n: int, t: Transform) -> np.ndarray:
    """Apply to flat grids [..., n*n]; blanks (0) stay blank."""
    g = np.asarray(grids).reshape(*np.shape(grids)[:-1], n, n)
    if t.transpose:
        g = np.swapaxes(g, -1, -2)
    g = g[..., t.row_perm, :][..., :, t.col_perm]
    return t.digit_map[g].reshape(*np.shape(grids)[:-1], n * n)


def _block_perms(count: int, n_blocks: int, block: int, rng: np.random.Generator) -> np.ndarray:
    order = np.argsort(rng.random((count, n_blocks)), axis=1)
    within = np.argsort(rng.random((count, n_blocks, block)), axis=2)
    return (order[:, :, None] * block + within).reshape(count, n_blocks * block)


def random_transforms(n: int, count: int, rng: np.random.Generator):
    """`count` random transforms at once, as (cell gather index [count, n*n], digit maps
    [count, n+1]): variant = digit_map[grid[gather]]. Same family as random_transform."""
    br, bc = BOX_SHAPES[n]
    digit_maps = np.concatenate(
        [np.zeros((count, 1), np.int64), np.argsort(rng.random((count, n)), axis=1) + 1], axis=1)
    transpose = (rng.random(count) < 0.5) & (br == bc)
    rows = _block_perms(count, n // br, br, rng)
    cols = _block_perms(count, n // bc, bc, rng)
    idx = np.arange(n * n).reshape(n, n)
    r, c = rows[:, :, None], cols[:, None, :]
    gather = np.where(transpose[:, None, None], idx.T[r, c], idx[r, c]).reshape(count, n * n)
    return gather, digit_maps


def apply_transforms(grid: np.ndarray, gather: np.ndarray, digit_maps: np.ndarray) -> np.ndarray:
    """One flat grid under many transforms -> [count, n*n]."""
    moved = np.asarray(grid).reshape(-1)[gather]
    return np.take_along_axis(digit_maps, moved.astype(np.int64), axis=1)


# --------------------------------------------------------------------------------------
# Equivalence keys
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _geometric_perms(n: int) -> np.ndarray:
    """Every geometric symmetry as a cell gather index [T, n*n] (4x4: 128, 6x6: 3456)."""
    br, bc = BOX_SHAPES[n]

    def block_perms(n_blocks, block):
        inner = list(itertools.permutations(range(block)))
        out = []
        for order in itertools.permutations(range(n_blocks)):
            for within in itertools.product(inner, repeat=n_blocks):
                out.append([b * block + w for b, ws in zip(order, within) for w in ws])
        return out

    idx = np.arange(n * n).reshape(n, n)
    bases = [idx, idx.T] if br == bc else [idx]
    perms = []
    for base in bases:
        for rp in block_perms(n // br, br):
            for cp in block_perms(n // bc, bc):
                perms.append(base[np.ix_(rp, cp)].reshape(-1))
    return np.array(perms, np.int32)


def _relabel_first_seen(rows: np.ndarray, n: int) -> np.ndarray:
    """Rename digits in each row by order of first appearance (1, 2, ...), blanks stay 0."""
    digits = np.arange(1, n + 1)
    present = rows[:, :, None] == digits  # [T, cells, n]
    first = np.where(present.any(1), present.argmax(1), rows.shape[1] + digits)  # [T, n]
    rank = np.argsort(np.argsort(first, axis=1), axis=1) + 1  # [T, n] new label per old digit
    table = np.concatenate([np.zeros((len(rows), 1), rank.dtype), rank], axis=1)
    return np.take_along_axis(table, rows.astype(np.int64), axis=1)


@njit
def _canonical_min(puzzle, perms, n, best):
    """Lexicographic minimum over perms of the first-seen-relabelled gathered puzzle, in best.
    Compares while relabelling so most symmetric variants are rejected after a few cells."""
    cells = perms.shape[1]
    label = np.empty(n + 1, np.int32)
    cand = np.empty(cells, np.int32)
    for c in range(cells):
        best[c] = 127
    for t in range(perms.shape[0]):
        for d in range(n + 1):
            label[d] = 0
        nxt = 1
        state = 0  # 0: equal so far, -1: smaller (copy the rest), 1: larger (stop)
        for c in range(cells):
            v = puzzle[perms[t, c]]
            if v != 0 and label[v] == 0:
                label[v] = nxt
                nxt += 1
            w = label[v] if v != 0 else 0
            cand[c] = w
            if state == 0:
                if w < best[c]:
                    state = -1
                elif w > best[c]:
                    state = 1
                    break
        if state == -1:
            for c in range(cells):
                best[c] = cand[c]


def canonical_key(puzzle: np.ndarray, n: int) -> bytes:
    """Exact canonical form of a 4x4/6x6 puzzle under all geometric symmetries and relabellings:
    two puzzles are equivalent iff their keys are equal."""
    if n == 9:
        raise ValueError("exact canonical form is too costly for 9x9; use invariant_key")
    if HAVE_NUMBA:
        best = np.empty(n * n, np.int32)
        _canonical_min(np.asarray(puzzle, np.int32).reshape(-1), _geometric_perms(n), n, best)
        return best.astype(np.uint8).tobytes()
    # Vectorised numpy path (no numba): same result.
    rows = np.asarray(puzzle).reshape(-1)[_geometric_perms(n)]
    rows = _relabel_first_seen(rows, n).astype(np.uint8)
    first = np.lexsort(rows.T[::-1])[0]  # lexicographic minimum over all symmetric variants
    return rows[first].tobytes()


def _relation_profile(rows, cols, digits, br, bc) -> bytes:
    """Sorted per-given histograms of how each given relates to every other given (same row,
    column, band, stack, box, digit): invariant under band/row/stack/column permutations and
    digit relabelling (a one-round Weisfeiler-Lehman colouring of the givens)."""
    eq = lambda a: (a[:, None] == a[None, :]).astype(np.int64)  # noqa: E731
    code = (eq(rows) | eq(cols) << 1 | eq(rows // br) << 2 | eq(cols // bc) << 3
            | eq((rows // br) * 64 + cols // bc) << 4 | eq(digits) << 5)
    np.fill_diagonal(code, 64)  # self: its own bin, not counted as a relation
    hist = np.zeros((len(rows), 65), np.int64)
    np.add.at(hist, (np.repeat(np.arange(len(rows)), len(rows)), code.reshape(-1)), 1)
    hist = hist[np.lexsort(hist.T[::-1])] if len(rows) else hist
    return hist.tobytes()


def invariant_key(puzzle: np.ndarray, n: int) -> bytes:
    """A conservative equivalence fingerprint (equal for equivalent puzzles; very rarely equal
    for inequivalent ones), for 9x9 where the exact canonical form is too costly. Rejecting a
    test puzzle on a false collision only makes the split stricter, never leaky."""
    br, bc = BOX_SHAPES[n]
    g = np.asarray(puzzle).reshape(n, n).astype(np.int64)
    keys = []
    for grid, rb, cb in ([(g, br, bc), (g.T, bc, br)] if br == bc else [(g, br, bc)]):
        rows, cols = np.nonzero(grid)
        keys.append(_relation_profile(rows, cols, grid[rows, cols], rb, cb))
    return hashlib.sha1(min(keys)).digest()


def equivalence_key(puzzle: np.ndarray, n: int) -> bytes:
    """Exact canonical form when cheap (4x4, 6x6), invariant fingerprint for 9x9."""
    return invariant_key(puzzle, n) if n == 9 else canonical_key(puzzle, n)


# --------------------------------------------------------------------------------------
# Solution-grid families
# --------------------------------------------------------------------------------------
#
# A *family* is the class of a complete solution grid under the whole symmetry group (digit
# relabelling, row order inside bands, band order, column order inside stacks, stack order,
# transpose for square boxes). Puzzles of one family are near-duplicates even when their givens
# differ (a vicinity child and its parent, or the forum lists' "families" of related puzzles),
# so the 9x9 splits are made by family, not by puzzle.


@lru_cache(maxsize=None)
def _column_perms(n: int) -> np.ndarray:
    """Every stack-preserving column order [P, n] (9x9: 6 * 6^3 = 1296)."""
    _, bc = BOX_SHAPES[n]
    inner = list(itertools.permutations(range(bc)))
    out = []
    for order in itertools.permutations(range(n // bc)):
        for within in itertools.product(inner, repeat=n // bc):
            out.append([b * bc + w for b, ws in zip(order, within) for w in ws])
    return np.array(out, np.int64)


def _grid_canonical_codes(grid: np.ndarray, n: int, br: int) -> np.ndarray:
    """Lexicographic minimum of one orientation's orbit under row/column/digit symmetries, as n
    row codes (a row of digits read as a base-(n+1) number).

    Exact, not a fingerprint: in the minimal variant row 0 reads 1..n (any row can be relabelled
    to that), so the variant is fixed by which row comes first and the column order; the other
    rows are then forced - the rest of the first row's band in increasing order, every other
    band sorted, those bands ordered by their first row. Minimising over the n * P choices of
    (first row, column order) therefore gives the orbit's minimum."""
    perms = _column_perms(n)  # [P, n]
    g = grid[:, perms].transpose(1, 0, 2)  # [P, n rows, n cols]: columns reordered
    weights = (n + 1) ** np.arange(n - 1, -1, -1, dtype=np.int64)
    best = None
    for r in range(n):
        # Relabel so that row r reads 1..n: label[old digit] = its position in row r.
        label = np.zeros((len(perms), n + 1), np.int64)
        np.put_along_axis(label, g[:, r, :].astype(np.int64), np.arange(1, n + 1)[None], axis=1)
        relab = np.take_along_axis(label[:, None, :], g.astype(np.int64), axis=2)
        codes = (relab * weights).sum(-1)  # [P, n]
        band = r // br
        rows = [codes[:, r]]
        rest = np.sort(np.delete(codes[:, band * br:(band + 1) * br], r % br, axis=1), axis=1)
        others = [np.sort(codes[:, b * br:(b + 1) * br], axis=1)
                  for b in range(n // br) if b != band]
        if others:
            stack = np.stack(others, axis=1)  # [P, bands-1, br], each band sorted
            order = np.argsort(stack[:, :, 0], axis=1)  # bands by their first (smallest) row
            stack = np.take_along_axis(stack, order[:, :, None], axis=1)
            cand = np.concatenate([rows[0][:, None], rest, stack.reshape(len(perms), -1)], 1)
        else:
            cand = np.concatenate([rows[0][:, None], rest], 1)
        m = cand[np.lexsort(cand.T[::-1])[0]]
        if best is None or tuple(m) < tuple(best):
            best = m
    return best


@njit
def _family_min(grid, perms, n, br, best):
    """Same minimum as _grid_canonical_codes (into best, pre-filled with a large value), one
    candidate at a time: the numpy version allocates ~20 MB per 9x9 grid and takes ~50 ms."""
    nb = n // br
    label = np.zeros(n + 1, np.int64)
    codes = np.zeros(n, np.int64)
    cand = np.zeros(n, np.int64)
    band_rows = np.zeros((nb, br), np.int64)
    for r in range(n):
        band = r // br
        for p in range(perms.shape[0]):
            for j in range(n):
                label[grid[r, perms[p, j]]] = j + 1
            for i in range(band * br, band * br + br):
                c = 0
                for j in range(n):
                    c = c * (n + 1) + label[grid[i, perms[p, j]]]
                codes[i] = c
            # First band: row r, then the band's other rows in increasing order.
            cand[0] = codes[r]
            k = 1
            for i in range(band * br, band * br + br):
                if i != r:
                    cand[k] = codes[i]
                    k += 1
            for a in range(2, br):  # insertion sort of cand[1:br]
                v = cand[a]
                b = a - 1
                while b >= 1 and cand[b] > v:
                    cand[b + 1] = cand[b]
                    b -= 1
                cand[b + 1] = v
            # Prune: most candidates already lose on the first band, before the other rows
            # are encoded (a 10x speed-up).
            worse = False
            for i in range(br):
                if cand[i] != best[i]:
                    worse = cand[i] > best[i]
                    break
            if worse:
                continue
            for i in range(n):
                if i // br != band:
                    c = 0
                    for j in range(n):
                        c = c * (n + 1) + label[grid[i, perms[p, j]]]
                    codes[i] = c
            # Every other band sorted, then the bands ordered by their first row.
            m = 0
            for b in range(nb):
                if b == band:
                    continue
                for i in range(br):
                    band_rows[m, i] = codes[b * br + i]
                band_rows[m, :br].sort()
                m += 1
            for a in range(1, m):
                b = a
                while b >= 1 and band_rows[b - 1, 0] > band_rows[b, 0]:
                    for i in range(br):
                        t = band_rows[b - 1, i]
                        band_rows[b - 1, i] = band_rows[b, i]
                        band_rows[b, i] = t
                    b -= 1
            for a in range(m):
                for i in range(br):
                    cand[br + a * br + i] = band_rows[a, i]
            state = 0
            for i in range(n):
                if cand[i] < best[i]:
                    state = -1
                    break
                if cand[i] > best[i]:
                    state = 1
                    break
            if state == -1:
                for i in range(n):
                    best[i] = cand[i]


def _orientation_min(g: np.ndarray, n: int, br: int) -> np.ndarray:
    if HAVE_NUMBA:
        best = np.full(n, np.iinfo(np.int64).max, np.int64)
        _family_min(np.ascontiguousarray(g, np.int64), _column_perms(n), n, br, best)
        return best
    return _grid_canonical_codes(g, n, br)


def family_key(solution: np.ndarray, n: int) -> bytes:
    """Exact canonical form of a complete solution grid under the full symmetry group (9x9:
    2 * 9 * 1296 candidate variants, ~2 ms with numba): equal iff the grids are equivalent.
    4x4 grids fall into 2 families and 6x6 into a few dozen, so only 9x9 can be split by family."""
    br, bc = BOX_SHAPES[n]
    g = np.asarray(solution).reshape(n, n).astype(np.int64)
    if g.min() < 1:
        raise ValueError("family_key needs a complete solution grid (no blanks)")
    best = _orientation_min(g, n, br)
    if br == bc:  # transpose is a symmetry only with square boxes
        other = _orientation_min(g.T.copy(), n, br)
        if tuple(other) < tuple(best):
            best = other
    return hashlib.sha1(np.asarray(best, np.int64).tobytes()).digest()
