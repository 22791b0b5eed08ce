"""Bitmask Sudoku solver for n x n grids with br x bc boxes (4x4: 2x2, 6x6: 2x3, 9x9: 3x3).

Grids are flat int arrays of length n*n, row-major, 0 = blank, 1..n = digits. Inside the solver a
cell is a bitmask of its candidate digits (bit d-1 for digit d).

Search: constraint propagation (naked singles + hidden singles) to a fixed point, then branch on
the unfilled cell with the fewest candidates (MRV; ties -> lowest cell index), trying its digits in
a given order (ascending unless a random order is passed to sample full grids). Depth-first, with
an explicit stack so the same code runs under numba and plain Python.

RATING (frozen; changing any rule above changes it, so bump RATING_VERSION):
    rating = number of guesses made before the first solution is reached, where a guess is one
    trial assignment of a digit to the branching cell (every alternative tried counts one, the first
    included), with ascending digit order, on the puzzle exactly as given (orientation matters).
    A puzzle solved by propagation alone rates 0. This is *not* tdoku's backtrack count: on
    forum_hardest_1905_11+ tdoku reports ~65 guesses/puzzle, this solver rather more (see
    docs in build provenance); only ratings of the same RATING_VERSION are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from trm.data.jit import njit, njit_parallel, prange

RATING_VERSION = "trm-mrv-singles-v1"

BOX_SHAPES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}  # (box rows, box cols) per grid side


@dataclass(frozen=True)
class Geometry:
    """Static structure of one grid size: who constrains whom."""

    n: int
    box_rows: int
    box_cols: int
    peers: np.ndarray  # [cells, n_peers] int32: cells sharing a row, column or box (self excluded)
    units: np.ndarray  # [3n, n] int32: rows, then columns, then boxes

    @property
    def cells(self) -> int:
        return self.n * self.n

    @property
    def full(self) -> int:
        return (1 << self.n) - 1


@lru_cache(maxsize=None)
def geometry(n: int) -> Geometry:
    if n not in BOX_SHAPES:
        raise ValueError(f"sudoku grid must be one of {sorted(BOX_SHAPES)}, got {n}")
    br, bc = BOX_SHAPES[n]
    rows = [[r * n + c for c in range(n)] for r in range(n)]
    cols = [[r * n + c for r in range(n)] for c in range(n)]
    boxes = []
    for b0 in range(0, n, br):
        for c0 in range(0, n, bc):
            boxes.append([(b0 + i) * n + (c0 + j) for i in range(br) for j in range(bc)])
    units = rows + cols + boxes
    peers = []
    for cell in range(n * n):
        ps = sorted({p for u in units if cell in u for p in u} - {cell})
        peers.append(ps)
    return Geometry(n, br, bc, np.array(peers, np.int32), np.array(units, np.int32))


# --------------------------------------------------------------------------------------
# Kernels (numba-compatible)
# --------------------------------------------------------------------------------------


@njit
def _popcount(m):
    count = 0
    while m:
        m &= m - 1
        count += 1
    return count


@njit
def _propagate(cand, peers, units, full):
    """Naked + hidden singles to a fixed point, in place. False on contradiction."""
    cells = cand.shape[0]
    changed = True
    while changed:
        changed = False
        for c in range(cells):
            m = cand[c]
            if m == 0:
                return False
            if m & (m - 1) == 0:  # solved cell: remove its digit from every peer
                for k in range(peers.shape[1]):
                    p = peers[c, k]
                    if cand[p] & m:
                        cand[p] &= ~m
                        if cand[p] == 0:
                            return False
                        changed = True
        for u in range(units.shape[0]):
            once = 0
            twice = 0
            for k in range(units.shape[1]):
                m = cand[units[u, k]]
                twice |= once & m
                once |= m
            if once != full:  # some digit has no place left in this unit
                return False
            exactly = once & ~twice
            if exactly:
                for k in range(units.shape[1]):
                    c = units[u, k]
                    m = cand[c]
                    h = m & exactly
                    if h:
                        if h & (h - 1):  # two digits that each can only go here
                            return False
                        if m != h:
                            cand[c] = h
                            changed = True
    return True


@njit
def _search(cand0, peers, units, full, cap, digit_order, solution):
    """Depth-first search from candidate masks cand0.

    Returns (solutions found, capped at `cap`; guesses before the first solution; guesses in
    total). The first solution found is written to `solution` as digits 1..n.
    digit_order[c] lists the digits (1..n) in the order they are tried at cell c.
    """
    cells = cand0.shape[0]
    n = digit_order.shape[1]
    stack = np.empty((cells + 1, cells), np.int32)
    branch_cell = np.empty(cells + 1, np.int32)
    remaining = np.empty(cells + 1, np.int32)
    for c in range(cells):
        stack[0, c] = cand0[c]
    nsol = 0
    guesses = 0
    guesses_first = -1
    if not _propagate(stack[0], peers, units, full):
        return 0, 0, 0
    level = 0
    branch_cell[0] = -1
    while level >= 0:
        if branch_cell[level] == -1:
            # Fresh, propagated node: pick the MRV cell or record a solution.
            best = -1
            best_count = n + 1
            for c in range(cells):
                k = _popcount(stack[level, c])
                if 1 < k < best_count:
                    best = c
                    best_count = k
                    if k == 2:
                        break
            if best == -1:
                nsol += 1
                if nsol == 1:
                    guesses_first = guesses
                    for c in range(cells):
                        m = stack[level, c]
                        d = 0
                        while m:
                            m >>= 1
                            d += 1
                        solution[c] = d
                if nsol >= cap:
                    break
                level -= 1
                continue
            branch_cell[level] = best
            remaining[level] = stack[level, best]
        if remaining[level] == 0:
            level -= 1
            continue
        cell = branch_cell[level]
        bit = 0
        for i in range(n):
            b = 1 << (digit_order[cell, i] - 1)
            if remaining[level] & b:
                bit = b
                break
        remaining[level] &= ~bit
        guesses += 1
        for c in range(cells):
            stack[level + 1, c] = stack[level, c]
        stack[level + 1, cell] = bit
        if _propagate(stack[level + 1], peers, units, full):
            level += 1
            branch_cell[level] = -1
    if guesses_first < 0:
        guesses_first = guesses
    return nsol, guesses_first, guesses


@njit
def _givens_to_cand(grid, full):
    cand = np.empty(grid.shape[0], np.int32)
    for c in range(grid.shape[0]):
        cand[c] = full if grid[c] == 0 else (1 << (grid[c] - 1))
    return cand


@njit
def _ascending(cells, n):
    order = np.empty((cells, n), np.int32)
    for c in range(cells):
        for i in range(n):
            order[c, i] = i + 1
    return order


@njit
def _solve_one(grids, i, peers, units, full, cap, order, solutions, nsols, ratings):
    cand = _givens_to_cand(grids[i], full)
    nsol, g_first, _ = _search(cand, peers, units, full, cap, order, solutions[i])
    nsols[i] = nsol
    ratings[i] = g_first


@njit
def _solve_batch(grids, peers, units, full, cap, solutions, nsols, ratings):
    order = _ascending(grids.shape[1], int(np.sqrt(grids.shape[1])))
    for i in range(grids.shape[0]):
        _solve_one(grids, i, peers, units, full, cap, order, solutions, nsols, ratings)


@njit_parallel
def _solve_batch_parallel(grids, peers, units, full, cap, solutions, nsols, ratings):
    order = _ascending(grids.shape[1], int(np.sqrt(grids.shape[1])))
    for i in prange(grids.shape[0]):  # puzzles are independent: all cores
        _solve_one(grids, i, peers, units, full, cap, order, solutions, nsols, ratings)


PARALLEL_MIN_BATCH = 32  # below this, starting threads costs more than it saves


@njit
def _still_unique_without(puzzle, cell, value, peers, units, full, order, scratch):
    """Is `puzzle` (unique, with `value` at `cell`) still unique once `cell` is blanked?

    Equivalent to: no solution has a different digit at `cell`; one constrained search, cap 1.
    """
    cand = _givens_to_cand(puzzle, full)
    cand[cell] = full & ~(1 << (value - 1))
    nsol, _, _ = _search(cand, peers, units, full, 1, order, scratch)
    return nsol == 0


@njit
def _carve(solution, order_cells, target_blanks, peers, units, full):
    """Blank cells of a full grid in the given order, skipping any blank that would break
    uniqueness, until `target_blanks` blanks (target <= 0: as many as possible = minimal puzzle).
    Returns (puzzle, blanks reached)."""
    cells = solution.shape[0]
    n = int(np.sqrt(cells))
    puzzle = solution.copy()
    digit_order = _ascending(cells, n)
    scratch = np.empty(cells, np.int32)
    blanks = 0
    for k in range(order_cells.shape[0]):
        if target_blanks > 0 and blanks >= target_blanks:
            break
        c = order_cells[k]
        v = puzzle[c]
        puzzle[c] = 0
        if _still_unique_without(puzzle, c, v, peers, units, full, digit_order, scratch):
            blanks += 1
        else:
            puzzle[c] = v
    return puzzle, blanks


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


def solve(grids: np.ndarray, n: int, cap: int = 2):
    """Solve a batch of puzzles [B, n*n] (0 = blank).

    Returns (solutions [B, n*n] int8 (the first solution; zeros if none), n_solutions [B] capped at
    `cap`, ratings [B] = guesses to first solution, see module docstring)."""
    geo = geometry(n)
    grids = np.ascontiguousarray(np.atleast_2d(grids), dtype=np.int32)
    if grids.shape[1] != geo.cells:
        raise ValueError(f"expected {geo.cells} cells per {n}x{n} grid, got {grids.shape[1]}")
    if grids.size and (grids.min() < 0 or grids.max() > n):
        raise ValueError(f"cell values must be 0..{n}")
    B = grids.shape[0]
    solutions = np.zeros((B, geo.cells), np.int32)
    nsols = np.zeros(B, np.int32)
    ratings = np.zeros(B, np.int32)
    kernel = _solve_batch_parallel if B >= PARALLEL_MIN_BATCH else _solve_batch
    kernel(grids, geo.peers, geo.units, geo.full, cap, solutions, nsols, ratings)
    return solutions.astype(np.int8), nsols, ratings


def random_full_grid(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random complete grid: search from an empty grid with a random digit order per cell."""
    geo = geometry(n)
    order = np.argsort(rng.random((geo.cells, n)), axis=1).astype(np.int32) + 1
    cand = np.full(geo.cells, geo.full, np.int32)
    solution = np.zeros(geo.cells, np.int32)
    nsol, _, _ = _search(cand, geo.peers, geo.units, geo.full, 1, order, solution)
    assert nsol == 1  # an empty grid always has a completion
    return solution.astype(np.int8)


