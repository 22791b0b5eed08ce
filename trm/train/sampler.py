"""Batches as the official loader draws them, with a position that can be saved.

An "epoch" takes one random member (augmented variant) of every group, all of that puzzle's
examples, shuffles them, and cuts full batches (the last partial batch is dropped). Each
epoch's order is a pure function of (seed, epoch), so (epoch, cursor) is the whole state.
"""

from __future__ import annotations

import numpy as np

from trm.data.dataset import PuzzleSplit


class GroupSampler:
    def __init__(self, split: PuzzleSplit, batch_size: int, seed: int):
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.cursor = 0
        self._order = self._epoch_order(0)
        if len(self._order) < batch_size:
            raise ValueError(
                f"train split has {len(self._order)} examples per epoch, fewer than "
                f"train.global_batch_size={batch_size}"
            )

    def examples_per_epoch(self) -> int:
        return len(self._order)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        s = self.split
        rng = np.random.Generator(np.random.Philox(key=self.seed + epoch))
        groups = s.group_indices
        n_groups = len(groups) - 1
        sizes = groups[1:] - groups[:-1]
        puzzles = groups[:-1] + (rng.random(n_groups) * sizes).astype(np.int64)
        starts, ends = s.puzzle_indices[puzzles], s.puzzle_indices[puzzles + 1]
        examples = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])
        return examples[rng.permutation(len(examples))]

    def next_batch(self) -> np.ndarray:
        if self.cursor + self.batch_size > len(self._order):
            self.epoch += 1
            self.cursor = 0
            self._order = self._epoch_order(self.epoch)
        idx = self._order[self.cursor : self.cursor + self.batch_size]
        self.cursor += self.batch_size
        return idx

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.cursor = int(state["cursor"])
        self._order = self._epoch_order(self.epoch)
