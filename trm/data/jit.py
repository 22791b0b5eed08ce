"""Optional numba: `njit` compiles when numba is importable, else returns the plain function.

Every kernel in trm.data is written in the numba-compatible subset of Python and numpy, so the
same source runs compiled (fast) or interpreted (slow, fine for 4x4/6x6 and tests). Randomness is
always drawn by the caller with numpy, never inside a kernel, so both paths produce identical data.
Set TRM_NO_NUMBA=1 to force the interpreted path.
"""

from __future__ import annotations

import os

HAVE_NUMBA = False
if os.environ.get("TRM_NO_NUMBA", "") not in ("1", "true", "yes"):
    try:
        import numba  # noqa: F401

        HAVE_NUMBA = True
    except ImportError:  # pragma: no cover - exercised only without numba
        HAVE_NUMBA = False


def njit(fn):
    """numba.njit(cache=True) when available; identity otherwise."""
    if HAVE_NUMBA:
        import numba

        return numba.njit(cache=True, nogil=True)(fn)
    return fn


def njit_parallel(fn):
    """Like njit, with numba.prange loops run on all cores (plain range without numba)."""
    if HAVE_NUMBA:
        import numba

        return numba.njit(cache=True, nogil=True, parallel=True)(fn)
    return fn


if HAVE_NUMBA:
    from numba import prange  # noqa: E402  (numba recognises only its own prange object)
else:
    prange = range
