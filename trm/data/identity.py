"""Is this built dataset the one the run asked for, byte for byte?

Two checks, both before training reads a single batch:

* content: the arrays on disk hash to `provenance.content_hash` in train/dataset.json (the
  hash build_dataset computed before writing). A flipped byte, a truncated or swapped .npy
  is refused. Hashing a paper-scale ARC build takes a while, so a verified result is cached in
  `<root>/.verified.json`, keyed by every array file's size and mtime (a file rewritten in
  any way changes its mtime); an unwritable dataset folder simply skips the cache.
* spec: a dataset of ours records the DataSpec it was built from; one built for another spec
  is refused (`path` may differ: the same raw files moved). A dataset without our spec (the
  official HRM/TRM builders) is accepted as external, and the run records its real shape,
  counts and a hash of its files instead of pretending the spec describes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from trm.config import SpecError
from trm.data import official_format as fmt
from trm.files import atomic_write_json

CACHE = ".verified.json"


class DatasetMismatch(SpecError):
    """A built dataset is corrupted, missing, or was built for another data spec (a SpecError:
    the command line reports it in one line, before anything is trained or submitted)."""


def _split_meta(root: Path, split: str) -> dict:
    path = Path(root) / split / "dataset.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetMismatch(f"{path}: missing; {root} is not a built dataset") from None
    except json.JSONDecodeError as e:
        raise DatasetMismatch(f"{path}: not valid JSON ({e})") from None


def _array_files(root: Path, meta: dict, split: str) -> list[Path]:
    sets = meta.get("sets") or [fmt.SET_NAME]
    files = [fmt.array_path(Path(root) / split, name, s) for s in sets for name in fmt.ARRAY_NAMES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DatasetMismatch(f"{root}: array files missing: {', '.join(missing)}")
    # The optional difficulty arrays too, where present: they are part of the content hash.
    return files + [fmt.array_path(Path(root) / split, name, s) for s in sets
                    for name in fmt.present_optional_arrays(Path(root) / split, s)]


def _stat_key(files: list[Path]) -> dict:
    out = {}
    for f in files:
        st = f.stat()
        out[str(f.relative_to(f.parent.parent))] = [st.st_size, st.st_mtime_ns]
    return out


def _cached(root: Path, key: dict) -> dict | None:
    try:
        obj = json.loads((Path(root) / CACHE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) and obj.get("files") == key else None


def _store(root: Path, key: dict, result: dict) -> None:
    try:
        atomic_write_json(Path(root) / CACHE, {"files": key, **result})
    except OSError:
        pass  # a read-only dataset (shared, official): verify again next time


def _ours_hash(root: Path) -> str:
    """fmt.content_hash over the arrays as build_dataset hashed them (memory-mapped)."""
    splits = {}
    for split in fmt.SPLITS:
        d = Path(root) / split
        splits[split] = {name: np.load(fmt.array_path(d, name), mmap_mode="r")
                         for name in fmt.ARRAY_NAMES + tuple(fmt.present_optional_arrays(d))}
    return fmt.content_hash(splits)


def _files_hash(files: list[Path]) -> str:
    """For external datasets: sha256 over the array files' bytes, in a fixed order."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: str(p.relative_to(p.parent.parent))):
        h.update(str(f.relative_to(f.parent.parent)).encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 24):
                h.update(chunk)
    return "sha256-files:" + h.hexdigest()


def verify_content(root: Path) -> dict:
    """Check the arrays against the recorded content hash (ours) or hash the files (external).
    Returns {"ours": bool, "content_hash": ...}; raises DatasetMismatch on a mismatch."""
    root = Path(root)
    metas = {s: _split_meta(root, s) for s in fmt.SPLITS}
    files = [f for s in fmt.SPLITS for f in _array_files(root, metas[s], s)]
    recorded = (metas["train"].get("provenance") or {}).get("content_hash")
    key = _stat_key(files)
    hit = _cached(root, key)
    if hit is not None and hit.get("recorded") == recorded:
        return {"ours": bool(recorded), "content_hash": hit["content_hash"]}
    if recorded:
        if (metas["test"].get("provenance") or {}).get("content_hash") != recorded:
            raise DatasetMismatch(f"{root}: train/ and test/ dataset.json record different content "
                                  "hashes (mixed from two builds?); rebuild it")
        try:
            found = _ours_hash(root)
        except (ValueError, OSError) as e:  # a truncated .npy fails to load at all
            raise DatasetMismatch(f"{root}: an array file cannot be read ({e}); the dataset is "
                                  "corrupted: delete the folder to rebuild it") from None
        if found != recorded:
            raise DatasetMismatch(
                f"{root}: arrays do not match the content hash in dataset.json (recorded "
                f"{recorded}, found {found}): the dataset was modified or corrupted; delete the "
                "folder to rebuild it")
    else:
        found = _files_hash(files)
    _store(root, key, {"recorded": recorded, "content_hash": found})
    return {"ours": bool(recorded), "content_hash": found}


def spec_difference(built: dict, want: dict) -> list[str]:
    """Keys (other than `path`) whose values differ between two DataSpec dicts."""
    return sorted(k for k in want if k != "path" and built.get(k) != want[k])


def check_spec(root: Path, data) -> dict | None:
    """Refuse a dataset of ours built from another DataSpec. Returns the provenance recorded
    in train/dataset.json, or None for an external dataset (no spec recorded)."""
    prov = _split_meta(root, "train").get("provenance") or {}
    built = prov.get("spec")
    if not built:
        return None
    want = dataclasses.asdict(data)
    diff = spec_difference(built, want)
    if diff:
        detail = ", ".join(f"{k}: built {built.get(k)!r}, run wants {want[k]!r}" for k in diff)
        raise DatasetMismatch(f"{root} was built for another data spec ({detail}); pass the "
                              "dataset built for this spec, or remove --data to build it")
    return prov


def shape(split_meta: dict, n_examples: int, n_puzzles: int, n_groups: int) -> dict:
    return {"seq_len": int(split_meta["seq_len"]), "vocab_size": int(split_meta["vocab_size"]),
            "groups": int(n_groups), "puzzles": int(n_puzzles), "examples": int(n_examples)}


def check_dataset(root: Path, data, splits: dict | None = None) -> dict:
    """Both checks; returns the provenance a run records. `splits`: loaded PuzzleSplits by
    name, for an external dataset's real shape (its dataset.json may lack fields)."""
    prov = check_spec(root, data)
    content = verify_content(root)
    if prov is not None:
        return prov
    # External: what the folder really holds, since the spec's data section does not say.
    ext = {"kind": "external", "source": "built dataset without trm provenance",
           "content_hash": content["content_hash"], "spec": None}
    own = _split_meta(root, "train").get("provenance") or {}
    if own:
        ext["recorded_provenance"] = own
    if splits:
        ext["shape"] = {name: shape(s.meta, s.num_examples, s.num_puzzles, s.num_groups)
                        for name, s in splits.items()}
    return ext


def require_built(data_dir: Path, flag: str = "--data") -> Path:
    """An explicitly named dataset folder must exist and be complete: a typo must not turn
    into a silent build of a new dataset somewhere else."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise DatasetMismatch(f"{flag} {data_dir}: no such directory")
    if not fmt.is_complete(data_dir):
        raise DatasetMismatch(f"{flag} {data_dir}: not a complete built dataset "
                              "(needs identifiers.json and {train,test}/dataset.json + all__*.npy)")
    return data_dir
