"""Seeded Sudoku puzzle generators (exact-blank puzzles, minimal puzzles).

A puzzle is made from a random complete grid by blanking cells in random order, skipping any blank
that would admit a second solution. Stopping at a target count gives exactly `blanks` blanks
(retrying with a fresh grid if the order dead-ends first); not stopping gives a *minimal* puzzle,
the recipe of the "unbiased" tdoku-style easy sets (slightly biased relative to tdoku's sampler:
we sample grids by randomised search, not uniformly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from trm.data import sudoku_solver as solver
from trm.data.sudoku_symmetry import equivalence_key

GENERATOR_VERSION = "trm-sudoku-gen-v1"
MAX_BLANKS = {4: 12, 6: 28, 9: 64}  # minimal-clue bounds: 4, 8 and 17 givens


@dataclass
class Puzzle:
    puzzle: np.ndarray  # int8 [n*n], 0 = blank
    solution: np.ndarray  # int8 [n*n]
    rating: int  # guesses to first solution (sudoku_solver.RATING_VERSION)
    source: str  # raw-CSV source tag, e.g. "gen_blanks24" or "gen_minimal"


def make_puzzle(n: int, blanks: int, rng: np.random.Generator, max_grids: int = 1000) -> Puzzle:
    """One puzzle with exactly `blanks` blanks (blanks <= 0: a minimal puzzle), unique solution."""
    if blanks > MAX_BLANKS[n]:
        raise ValueError(f"{n}x{n} sudoku cannot have {blanks} blanks with a unique solution "
                         f"(at most {MAX_BLANKS[n]})")
    for _ in range(max_grids):
        grid = solver.random_full_grid(n, rng)
        puzzle, got = solver.carve(grid, n, blanks, rng)
        if blanks <= 0 or got == blanks:
            _, _, rating = solver.solve(puzzle[None], n, cap=1)
            tag = "gen_minimal" if blanks <= 0 else f"gen_blanks{blanks}"
            return Puzzle(puzzle, grid, int(rating[0]), tag)
    raise RuntimeError(f"no {n}x{n} puzzle with {blanks} unique-solution blanks in {max_grids} "
                       "random grids; lower data.blanks")


def make_distinct_puzzles(
    n: int,
    blanks: int,
    count: int,
    rng: np.random.Generator,
    taken: set[bytes],
    accept: Callable[[Puzzle], bool] | None = None,
    what: str = "puzzles",
) -> list[Puzzle]:
    """`count` puzzles whose equivalence keys are pairwise distinct and not in `taken`
    (updated in place). Fails clearly when the puzzle space is too small for the request."""
    out: list[Puzzle] = []
    budget = 50 * count + 2000
    misses = 0
    while len(out) < count:
        p = make_puzzle(n, blanks, rng)
        key = equivalence_key(p.puzzle, n)
        if key in taken or (accept is not None and not accept(p)):
            misses += 1
            if misses > budget:
                raise RuntimeError(
                    f"only {len(out)} of {count} {what} found: {n}x{n} puzzles with "
                    f"{blanks} blanks have too few equivalence classes for the request "
                    f"({len(taken)} classes already used); lower n_train/n_test or change blanks"
                )
            continue
        taken.add(key)
        out.append(p)
    return out
