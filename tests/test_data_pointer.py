"""The pointer control task: labels against an independent computation (cycle walking),
recorded lookups equal to a recomputation, splits without duplicate instances, one-line
refusals of bad sizes."""

import json

import numpy as np
import pytest

from trm import config as C
from conftest import split_keys
from trm.config import DataSpec
from trm.data import pointer as P
from trm.data.build import build_dataset
from trm.data.pointer_build import build_pointer


def decode(inputs: np.ndarray) -> tuple[np.ndarray, int]:
    """(permutation, lookups) read back from one input row."""
    slots = len(inputs) - 1
    return inputs[1:].astype(int) - 1, int(inputs[0]) - slots


def labels_by_cycles(perm: np.ndarray, steps: int) -> np.ndarray:
    """p^steps(i) from the cycle decomposition: i's target sits `steps` places further along
    i's cycle (no repeated application of p)."""
    target = np.full(len(perm), -1)
    for start in range(len(perm)):
        if target[start] >= 0:
            continue
        cycle = [start]
        while perm[cycle[-1]] != start:
            cycle.append(int(perm[cycle[-1]]))
        for place, slot in enumerate(cycle):
            target[slot] = cycle[(place + steps) % len(cycle)]
    return target


def expected_labels(inputs: np.ndarray) -> np.ndarray:
    perm, lookups = decode(inputs)
    return np.concatenate(([P.IGNORE], 1 + labels_by_cycles(perm, lookups + 1)))


@pytest.mark.parametrize("slots,max_lookups,count", [(2, 1, 2), (8, 1, 40), (16, 3, 40), (24, 5, 40)])
def test_labels_match_the_cycle_walk(slots, max_lookups, count):
    rng = np.random.default_rng(slots)
    for perm, k in P.generate(slots, max_lookups, count, rng, set()):
        inputs, labels = P.encode(perm, k)
        assert sorted(decode(inputs)[0]) == list(range(slots))
        assert decode(inputs)[1] == k and 1 <= k <= max_lookups
        assert np.array_equal(labels, expected_labels(inputs))
        assert inputs.max() < P.vocab_size(slots, max_lookups)


def test_lookups_cover_their_range():
    ks = [k for _, k in P.generate(10, 4, 400, np.random.default_rng(0), set())]
    assert set(ks) == {1, 2, 3, 4}


def test_renaming_slots_keeps_the_labels_consistent():
    rng = np.random.default_rng(5)
    perm = rng.permutation(12)
    sigma = rng.permutation(12)
    renamed = P.relabel(perm, sigma)
    assert sorted(renamed) == list(range(12))
    for k in (1, 2, 3):
        inputs, labels = P.encode(renamed, k)
        assert np.array_equal(labels, expected_labels(inputs))
        # Renaming maps slot i's target to sigma's image of it.
        original = labels_by_cycles(perm, k + 1)
        assert np.array_equal(labels[1:][sigma], 1 + sigma[original])


def test_built_splits_have_no_duplicate_and_record_lookups():
    spec = DataSpec(task="pointer", grid=6, max_lookups=3, n_train=150, n_test=60, n_aug=2, seed=4)
    built = build_pointer(spec)
    tr, te = built.train, built.test
    keys_train, keys_test = split_keys(built)
    assert len(keys_train) == 150 and len(keys_test) == 60 and not keys_train & keys_test
    assert len(tr.inputs) == 150 * 3 and len(te.inputs) == 60
    assert built.vocab_size == 6 + 3 + 1
    for split, arrays in (("train", tr), ("test", te)):
        lookups = built.difficulty[split]["example"]
        assert lookups.shape == (len(arrays.inputs),)
        assert np.array_equal(lookups, [decode(row)[1] for row in arrays.inputs])
        for row, labels in zip(arrays.inputs, arrays.labels):
            assert np.array_equal(labels, expected_labels(row))
    assert built.difficulty_names == {"example": "pointer_lookups"}


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = build_pointer(DataSpec(task="pointer", grid=8, max_lookups=1, n_train=40, n_test=20, seed=1))
    b = build_pointer(DataSpec(task="pointer", grid=8, max_lookups=1, n_train=40, n_test=20, seed=1))
    c = build_pointer(DataSpec(task="pointer", grid=8, max_lookups=1, n_train=40, n_test=20, seed=2))
    assert np.array_equal(a.train.inputs, b.train.inputs)
    assert not np.array_equal(a.train.inputs, c.train.inputs)


def test_build_dataset_writes_the_official_format(tmp_path):
    spec = DataSpec(task="pointer", grid=8, max_lookups=2, n_train=30, n_test=10, seed=0)
    build_dataset(spec, tmp_path)
    meta = json.loads((tmp_path / "test" / "dataset.json").read_text())
    assert meta["seq_len"] == 9 and meta["vocab_size"] == 11


@pytest.mark.parametrize("slots,max_lookups,words", [(1, 1, "data.grid"), (8, 0, "data.max_lookups")])
def test_bad_sizes_are_refused_in_one_line(slots, max_lookups, words):
    with pytest.raises(ValueError, match=words):
        P.generate(slots, max_lookups, 5, np.random.default_rng(0), set())


def test_more_instances_than_permutations_is_refused_in_one_line():
    # 2 slots, 1 lookup: only two distinct instances exist.
    with pytest.raises(ValueError, match="raise data.grid"):
        P.generate(2, 1, 3, np.random.default_rng(0), set())


@pytest.mark.parametrize("over,key", [({"data.grid": 1}, "data.grid"),
                                      ({"data.max_lookups": 0}, "data.max_lookups")])
def test_spec_ranges_name_the_field(over, key):
    with pytest.raises(C.SpecError, match=key):
        C.resolve("trm_att", "pointer", "tiny", over, seed=0)


def test_other_sources_are_refused():
    from trm.data.sources import SourceError

    with pytest.raises(SourceError, match="generated only"):
        build_pointer(DataSpec(task="pointer", source="path", grid=8, max_lookups=1))
