"""What a study file may say, each vocabulary defined once, and the checks derived from it.

A training study is a mapping of STUDY_KEYS; its `figure:` and `extra_figures` entries use
FIGURE_KEYS and name columns of the runs table (RUN_COLUMNS) or dotted spec keys; its
`exclude` cells use CELL_KEYS and spec keys. A study of kind test_time uses TEST_TIME_KEYS,
its `source` entries SOURCE_KEYS and its `settings` TEST_TIME_SETTINGS. Every check here
fails with one line naming the file and the key (trm.keys.check_keys).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Collection

from trm import config as C
from trm import keys

# Study files refuse unknown keys with the spec's error class.
check_keys = functools.partial(keys.check_keys, error=C.SpecError)

# --------------------------------------------------------------------------------------
# Training studies
# --------------------------------------------------------------------------------------

STUDY_KEYS = {
    "name": str,
    "description": str,
    "question": str,
    "tasks": list,
    "models": list,
    "seeds": list,
    "base": dict,
    "grid": dict,
    "zip": dict,
    "include": list,
    "exclude": list,
    "figure": dict,
    "scales": dict,  # per-scale tweaks of this study, e.g. {paper: {grid: {...}}}
    "notes": dict,  # per-scale text for the tables: what this scale can and cannot resolve
    "extra_figures": dict,  # name -> another figure view, drawn to figures/<study>/<name>.pdf
}
# What a `scales.<scale>` tweak may not change, whatever the study's kind.
FIXED_KEYS = ("name", "scales", "notes")
CELL_KEYS = {"task", "model"}  # besides dotted spec keys
# Study, model, task and figure names end up in paths, rule wildcards and job names.
SAFE_NAME = C.SAFE_NAME
# A seed plan (the workflow's `study_seeds`: {scale: {study: n}}) asks for n seeds per cell
# in this range. workflow/schemas/config.schema.yaml says the same to Snakemake, as it says
# SAFE_NAME for `default_studies` (tests/test_seed_plan.py keeps them equal).
SEEDS_PER_CELL = (1, 10_000)

# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

FIGURE_KEYS = ("x", "y", "hue", "style", "col", "kind", "title")
VIEW_KEYS = ("x", "y", "hue", "style", "col")  # the keys that name a column
# trm/results/figures/ draws these (its registry KINDS); "view" (the default) draws x/y/hue/style/col.
FIGURE_KINDS = ("view", "depth_scaling", "test_time_depth", "learning_curves", "compute")

# --------------------------------------------------------------------------------------
# The runs table (results/tables/runs.csv, built by trm.results.collect in this column
# order). Defined here, below the results, because planning checks a figure's columns
# against it, so that a typo fails before training instead of at the figure after it.
# --------------------------------------------------------------------------------------

RUN_ID_COLUMNS = ("study", "task", "model", "scale", "sig", "seed", "run_dir")  # every manifest row's
RUN_STATUS_COLUMNS = ("status", "note")
# Scalar fields copied from metrics.json as they are (the timings from run_info.json).
METRIC_COLUMNS = (
    "exact_accuracy",
    "cell_accuracy",
    "n_test",
    "steps",
    "params",
    "puzzle_embedding_params",
    "effective_depth",
    "forward_calls_per_step",
    "grad_calls_per_step",
    "train_flops",
    "test_flops_per_puzzle",
    "wall_time_s",
    "train_time_s",
    "peak_rss_mb",
    "peak_gpu_mb",
    "diverged_at_step",
)
# Computed by collect from a run's metrics and spec. "params_with_puzzle_embedding" is the
# parameter total with the puzzle-embedding table ("params" excludes it, as the papers do).
COMPUTED_COLUMNS = (
    "params_with_puzzle_embedding",
    "n_supervision",
    "eval_n_supervision",
    "compute",
    "compute_unit",
    "data_kind",
    "data_source",
    "has_predictions",
    "eval_protocol",
)
RUN_INFO_COLUMNS = ("device", "git_sha", "precision")  # where and how the run trained
# Fields of metrics.json that collect passes through under their own names: a failed run's
# error (null otherwise); task metrics, the maze's and ARC's pass@K (a pattern: K is the task's).
PASSED_THROUGH_COLUMNS = ("error",)
TASK_METRIC_COLUMNS = ("valid_optimal_accuracy",)
EXTRA_METRIC = re.compile(r"^pass@\d+(_per_input)?$")
# Last, as JSON text; no figure draws them.
RUN_JSON_COLUMNS = ("per_step_json", "test_time_json", "spec_json")
# What a figure may name besides dotted spec keys (and EXTRA_METRIC as y).
RUN_COLUMNS = frozenset(RUN_ID_COLUMNS + RUN_STATUS_COLUMNS + METRIC_COLUMNS + COMPUTED_COLUMNS
                        + RUN_INFO_COLUMNS + PASSED_THROUGH_COLUMNS + TASK_METRIC_COLUMNS)
# learning_curves reads y from train.jsonl (trm/train/loop.py's records).
TRAIN_LOG_COLUMNS = frozenset({"loss", "lm_loss", "lr", "grad_norm", "halted_frac", "train_exact",
                               "mean_segments"})

# --------------------------------------------------------------------------------------
# Studies of kind test_time (trm/studies/test_time.py)
# --------------------------------------------------------------------------------------

TEST_TIME_KIND = "test_time"
TEST_TIME_KEYS = {"name", "kind", "description", "question", "source", "settings", "scales", "notes"}
TEST_TIME_SCALE_KEYS = ("source", "settings")  # what changes per scale
SOURCE_KEYS = {"study", "cells", "seeds"}
# The settings and their defaults (a study may leave any of them out).
TEST_TIME_SETTINGS: dict[str, Any] = {
    "max_examples": 200,
    "n_supervision_multipliers": [1, 2, 4, 8],
    "depths": [],
    "trajectories": [1],
    "noise_sigma": [0.0],
    "noise_seed": 0,
    "arc_votes": [],
}
DEPTH_KEYS = {"n_latent_steps", "n_cycles"}  # one entry of settings.depths


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


def _err(path: Path | str, msg: str) -> C.SpecError:
    return C.SpecError(f"{path}: {msg}" if str(path) else msg)


def check_names(path: Path, key: str, values: Any) -> None:
    for v in values or []:
        if not isinstance(v, str) or not SAFE_NAME.match(v):
            raise _err(path, f"'{key}' entry {v!r}: names use letters, digits, '_' or '-' only")


def check_view(view: Any, where: str = "figure", path: Path | str = "",
               columns: Collection[str] | None = None) -> dict:
    """One figure block (`figure:` or an `extra_figures` entry) of the file `path`: its keys,
    its kind, and that every column it names exists: one of `columns` (the runs table's, when
    drawing; RUN_COLUMNS when planning, so that a typo fails before the training) or a run
    spec key. Returns the view with every FIGURE_KEY and its kind; {} for the empty (default) view."""
    if not isinstance(view, dict):
        raise _err(path, f"'{where}' must be a mapping, got {view!r}")
    check_keys(view, FIGURE_KEYS, path, f"{where}.")
    for key, value in view.items():
        if value is not None and not isinstance(value, str):
            raise _err(path, f"'{where}.{key}' must be a string, got {value!r}")
    if not view:
        return {}
    kind = view.get("kind") or "view"
    if kind not in FIGURE_KINDS:
        raise _err(path, f"'{where}.kind' is '{kind}', not one of {', '.join(FIGURE_KINDS)}")
    if kind == "view":
        for key in ("x", "y"):
            if not view.get(key):
                raise _err(path, f"'{where}.{key}' is required (kind view)")
    known = set(RUN_COLUMNS if columns is None else columns) | C.knob_keys()
    if kind != "view":
        known.add("cell")
    for key in VIEW_KEYS:
        column = view.get(key)
        if column is None:
            continue
        fine = column in known or (key == "y" and EXTRA_METRIC.match(column)) or (
            key == "y" and kind == "learning_curves" and column in TRAIN_LOG_COLUMNS)
        if not fine:
            raise _err(path, f"{where}.{key}: '{column}' is neither a column of the runs table "
                       "nor a run spec key")
    return {**{k: view.get(k) for k in FIGURE_KEYS}, "kind": kind}


def check_body(path: Path, data: dict, where: str = "") -> None:
    """The keys and types of a training study, or of one `scales.<scale>` tweak of it."""
    check_keys(data, STUDY_KEYS, path, where)
    for key, value in data.items():
        if value is not None and not isinstance(value, STUDY_KEYS[key]):
            raise _err(path, f"'{where}{key}' must be a {STUDY_KEYS[key].__name__}, got {value!r}")
    check_names(path, f"{where}tasks", data.get("tasks"))
    check_names(path, f"{where}models", data.get("models"))
    if data.get("seeds"):  # an empty list falls back to the scale's seeds
        C.check_seed_list(data["seeds"], f"{path}: '{where}seeds' ")
    for key, values in (data.get("grid") or {}).items():
        if not isinstance(values, list) or not values:
            raise _err(path, f"{where}grid axis '{key}' must be a non-empty list, got {values!r}")
    zipped = data.get("zip") or {}
    lengths = {len(v) if isinstance(v, list) else -1 for v in zipped.values()}
    if zipped and (len(lengths) != 1 or -1 in lengths or 0 in lengths):
        raise _err(path, f"'{where}zip' axes must be non-empty lists of equal length")
    spec_keys = C.knob_keys()
    for i, cell in enumerate(data.get("include") or []):
        if not isinstance(cell, dict):
            raise _err(path, f"{where}include entry {i} must be a mapping, got {cell!r}")
    for i, cell in enumerate(data.get("exclude") or []):
        if not isinstance(cell, dict):
            raise _err(path, f"{where}exclude entry {i} must be a mapping, got {cell!r}")
        # A misspelt key here would silently exclude nothing.
        check_keys(cell, CELL_KEYS | spec_keys, path, f"{where}exclude[{i}].",
                   valid="task, model or a dotted run spec key")
    if data.get("figure") is not None:
        check_view(data["figure"], f"{where}figure", path)
    for fig, view in (data.get("extra_figures") or {}).items():
        if not isinstance(fig, str) or not SAFE_NAME.match(fig):
            raise _err(path, f"'{where}extra_figures' name {fig!r}: use letters, digits, '_' or '-'")
        check_view(view, f"{where}extra_figures.{fig}", path)
