"""Pointer (permutation chasing) datasets in the official format.

data.grid is the slot count L and data.max_lookups the most lookups K (each instance draws its
lookup count k uniformly from 1..K; see trm.data.pointer). seq_len = L + 1, vocab L + K + 1,
one shared puzzle identifier. Train: n_train instances, each a group of the original plus
(optionally) n_aug variants with the slots renamed by a random permutation; test: n_test
instances, never augmented, disjoint from train. Difficulty is recorded per example: k.
"""

from __future__ import annotations

import numpy as np

from trm.config import DataSpec
from trm.data import pointer
from trm.data.official_format import BuiltData, SplitBuilder
from trm.data.sources import require_generated
from trm.data.streams import rng_for

STREAM_TRAIN, STREAM_TEST, STREAM_AUG = 31, 32, 33


def build_pointer(data: DataSpec) -> BuiltData:
    require_generated("pointer", data.source)
    slots, max_lookups = data.grid, data.max_lookups
    pointer.check_sizes(slots, max_lookups)
    taken: set[bytes] = set()
    splits = {split: pointer.generate(slots, max_lookups, count, rng_for(data.seed, stream), taken)
              for split, count, stream in (("train", data.n_train, STREAM_TRAIN),
                                           ("test", data.n_test, STREAM_TEST))}
    aug_rng = rng_for(data.seed, STREAM_AUG)
    built, difficulty = {}, {}
    for split, items in splits.items():
        sb, lookups = SplitBuilder(slots + 1), []
        for perm, k in items:
            variants = [perm]
            if split == "train":
                variants += [pointer.relabel(perm, aug_rng.permutation(slots)) for _ in range(data.n_aug)]
            # One group per instance, one puzzle per variant (as the other generated tasks).
            sb.add_group((*pointer.encode(v, k), 0) for v in variants)
            lookups += [k] * len(variants)
        built[split] = sb.finish()
        difficulty[split] = {"example": np.array(lookups, np.int32)}
    all_k = np.array([k for items in splits.values() for _, k in items])
    info = {"kind": "generated", "source": "generator", "version": pointer.GENERATOR_VERSION,
            "generator": "trm.data.pointer", "generator_version": pointer.GENERATOR_VERSION,
            "slots": slots, "max_lookups": max_lookups, "n_aug_effective": data.n_aug,
            "lookups_min": int(all_k.min()) if len(all_k) else 0,
            "lookups_max": int(all_k.max()) if len(all_k) else 0,
            "label_rule": "slot i's label is p^(k+1)(i): k pointer lookups past the slot it holds"}
    out = BuiltData(train=built["train"], test=built["test"],
                    vocab_size=pointer.vocab_size(slots, max_lookups), identifiers=["<blank>"],
                    provenance=info)
    out.difficulty = difficulty
    out.difficulty_names = {"example": "pointer_lookups"}
    return out
