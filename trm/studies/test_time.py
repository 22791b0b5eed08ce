"""Studies of kind `test_time`: no training, only more compute at test time on runs that
other (training) studies trained. Planning only (no torch import: the workflow plans with it).

A test-time study file names its sources (which trained runs) and a grid of test-time
settings; every selected run is evaluated once, in one process, on every setting
(trm/train/test_time.py), and the results become one table and one figure per source study
plus a summary figure (trm/results/test_time.py).

    name: test_time
    kind: test_time
    description: ...
    question: ...
    source:                       # which trained runs; each entry one training study
      - study: depth_scaling
        cells: [{model: trm_mlp, task: sudoku}]   # optional: keep cells matching any pattern
                                                  # (keys: task, model, the study's knobs)
        seeds: [0, 1]             # optional: a subset of the study's seeds at the scale
    settings:
      max_examples: 200           # fixed seeded subsample of the test split (whole groups); 0 = all
      n_supervision_multipliers: [1, 2, 4, 8]   # x the run's evaluation N_sup, at its (n, T)
      depths:                     # (n, T) at test, at the run's evaluation N_sup
        - {n_latent_steps: 1, n_cycles: 1}
      trajectories: [1, 2, 4, 8]  # K noisy parallel trajectories, picked by the halting head
      noise_sigma: [0.1]          # std of the Gaussian noise added to the latents every step
      noise_seed: 0
      arc_votes: [1, 2]           # ARC only: augmented variants voted per test input
    scales:                       # per-scale replacement of `source` and/or `settings` keys
      smoke: {settings: {max_examples: 0}}

Every key is checked at planning (`load` here, then trm.studies.manifest.plan_test_time against the
source studies), before anything trains: a misspelt key, a source study that does not exist
or is itself a test-time study, a cell pattern or seed that selects nothing, and
out-of-range settings are refused with the file's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trm import config as C
from trm import rundir
from trm.studies.scales import scale_tweaks
from trm.studies.schema import (DEPTH_KEYS, SOURCE_KEYS, TEST_TIME_KEYS, TEST_TIME_KIND,
                                TEST_TIME_SCALE_KEYS, TEST_TIME_SETTINGS, check_keys)


def _err(path, msg: str) -> C.SpecError:
    return C.SpecError(f"{path}: {msg}")


def study_kind(data: dict) -> str:
    """'train' (the default) or 'test_time'."""
    return str(data.get("kind") or "train")


def _positive_ints(path, where: str, values: Any, allow_empty: bool = False,
                   minimum: int = 1) -> list[int]:
    if not isinstance(values, list) or (not values and not allow_empty):
        raise _err(path, f"'{where}' must be a {'' if allow_empty else 'non-empty '}list of "
                   f"integers >= {minimum}, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise _err(path, f"'{where}' entries must be integers >= {minimum}, got {v!r}")
    if len(set(values)) != len(values):
        raise _err(path, f"'{where}' lists a value twice: {values}")
    return sorted(values)


def check_settings(path, settings: Any, where: str = "settings") -> dict:
    """The settings block with defaults filled in; refuses unknown keys and bad values."""
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise _err(path, f"'{where}' must be a mapping, got {settings!r}")
    check_keys(settings, TEST_TIME_SETTINGS, path, f"{where}.")
    s = {**C.copy_tree(TEST_TIME_SETTINGS), **C.copy_tree(settings)}
    m = s["max_examples"]
    if isinstance(m, bool) or not isinstance(m, int) or m < 0:
        raise _err(path, f"'{where}.max_examples' must be an integer >= 0 (0 = the whole test "
                   f"split), got {m!r}")
    s["n_supervision_multipliers"] = _positive_ints(path, f"{where}.n_supervision_multipliers",
                                                    s["n_supervision_multipliers"])
    s["trajectories"] = _positive_ints(path, f"{where}.trajectories", s["trajectories"])
    s["arc_votes"] = _positive_ints(path, f"{where}.arc_votes", s["arc_votes"], allow_empty=True)
    sigmas = s["noise_sigma"]
    if not isinstance(sigmas, list):
        sigmas = [sigmas]
    if not sigmas:
        raise _err(path, f"'{where}.noise_sigma' must list at least one value")
    for v in sigmas:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
            raise _err(path, f"'{where}.noise_sigma' entries must be finite numbers >= 0, got {v!r}")
    if len(set(sigmas)) != len(sigmas):
        raise _err(path, f"'{where}.noise_sigma' lists a value twice: {sigmas}")
    s["noise_sigma"] = sorted(float(v) for v in sigmas)
    seed = s["noise_seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _err(path, f"'{where}.noise_seed' must be an integer >= 0, got {seed!r}")
    depths = s["depths"]
    if not isinstance(depths, list):
        raise _err(path, f"'{where}.depths' must be a list of {{n_latent_steps, n_cycles}}, got {depths!r}")
    pairs = []
    for i, d in enumerate(depths):
        if not isinstance(d, dict) or set(d) != DEPTH_KEYS:
            raise _err(path, f"'{where}.depths' entry {i} must be {{n_latent_steps: n, n_cycles: T}}, "
                       f"got {d!r}")
        for key in ("n_latent_steps", "n_cycles"):
            v = d[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise _err(path, f"'{where}.depths' entry {i}: {key} must be an integer >= 1, got {v!r}")
        pairs.append((d["n_latent_steps"], d["n_cycles"]))
    if len(set(pairs)) != len(pairs):
        raise _err(path, f"'{where}.depths' lists a depth twice")
    s["depths"] = [{"n_latent_steps": n, "n_cycles": t} for n, t in sorted(pairs)]
    return s


def _check_source(path, source: Any, where: str = "source") -> list[dict]:
    if not isinstance(source, list) or not source:
        raise _err(path, f"'{where}' must be a non-empty list of {{study, cells, seeds}}, got {source!r}")
    out = []
    for i, entry in enumerate(source):
        if not isinstance(entry, dict):
            raise _err(path, f"'{where}' entry {i} must be a mapping, got {entry!r}")
        check_keys(entry, SOURCE_KEYS, path, f"{where}[{i}].")
        study = entry.get("study")
        if not isinstance(study, str) or not C.SAFE_NAME.match(study):
            raise _err(path, f"'{where}[{i}].study' must name a study, got {study!r}")
        cells = entry.get("cells")
        if cells is not None and (not isinstance(cells, list) or not cells
                                  or not all(isinstance(c, dict) and c for c in cells)):
            raise _err(path, f"'{where}[{i}].cells' must be a non-empty list of non-empty mappings, got {cells!r}")
        seeds = entry.get("seeds")
        if seeds is not None:
            seeds = _positive_ints(path, f"{where}[{i}].seeds", seeds, minimum=0)
        out.append({"study": study, "cells": cells, "seeds": seeds})
    names = [e["study"] for e in out]
    if len(set(names)) != len(names):
        raise _err(path, f"'{where}' names a study twice: {names}")
    return out


def load(path: Path, data: dict | None = None) -> dict:
    """Read and check a test-time study file (its shape; trm.studies.manifest.plan_test_time checks it
    against the source studies at a scale)."""
    path = Path(path)
    data = C.load_yaml(path) if data is None else data
    check_keys(data, TEST_TIME_KEYS, path)
    if data.get("kind") != TEST_TIME_KIND:
        raise _err(path, f"'kind' must be '{TEST_TIME_KIND}', got {data.get('kind')!r}")
    if data.get("name") != path.stem:
        raise _err(path, f"'name' must equal the file name '{path.stem}', got {data.get('name')!r}")
    for key in ("description", "question"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _err(path, f"'{key}' must be a string")
    _check_source(path, data.get("source"))
    check_settings(path, data.get("settings"))
    for scale, tweak in scale_tweaks(path, data).items():
        check_keys(tweak, TEST_TIME_SCALE_KEYS, path, f"scales.{scale}.")
        if "source" in tweak:
            _check_source(path, tweak["source"], f"scales.{scale}.source")
        if "settings" in tweak:
            # Per-scale settings are merged key by key over the study's own settings.
            check_settings(path, {**(data.get("settings") or {}), **(tweak["settings"] or {})},
                           f"scales.{scale}.settings")
    return {**data, "_path": str(path)}


def at_scale(study: dict, scale: str) -> dict:
    """The study's source and settings at one scale (scales.<scale> applied)."""
    path = study["_path"]
    tweak = (study.get("scales") or {}).get(scale) or {}
    settings = {**(study.get("settings") or {}), **(tweak.get("settings") or {})}
    return {
        "source": _check_source(path, tweak.get("source", study.get("source"))),
        "settings": check_settings(path, settings),
    }


def result_path(run_dir: str, study_name: str) -> str:
    """Where one run's results of one test-time study go: inside the run directory, one file
    per test-time study (two studies with different grids never overwrite each other)."""
    return f"{run_dir}/{rundir.TEST_TIME}/{study_name}.json"


def figure_path(study_name: str, source_study: str) -> str:
    return f"results/figures/{study_name}/{source_study}.pdf"


def selected(studies: dict) -> dict:
    """The test-time studies among the workflow's selected studies."""
    return {name: s for name, s in studies.items() if s.get("kind") == TEST_TIME_KIND}


def records(study: dict) -> list[str]:
    """The record of every run the study names, once (two sources may share a run)."""
    dirs = dict.fromkeys(e["run_dir"] for e in study["source_runs"])
    return [result_path(d, study["name"]) for d in dirs]


def all_targets(studies: dict) -> list[str]:
    return [p for study in studies.values() for p in targets(study)]


def targets(study: dict) -> list[str]:
    """The files the default target needs beyond results/tables/<name>.csv and
    results/figures/<name>.pdf (the summary figure): one figure per source study."""
    return [figure_path(study["name"], s["study"]) for s in study["source"]]
