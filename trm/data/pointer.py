"""Pointer chasing: a control task that needs routing by content (the mixer axis).

An instance is a random permutation p of L slots and a lookup count k. Slot i holds p(i), the
slot it points to; a marker in front of the slots says k. The label of slot i is p^(k+1)(i):
the slot reached by following k more pointers from the one slot i already names.

Why this task: every lookup reads the slot whose *index* equals a value held in the sequence,
a different slot for every instance. Attention can route that (a query built from the value,
keys from absolute positions); the MLP token mixer mixes positions with fixed weights, the
same for every instance, so it cannot follow a pointer (see docs/control-tasks.md). Lookups
are sequential, so k is the instance's depth need (recorded per instance as its difficulty).
Permutations, not arbitrary maps, so that no slot is a sink every pointer drains into and the
labels stay spread over all L values.

Sequence: [marker, slot 0, ..., slot L-1], length L + 1. Tokens: PAD 0; a slot holding value
v is 1 + v (1..L); the marker for k lookups is L + k. Labels: 0 on the marker (ignored by the
loss and the accuracies), 1 + p^(k+1)(i) on slot i. Vocabulary L + K + 1 for at most K
lookups.
"""

from __future__ import annotations

import numpy as np

from trm.data.distinct import draw_distinct

GENERATOR_VERSION = "trm-pointer-perm-v1"
PAD, IGNORE = 0, 0
MIN_SLOTS = 2
MAX_TRIES_FACTOR = 200  # draws per requested instance before giving up with a clear error


def check_sizes(slots: int, max_lookups: int) -> None:
    if slots < MIN_SLOTS:
        raise ValueError(f"pointer needs data.grid (the slot count L) >= {MIN_SLOTS}, got {slots}")
    if max_lookups < 1:
        raise ValueError(f"pointer needs data.max_lookups >= 1, got {max_lookups}")
    if slots + max_lookups + 1 > 256:
        raise ValueError(f"pointer tokens must fit uint8: data.grid + data.max_lookups + 1 <= 256, "
                         f"got {slots + max_lookups + 1}")


def vocab_size(slots: int, max_lookups: int) -> int:
    return slots + max_lookups + 1


def follow(perm: np.ndarray, hops: int) -> np.ndarray:
    """p^hops as an array: entry i is the slot reached from i after `hops` pointer steps."""
    out = np.arange(len(perm))
    for _ in range(hops):
        out = perm[out]
    return out


def encode(perm: np.ndarray, lookups: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [L+1] uint8, labels [L+1] uint8) of permutation `perm` with `lookups` lookups."""
    slots = len(perm)
    inputs = np.concatenate(([slots + lookups], 1 + perm)).astype(np.uint8)
    labels = np.concatenate(([IGNORE], 1 + follow(perm, lookups + 1))).astype(np.uint8)
    return inputs, labels


def relabel(perm: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The same permutation with its slots renamed by sigma: q(sigma(i)) = sigma(p(i)).
    Renaming commutes with following pointers, so it is a label-preserving augmentation."""
    out = np.empty_like(perm)
    out[sigma] = sigma[perm]
    return out


def generate(slots: int, max_lookups: int, count: int, rng: np.random.Generator,
             taken: set[bytes]) -> list[tuple[np.ndarray, int]]:
    """count distinct (permutation, lookups) instances, lookups uniform in 1..max_lookups,
    inputs never in `taken` (which grows)."""
    check_sizes(slots, max_lookups)
    def one():
        perm = rng.permutation(slots)
        lookups = int(rng.integers(1, max_lookups + 1))
        return encode(perm, lookups)[0].tobytes(), (perm, lookups)

    return draw_distinct(one, count, taken, MAX_TRIES_FACTOR * max(count, 1), lambda kept, draws: (
        f"only {kept} of {count} distinct pointer instances with {slots} slots after {draws} "
        f"draws; raise data.grid or lower data.n_train/n_test"))
