"""Seeded random streams of the data builders: one independent generator per
(data.seed, stream number), so that drawing more training instances never changes the
test split, and each builder's stream numbers stay its own."""

from __future__ import annotations

import numpy as np


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])
