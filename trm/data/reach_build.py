"""Reach (cut-maze reachability) datasets in the official format.

seq_len = grid^2, vocab 5 (see trm.data.reach), one shared puzzle identifier. Train: n_train
instances, each a group of the original plus (optionally) dihedral variants; test: n_test
instances, never augmented, disjoint from train. Instances need at least data.min_path
rounds of flood fill. Difficulty is recorded per example (flood-fill rounds: the largest
corridor distance from the source) and per cell (corridor distance from the source).
"""

from __future__ import annotations

import numpy as np

from trm.config import DataSpec
from trm.data import reach
from trm.data.dihedral import NON_IDENTITY, augment_ids, dihedral
from trm.data.official_format import BuiltData, SplitBuilder
from trm.data.sources import require_generated
from trm.data.streams import rng_for

STREAM_TRAIN, STREAM_TEST, STREAM_AUG = 21, 22, 23


def build_reach(data: DataSpec) -> BuiltData:
    require_generated("reach", data.source)
    taken: set[bytes] = set()
    splits = {}
    for split, count, stream in (("train", data.n_train, STREAM_TRAIN),
                                 ("test", data.n_test, STREAM_TEST)):
        splits[split] = reach.generate(data.grid, count, data.min_path, rng_for(data.seed, stream), taken)
    aug_rng = rng_for(data.seed, STREAM_AUG)
    seq_len = data.grid ** 2
    built, difficulty = {}, {}
    for split, items in splits.items():
        sb, rounds, cells = SplitBuilder(seq_len), [], []
        for q, a, d, r in items:
            ids = augment_ids(aug_rng, data.n_aug) if split == "train" else [0]
            # Dihedral maps keep corridor distances, so every variant keeps its group's values.
            sb.add_group((dihedral(q, t).reshape(-1), dihedral(a, t).reshape(-1), 0) for t in ids)
            rounds += [r] * len(ids)
            cells += [dihedral(d, t).reshape(-1) for t in ids]
        built[split] = sb.finish()
        difficulty[split] = {"example": np.array(rounds, np.int32),
                             "cell": np.stack(cells).astype(np.int16)}
    all_rounds = np.array([r for items in splits.values() for *_, r in items])
    info = {"kind": "generated", "source": "generator", "version": reach.GENERATOR_VERSION,
            "generator": "trm.data.reach", "generator_version": reach.GENERATOR_VERSION,
            "grid": data.grid, "rooms": reach.rooms_for(data.grid), "min_rounds": data.min_path,
            "n_aug_effective": min(data.n_aug, NON_IDENTITY), "rounds_min": int(all_rounds.min()),
            "rounds_median": float(np.median(all_rounds)), "rounds_max": int(all_rounds.max()),
            "label_rule": "reachable from the source through free cells (BFS)"}
    out = BuiltData(train=built["train"], test=built["test"], vocab_size=reach.VOCAB_SIZE,
                    identifiers=["<blank>"], provenance=info)
    out.difficulty = difficulty
    out.difficulty_names = {"example": "flood_fill_rounds", "cell": "corridor_distance"}
    return out
