"""The 8 symmetries of the square, numbered as the official builders number them.

0 identity, 1-3 rot90 by k (counter-clockwise, np.rot90), 4 fliplr, 5 flipud, 6 transpose,
7 anti-transpose. INVERSE[t] undoes t.
"""

from __future__ import annotations

import numpy as np

INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    """Transform the last two axes of `grid`."""
    g = np.asarray(grid)
    if tid == 0:
        out = g
    elif tid in (1, 2, 3):
        out = np.rot90(g, k=tid, axes=(-2, -1))
    elif tid == 4:
        out = np.flip(g, axis=-1)
    elif tid == 5:
        out = np.flip(g, axis=-2)
    elif tid == 6:
        out = np.swapaxes(g, -1, -2)
    elif tid == 7:
        out = np.flip(np.rot90(g, k=1, axes=(-2, -1)), axis=-1)
    else:
        raise ValueError(f"dihedral transform id must be 0..7, got {tid}")
    return np.ascontiguousarray(out)


def inverse_dihedral(grid: np.ndarray, tid: int) -> np.ndarray:
    return dihedral(grid, INVERSE[tid])


NON_IDENTITY = 7  # transforms 1..7


def augment_ids(rng: np.random.Generator, n_aug: int) -> list[int]:
    """The identity plus min(n_aug, 7) distinct other transforms, drawn from rng."""
    return [0] + list(1 + rng.permutation(NON_IDENTITY)[:min(n_aug, NON_IDENTITY)])
