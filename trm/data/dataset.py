"""Read one split of a built dataset (ours, or one written by the HRM/TRM builders)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trm.data.official_format import (ARRAY_NAMES, DIFFICULTY_ARRAYS, SPLITS, array_path,
                                      present_optional_arrays)


@dataclass
class PuzzleSplit:
    """Examples [N, seq_len] grouped into puzzles (puzzle_indices, P+1 offsets) grouped into
    groups (group_indices, G+1 offsets over puzzles). Token arrays keep their stored dtype
    (uint8 for every official builder); index arrays are int32.

    Instance difficulty, where the builder recorded it (None otherwise: older datasets, ARC,
    the official builders): `difficulty` [N] int32 per example, `cell_difficulty` [N, seq_len]
    int16 per token (-1 = undefined), named by `difficulty_names`."""

    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    puzzle_indices: np.ndarray
    group_indices: np.ndarray
    meta: dict
    difficulty: np.ndarray | None = None
    cell_difficulty: np.ndarray | None = None

    @property
    def difficulty_names(self) -> dict:
        """{"example": name, "cell": name or None}; {} without recorded difficulty."""
        return dict(self.meta.get("difficulty") or {})

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_puzzles(self) -> int:
        return int(self.puzzle_identifiers.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.group_indices.shape[0] - 1)

    @property
    def seq_len(self) -> int:
        return int(self.inputs.shape[1])


def _load_set(split_dir: Path, set_name: str, mmap: bool) -> dict[str, np.ndarray]:
    mode = "r" if mmap else None
    out = {}
    for name in ARRAY_NAMES:
        path = array_path(split_dir, name, set_name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (not a built dataset split?)")
        out[name] = np.load(path, mmap_mode=mode)
    for name in present_optional_arrays(split_dir, set_name):
        out[name] = np.load(array_path(split_dir, name, set_name), mmap_mode=mode)
    return out


def _concat_sets(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Several official 'sets' in one split become one, with offsets shifted."""
    if len(parts) == 1:
        return parts[0]
    out = {k: [] for k in ARRAY_NAMES}
    # Difficulty is kept only when every set has it (offsets are per example: no shift).
    for name in DIFFICULTY_ARRAYS.values():
        if all(name in p for p in parts):
            out[name] = [p[name] for p in parts]
    ex_off = pz_off = 0
    for i, p in enumerate(parts):
        out["inputs"].append(p["inputs"])
        out["labels"].append(p["labels"])
        out["puzzle_identifiers"].append(p["puzzle_identifiers"])
        out["puzzle_indices"].append(p["puzzle_indices"][(0 if i == 0 else 1):] + ex_off)
        out["group_indices"].append(p["group_indices"][(0 if i == 0 else 1):] + pz_off)
        ex_off += len(p["inputs"])
        pz_off += len(p["puzzle_identifiers"])
    return {k: np.concatenate(v) for k, v in out.items()}


def _with_defaults(meta: dict, arrays: dict[str, np.ndarray]) -> dict:
    """Fill fields that older builders (HRM lacks total_puzzles; nobody else writes provenance)
    do not write, from the arrays themselves."""
    meta = dict(meta)
    n_pz = len(arrays["puzzle_identifiers"])
    meta.setdefault("pad_id", 0)
    if meta.get("ignore_label_id") is None:
        meta["ignore_label_id"] = 0
    meta.setdefault("blank_identifier_id", 0)
    meta.setdefault("seq_len", int(arrays["inputs"].shape[1]))
    if "vocab_size" not in meta:
        top = max(int(arrays["inputs"].max(initial=0)), int(arrays["labels"].max(initial=0)))
        meta["vocab_size"] = top + 1
    if "num_puzzle_identifiers" not in meta:
        meta["num_puzzle_identifiers"] = int(arrays["puzzle_identifiers"].max(initial=0)) + 1
    meta.setdefault("total_groups", int(len(arrays["group_indices"]) - 1))
    meta.setdefault("total_puzzles", int(n_pz))
    if "mean_puzzle_examples" not in meta:
        meta["mean_puzzle_examples"] = float(len(arrays["inputs"]) / n_pz) if n_pz else 0.0
    meta.setdefault("provenance", {"kind": "unknown"})
    return meta


def load_split(root: Path, split: str, *, mmap: bool = False) -> PuzzleSplit:
    """Load <root>/<split>. mmap=True memory-maps the arrays (multi-GB ARC builds)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    split_dir = Path(root) / split
    meta_path = split_dir / "dataset.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: missing; build the dataset first")
    meta = json.loads(meta_path.read_text())
    sets = meta.get("sets") or ["all"]
    arrays = _concat_sets([_load_set(split_dir, s, mmap) for s in sets])
    meta = _with_defaults(meta, arrays)
    if arrays["inputs"].shape[1] != meta["seq_len"]:
        raise ValueError(f"{split_dir}: inputs have length {arrays['inputs'].shape[1]}, "
                         f"dataset.json says seq_len {meta['seq_len']}")
    _check_difficulty(split_dir, meta, arrays)
    return PuzzleSplit(meta=meta, **{k: arrays[k] for k in ARRAY_NAMES},
                       difficulty=arrays.get(DIFFICULTY_ARRAYS["example"]),
                       cell_difficulty=arrays.get(DIFFICULTY_ARRAYS["cell"]))


def _check_difficulty(split_dir: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Declared difficulty arrays exist and fit the examples (a one-line error otherwise)."""
    declared = meta.get("difficulty") or {}
    n, shape = arrays["inputs"].shape[0], arrays["inputs"].shape
    for kind, name in DIFFICULTY_ARRAYS.items():
        arr = arrays.get(name)
        if declared.get(kind) and arr is None:
            raise FileNotFoundError(f"{split_dir}: dataset.json records {kind} difficulty "
                                    f"{declared[kind]!r} but {name} is missing")
        want = (n,) if kind == "example" else shape
        if arr is not None and arr.shape != want:
            raise ValueError(f"{split_dir}: {name} has shape {arr.shape}, the split needs {want}")
