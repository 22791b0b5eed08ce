"""Build a dataset from a DataSpec into the official format, atomically.

    meta = build_dataset(data, out_dir)

The dataset is assembled in a hidden sibling temp dir and renamed to out_dir when complete, so a
half-written dataset is never visible. An existing complete out_dir is returned as is.
Command line: `main(argv)` (also `python -m trm.data build --task T --scale S --out DIR`).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from trm.config import DataSpec
from trm.data import official_format as fmt
from trm.data.raw_csv import write_rows

log = logging.getLogger("trm.data")

SHARED_FIELDS = ("pad_id", "ignore_label_id", "blank_identifier_id", "vocab_size", "seq_len",
                 "num_puzzle_identifiers")


def _builder(task: str):
    # Imported lazily: an ARC build should not pay for compiling Sudoku kernels and vice versa.
    if task == "sudoku":
        from trm.data.sudoku_build import build_sudoku

        return build_sudoku
    if task == "maze":
        from trm.data.maze_build import build_maze

        return build_maze
    if task == "reach":
        from trm.data.reach_build import build_reach

        return build_reach
    if task == "pointer":
        from trm.data.pointer_build import build_pointer

        return build_pointer
    if task in ("arc1", "arc2"):
        from trm.data.arc_build import build_arc

        return build_arc
    raise ValueError(f"unknown data.task {task!r}")


def read_meta(out_dir: Path) -> dict:
    """The dict build_dataset returns, read back from a built directory."""
    out_dir = Path(out_dir)
    splits = {s: json.loads((out_dir / s / "dataset.json").read_text()) for s in fmt.SPLITS}
    meta = {"root": str(out_dir), "train": splits["train"], "test": splits["test"]}
    for key in SHARED_FIELDS:
        if key in splits["train"]:
            meta[key] = splits["train"][key]
    meta["provenance"] = splits["train"].get("provenance", {"kind": "unknown"})
    return meta


def _save_split(split_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    split_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        target = fmt.array_path(split_dir, name)
        if isinstance(arr, np.memmap) and Path(arr.filename).resolve() == target.resolve():
            arr.flush()  # written in place by the builder (multi-GB ARC arrays)
            continue
        np.save(target, arr)


def _provenance(data: DataSpec, built: fmt.BuiltData, digest: str) -> dict:
    p = dict(built.provenance)
    head = {k: p.pop(k, None) for k in ("kind", "source", "version", "generator",
                                          "generator_version")}
    return head | {
        "seed": data.seed,
        "counts": {"train": fmt.counts(built.train), "test": fmt.counts(built.test)},
        "content_hash": digest,
        "spec": dataclasses.asdict(data),  # no timestamp: equal specs give identical files
    } | p


def build_dataset(data: DataSpec, out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    if fmt.is_complete(out_dir):
        meta = read_meta(out_dir)
        _check_same_spec(meta, data, out_dir)
        log.info("dataset already built at %s", out_dir)
        return meta
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists but is not a complete dataset; remove it first")
    _refuse_built_as_raw(data)
    started = time.time()
    tmp = fmt.temp_dir_next_to(out_dir)
    try:
        built = _build_into(data, tmp)
        built.check_difficulty()
        digest = fmt.content_hash({s: built.split_arrays(s) for s in fmt.SPLITS})
        prov = _provenance(data, built, digest)
        n_ids = len(built.identifiers)
        difficulty = built.difficulty_meta()
        for split, arrays in (("train", built.train), ("test", built.test)):
            _save_split(tmp / split, built.split_arrays(split))
            meta = fmt.split_metadata(arrays, vocab_size=built.vocab_size,
                                      num_puzzle_identifiers=n_ids)
            if difficulty is not None:  # absent, not null, without it: old dataset.json bytes
                meta["difficulty"] = difficulty
            fmt.write_json(tmp / split / "dataset.json", meta | {"provenance": prov})
        # Compact: ARC writes ~1M identifiers and the raw evaluation tasks.
        fmt.write_json(tmp / "identifiers.json", built.identifiers, indent=None)
        for name, obj in built.json_files.items():
            fmt.write_json(tmp / name, obj, indent=None)
        for split, rows in built.raw_rows.items():
            write_rows(tmp / "raw" / f"{split}.csv", rows)
        del built  # release memmaps before the rename
        if not fmt.publish(tmp, out_dir):
            log.info("another process built %s first; using it", out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built %s (%s) in %.1fs", out_dir, data.task, time.time() - started)
    return read_meta(out_dir)


def _refuse_built_as_raw(data: DataSpec) -> None:
    """data.path names raw files (CSVs, ARC JSON). A built dataset there would otherwise be
    skipped as "no train.csv" and a generator run instead: refuse, and say where it goes."""
    import os

    from trm.config import SpecError

    for root in (Path(p) for p in str(data.path or "").split(os.pathsep) if p):
        if (root / "train" / "dataset.json").is_file():
            raise SpecError(f"data.path={root} is a built dataset (train/dataset.json), not raw "
                            "files; pass it to the run with --data instead")


def _check_same_spec(meta: dict, data: DataSpec, out_dir: Path) -> None:
    """A dataset of ours built from another spec is an error (stale cache), not a silent reuse.
    `path` may differ (the same raw data moved); foreign datasets carry no spec and pass."""
    built = meta["provenance"].get("spec")
    if not built:
        return
    want = dataclasses.asdict(data)
    diff = sorted(k for k in want if k != "path" and built.get(k) != want[k])
    if diff:
        raise ValueError(f"{out_dir} was built from a different DataSpec ({', '.join(diff)} "
                         f"differ: {[(k, built.get(k), want[k]) for k in diff]}); remove it or "
                         "choose another out_dir")


def _build_into(data: DataSpec, work_dir: Path) -> fmt.BuiltData:
    builder = _builder(data.task)
    if "work_dir" in inspect.signature(builder).parameters:  # writes big arrays in place
        return builder(data, work_dir=work_dir)
    return builder(data)


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def data_spec_for(task: str, scale: str | None, overrides: dict | None = None) -> DataSpec:
    """The `data` section a run of (task, scale) would get: defaults < tasks/<task>.yaml <
    scales/<scale>.yaml (base, then tasks.<task>) < overrides. Model layers are left out:
    datasets are shared across models."""
    from trm import config as C

    merged: dict = {}
    layers = [C._layer(task, "tasks", C.CONFIG_DIR)[0]]
    if scale:
        sc = C.load_scale(scale)
        layers.append(C.expand_dotted(sc.get("base", {}) or {}))
        layers.append(C.expand_dotted((sc.get("tasks", {}) or {}).get(task, {}) or {}))
    if overrides:
        layers.append(C.expand_dotted(overrides))
    for layer in layers:
        merged = C.deep_merge(merged, layer.get("data", {}) or {})
    merged.setdefault("task", task)
    return C.from_dict(DataSpec, merged, prefix="data.")


def main(argv: list[str] | None = None) -> int:
    """`data build --task T [--scale S] [--out DIR] [data.key=value ...]`; returns an exit code."""
    ap = argparse.ArgumentParser(prog="trm data build", description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True, help="sudoku | maze | arc1 | arc2 (configs/tasks)")
    ap.add_argument("--scale", default="tiny", help="configs/scales/<scale>.yaml (default tiny)")
    ap.add_argument("--out", type=Path, help="output dataset directory (default "
                    "results/data/<task>/<data sig>: where the workflow and `trm train` look)")
    ap.add_argument("overrides", nargs="*", help="data.key=value (or key=value) overrides")
    args = ap.parse_args(argv)
    from trm import config as C

    over: dict = {}
    for text in args.overrides:
        key, value = C.parse_override(text)
        over[key if key.startswith("data.") else f"data.{key}"] = value
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = data_spec_for(args.task, args.scale, over)
        C.check_ranges(C.RunSpec(data=data))  # e.g. a negative data.n_aug, too many blanks
    except C.SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from trm.data.location import default_data_dir

    meta = build_dataset(data, args.out or default_data_dir(C.RunSpec(data=data)))
    prov = meta["provenance"]
    print(json.dumps({"root": meta["root"], "kind": prov.get("kind"), "source": prov.get("source"),
                      "counts": prov.get("counts"), "content_hash": prov.get("content_hash")},
                     indent=1))
    return 0
