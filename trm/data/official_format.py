"""The HRM/TRM built-dataset format, written atomically.

    <out>/identifiers.json                  list: puzzle identifier -> name, index 0 = "<blank>"
    <out>/{train,test}/dataset.json         metadata (official fields + "provenance")
    <out>/{train,test}/all__inputs.npy      [examples, seq_len] tokens
    <out>/{train,test}/all__labels.npy      [examples, seq_len] tokens
    <out>/{train,test}/all__puzzle_identifiers.npy  [puzzles] int32
    <out>/{train,test}/all__puzzle_indices.npy      [puzzles + 1] int32: example offsets
    <out>/{train,test}/all__group_indices.npy       [groups + 1] int32: puzzle offsets
  optional (instance difficulty; absent in older datasets, ARC and the official builders):
    <out>/{train,test}/all__difficulty.npy          [examples] int32 (e.g. shortest-path moves)
    <out>/{train,test}/all__cell_difficulty.npy     [examples, seq_len] int16, -1 = undefined
    and dataset.json "difficulty": {"example": <name>, "cell": <name> or null}

Group (an original puzzle) > puzzles (its augmented variants) > examples (input/label pairs).
Tokens are stored as uint8 like the official builders (every vocab here is < 256).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
SET_NAME = "all"
ARRAY_NAMES = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
# Written only when a builder records difficulty; hashed only when present, so a dataset
# without them keeps the content hash it always had.
DIFFICULTY_ARRAYS = {"example": "difficulty", "cell": "cell_difficulty"}
OPTIONAL_ARRAY_NAMES = tuple(DIFFICULTY_ARRAYS.values())
OFFICIAL_FIELDS = (
    "pad_id",
    "ignore_label_id",
    "blank_identifier_id",
    "vocab_size",
    "seq_len",
    "num_puzzle_identifiers",
    "total_groups",
    "mean_puzzle_examples",
    "total_puzzles",
    "sets",
)


def array_path(split_dir: Path, name: str, set_name: str = SET_NAME) -> Path:
    return Path(split_dir) / f"{set_name}__{name}.npy"


@dataclass
class SplitArrays:
    """One split in memory, before writing."""

    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    puzzle_indices: np.ndarray
    group_indices: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    def check(self) -> None:
        """Index arrays are consistent offsets; fails loudly before anything is written."""
        n_ex, n_pz = len(self.inputs), len(self.puzzle_identifiers)
        assert self.inputs.shape == self.labels.shape, "inputs/labels shape mismatch"
        assert self.puzzle_indices[0] == 0 and self.puzzle_indices[-1] == n_ex
        assert len(self.puzzle_indices) == n_pz + 1
        assert self.group_indices[0] == 0 and self.group_indices[-1] == n_pz
        assert np.all(np.diff(self.puzzle_indices) > 0), "every puzzle needs an example"
        assert np.all(np.diff(self.group_indices) > 0), "every group needs a puzzle"


@dataclass
class SplitBuilder:
    """Accumulates groups of puzzles of examples into official arrays."""

    seq_len: int
    inputs: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    identifiers: list = field(default_factory=list)
    puzzle_indices: list = field(default_factory=lambda: [0])
    group_indices: list = field(default_factory=lambda: [0])

    def add_group(self, puzzles) -> None:
        """puzzles: iterable of (inputs [E, L], labels [E, L], identifier)."""
        for inp, lab, ident in puzzles:
            inp = np.asarray(inp).reshape(-1, self.seq_len)
            lab = np.asarray(lab).reshape(-1, self.seq_len)
            self.inputs.append(inp)
            self.labels.append(lab)
            self.identifiers.append(int(ident))
            self.puzzle_indices.append(self.puzzle_indices[-1] + len(inp))
        self.group_indices.append(len(self.identifiers))

    def add_group_of_single_examples(self, inputs: np.ndarray, labels: np.ndarray,
                                     identifier: int = 0) -> None:
        """A group of P puzzles of one example each, given as [P, seq_len] arrays (fast path)."""
        inputs = np.asarray(inputs).reshape(-1, self.seq_len)
        self.inputs.append(inputs)
        self.labels.append(np.asarray(labels).reshape(-1, self.seq_len))
        self.identifiers += [int(identifier)] * len(inputs)
        start = self.puzzle_indices[-1]
        self.puzzle_indices += range(start + 1, start + len(inputs) + 1)
        self.group_indices.append(len(self.identifiers))

    def finish(self) -> SplitArrays:
        empty = np.zeros((0, self.seq_len), np.uint8)
        out = SplitArrays(
            inputs=np.concatenate(self.inputs).astype(np.uint8) if self.inputs else empty,
            labels=np.concatenate(self.labels).astype(np.uint8) if self.labels else empty,
            puzzle_identifiers=np.array(self.identifiers, np.int32),
            puzzle_indices=np.array(self.puzzle_indices, np.int32),
            group_indices=np.array(self.group_indices, np.int32),
        )
        out.check()
        return out


def split_metadata(arrays: SplitArrays, *, vocab_size: int, num_puzzle_identifiers: int,
                   pad_id: int = 0, ignore_label_id: int = 0, blank_identifier_id: int = 0) -> dict:
    n_pz = len(arrays.puzzle_identifiers)
    return {
        "pad_id": pad_id,
        "ignore_label_id": ignore_label_id,
        "blank_identifier_id": blank_identifier_id,
        "vocab_size": int(vocab_size),
        "seq_len": int(arrays.inputs.shape[1]),
        "num_puzzle_identifiers": int(num_puzzle_identifiers),
        "total_groups": int(len(arrays.group_indices) - 1),
        "mean_puzzle_examples": float(len(arrays.inputs) / n_pz) if n_pz else 0.0,
        "total_puzzles": int(n_pz),
        "sets": [SET_NAME],
    }


def content_hash(splits: dict[str, dict[str, np.ndarray]]) -> str:
    """sha256 over every array of every split (name, dtype, shape, bytes) in a fixed order;
    the optional difficulty arrays follow the required ones where a split has them."""
    h = hashlib.sha256()
    for split in sorted(splits):
        names = ARRAY_NAMES + tuple(n for n in OPTIONAL_ARRAY_NAMES
                                    if splits[split].get(n) is not None)
        for name in names:
            arr = np.ascontiguousarray(splits[split][name])
            h.update(f"{split}/{name}/{arr.dtype.str}/{arr.shape}".encode())
            # Chunked so multi-GB memmaps are hashed without a second copy in memory.
            flat = arr.reshape(-1).view(np.uint8)
            for start in range(0, flat.size, 1 << 26):
                h.update(flat[start : start + (1 << 26)].data)
    return "sha256:" + h.hexdigest()


def counts(arrays: SplitArrays) -> dict:
    return {
        "groups": int(len(arrays.group_indices) - 1),
        "puzzles": int(len(arrays.puzzle_identifiers)),
        "examples": int(len(arrays.inputs)),
    }


def is_complete(out_dir: Path) -> bool:
    out_dir = Path(out_dir)
    if not (out_dir / "identifiers.json").is_file():
        return False
    for split in SPLITS:
        d = out_dir / split
        if not (d / "dataset.json").is_file():
            return False
        if not all(array_path(d, name).is_file() for name in ARRAY_NAMES):
            return False
    return True


def temp_dir_next_to(out_dir: Path) -> Path:
    """A fresh hidden sibling of out_dir, on the same filesystem so the final rename is atomic.
    Named after this host and process, so that a later build can tell a dead one's leftovers."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_dead_temp_dirs(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _host() -> str:
    import socket

    return "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum() or c in "_") or "host"