def carve(solution: np.ndarray, n: int, target_blanks: int, rng: np.random.Generator):
    """Blank cells of `solution` in random order keeping a unique solution.

    target_blanks > 0: stop at exactly that many (may fall short: check the returned count).
    target_blanks <= 0: a minimal puzzle (no given can be removed).
    Returns (puzzle int8 [n*n], blanks)."""
    geo = geometry(n)
    order = rng.permutation(geo.cells).astype(np.int32)
    puzzle, blanks = _carve(
        np.asarray(solution, np.int32), order, int(target_blanks), geo.peers, geo.units, geo.full
    )
    return puzzle.astype(np.int8), int(blanks)


def is_valid_solution(grid: np.ndarray, n: int) -> bool:
    """Every row, column and box holds each digit 1..n exactly once."""
    geo = geometry(n)
    g = np.asarray(grid).reshape(-1)
    if g.shape[0] != geo.cells:
        return False
    want = np.arange(1, n + 1)
    return all(np.array_equal(np.sort(g[u]), want) for u in geo.units)


# --------------------------------------------------------------------------------------
# Deduction depth (build-time difficulty; the search and RATING above are untouched)
# --------------------------------------------------------------------------------------

DEDUCTION_VERSION = "trm-sync-singles-v1"


@njit
def _deduction_rounds(grid, peers, units, full, solved_at):
    """Synchronous rounds of naked + hidden singles from the givens: every rule in a round
    reads the candidates as they were when the round began (unlike _propagate, which updates
    in place and so depends on cell order). Writes into solved_at the round at which each
    cell's digit became fixed (0 for givens, -1 if singles never fix it). Returns the number
    of rounds that changed something, or -1 on a contradiction."""
    cells = grid.shape[0]
    cand = _givens_to_cand(grid, full)
    for c in range(cells):
        solved_at[c] = 0 if grid[c] else -1
    rounds = 0
    new = cand.copy()
    while True:
        for c in range(cells):
            new[c] = cand[c]
        for c in range(cells):
            m = cand[c]
            if m & (m - 1) == 0:
                for k in range(peers.shape[1]):
                    new[peers[c, k]] &= ~m
        for u in range(units.shape[0]):
            once = 0
            twice = 0
            for k in range(units.shape[1]):
                m = cand[units[u, k]]
                twice |= once & m
                once |= m
            exactly = once & ~twice
            for k in range(units.shape[1]):
                c = units[u, k]
                h = cand[c] & exactly
                if h and h & (h - 1) == 0:
                    new[c] &= h
        changed = False
        for c in range(cells):
            if new[c] == 0:
                return -1
            if new[c] != cand[c]:
                changed = True
        if not changed:
            return rounds
        rounds += 1
        for c in range(cells):
            m = new[c]
            if solved_at[c] < 0 and m & (m - 1) == 0:
                solved_at[c] = rounds
            cand[c] = m


@njit_parallel
def _deduction_batch(grids, peers, units, full, rounds, solved_at):
    for i in prange(grids.shape[0]):
        rounds[i] = _deduction_rounds(grids[i], peers, units, full, solved_at[i])


def deduction_depth(grids: np.ndarray, n: int):
    """Per puzzle [B, n*n] (0 = blank): (rounds [B] int32 of synchronous naked + hidden singles
    to their fixed point, solved_at [B, n*n] int16: the round that fixed each cell, 0 for a
    given, -1 for a cell that singles alone never fix). DEDUCTION_VERSION names the rule."""
    geo = geometry(n)
    grids = np.ascontiguousarray(np.atleast_2d(grids), dtype=np.int32)
    if grids.shape[1] != geo.cells:
        raise ValueError(f"expected {geo.cells} cells per {n}x{n} grid, got {grids.shape[1]}")
    rounds = np.zeros(grids.shape[0], np.int32)
    solved_at = np.zeros(grids.shape, np.int32)
    _deduction_batch(grids, geo.peers, geo.units, geo.full, rounds, solved_at)
    return rounds, solved_at.astype(np.int16)
