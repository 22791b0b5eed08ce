"""Static facts of a configured model: parameter counts, effective depth, network calls.

The model is built on the `meta` device, so a 27M-parameter (or ARC's 490M-row puzzle
table) description costs no memory.
"""

from __future__ import annotations

import torch

from trm import config as C


def task_shapes(data: C.DataSpec) -> dict:
    """vocab, sequence length and puzzle-identifier count of the built dataset, without
    building it (the official token maps)."""
    if data.task == "sudoku":
        return {"vocab_size": data.grid + 2, "seq_len": data.grid**2, "num_puzzle_ids": 1}
    if data.task == "maze":
        return {"vocab_size": 6, "seq_len": data.grid**2, "num_puzzle_ids": 1}
    if data.task == "reach":
        from trm.data.reach import VOCAB_SIZE

        return {"vocab_size": VOCAB_SIZE, "seq_len": data.grid**2, "num_puzzle_ids": 1}
    if data.task == "pointer":
        from trm.data.pointer import vocab_size

        # A marker token ahead of the data.grid slots.
        return {"vocab_size": vocab_size(data.grid, data.max_lookups), "seq_len": data.grid + 1,
                "num_puzzle_ids": 1}
    # ARC: one identifier per augmented puzzle (original + n_aug variants) plus <blank> (id 0);
    # the sequence is the data.grid x data.grid canvas (900 officially).
    return {"vocab_size": 12, "seq_len": data.grid**2, "num_puzzle_ids": data.n_train * (data.n_aug + 1) + 1}


def describe(spec: C.RunSpec) -> dict:
    from trm.model import build_model

    shapes = task_shapes(spec.data)
    with torch.device("meta"):
        model = build_model(spec.model, shapes["vocab_size"], shapes["seq_len"], shapes["num_puzzle_ids"])
    return {
        "model": spec.name,
        "task": spec.data.task,
        **model.param_counts(),
        "effective_depth": C.effective_depth(spec.model),
        **model.call_counts(),
        **shapes,
        "sig": C.signature(spec),
    }