def clean_dead_temp_dirs(out_dir: Path) -> list[Path]:
    """Remove temp dirs of builds of out_dir that were killed: made on this host by a process
    that no longer exists (another host's, or a live process's, are left alone)."""
    removed = []
    prefix = f".{Path(out_dir).name}.tmp-{_host()}-"
    for d in Path(out_dir).parent.glob(f"{prefix}*"):
        try:
            pid = int(d.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running: its build
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, someone else's
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def write_arrays(split_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    split_dir.mkdir(parents=True, exist_ok=True)
    for name in ARRAY_NAMES:
        np.save(array_path(split_dir, name), arrays[name])
    for name in OPTIONAL_ARRAY_NAMES:
        if arrays.get(name) is not None:
            np.save(array_path(split_dir, name), arrays[name])


def present_optional_arrays(split_dir: Path, set_name: str = SET_NAME) -> list[str]:
    """The optional difficulty arrays a split directory holds."""
    return [n for n in OPTIONAL_ARRAY_NAMES if array_path(split_dir, n, set_name).is_file()]


def write_json(path: Path, obj, indent: int | None = 1) -> None:
    Path(path).write_text(json.dumps(obj, indent=indent))


def publish(tmp: Path, out_dir: Path) -> bool:
    """Rename the finished temp dir to out_dir. False (and tmp removed) if another process
    published a complete dataset there first."""
    try:
        os.rename(tmp, out_dir)
        return True
    except OSError:
        if is_complete(out_dir):
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise


@dataclass
class BuiltData:
    """What a task builder hands to trm.data.build for writing."""

    train: SplitArrays
    test: SplitArrays
    vocab_size: int
    identifiers: list[str]  # puzzle identifier -> name; index 0 is "<blank>"
    provenance: dict  # kind, source, version, generator, generator_version (+ task details)
    json_files: dict[str, object] = field(default_factory=dict)  # extra <out>/<name> JSON files
    raw_rows: dict[str, list] = field(default_factory=dict)  # split -> RawRows: raw/<split>.csv
    # Instance difficulty (optional): {split: {"example": int32 [examples], "cell": int16
    # [examples, seq_len], -1 = undefined (optional)}}; augmented variants carry their group's
    # value. difficulty_names: {"example": name, "cell": name} ("cell" only with cell arrays).
    difficulty: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    difficulty_names: dict = field(default_factory=dict)

    def split_arrays(self, split: str) -> dict[str, np.ndarray]:
        """A split's required arrays plus its difficulty arrays under their on-disk names."""
        out = getattr(self, split).arrays()
        for kind, arr in (self.difficulty.get(split) or {}).items():
            if arr is not None:
                out[DIFFICULTY_ARRAYS[kind]] = arr
        return out

    def difficulty_meta(self) -> dict | None:
        """dataset.json's "difficulty" entry, or None when no difficulty is recorded."""
        if not self.difficulty:
            return None
        return {"example": self.difficulty_names["example"],
                "cell": self.difficulty_names.get("cell")}

    def check_difficulty(self) -> None:
        """Shapes, dtypes and names agree with the splits; fails before anything is written."""
        if not self.difficulty:
            return
        assert set(self.difficulty) == set(SPLITS), "difficulty needs both splits"
        assert set(self.difficulty_names) <= {"example", "cell"}, self.difficulty_names
        assert self.difficulty_names.get("example"), "difficulty_names needs 'example'"
        has_cell = {s: self.difficulty[s].get("cell") is not None for s in SPLITS}
        assert len(set(has_cell.values())) == 1, "cell difficulty in one split only"
        assert has_cell["train"] == bool(self.difficulty_names.get("cell")), \
            "difficulty_names['cell'] must name the cell arrays (and only when they exist)"
        for split in SPLITS:
            arrays, d = getattr(self, split), self.difficulty[split]
            assert set(d) <= {"example", "cell"}, sorted(d)
            ex = d["example"]
            assert ex.dtype == np.int32 and ex.shape == (len(arrays.inputs),), \
                f"{split} example difficulty: {ex.dtype} {ex.shape}"
            if d.get("cell") is not None:
                cell = d["cell"]
                assert cell.dtype == np.int16 and cell.shape == arrays.inputs.shape, \
                    f"{split} cell difficulty: {cell.dtype} {cell.shape}"
