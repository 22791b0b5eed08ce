"""Study YAML -> manifest of runs.

A study is one question asked of the model space: a factorial `grid` (and `zip`) of dotted
spec keys over some `models` and `tasks`, plus one-off `include` cells, minus `exclude`d
ones, times `seeds`. Each cell resolves to a RunSpec; its signature names its run directory,
so a cell shared by two studies trains once.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trm import config as C
from trm import test_time_study as TT
from trm.study_scales import scale_tweaks

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
FIGURE_KEYS = ("x", "y", "hue", "style", "col", "kind", "title")
VIEW_KEYS = ("x", "y", "hue", "style", "col")  # the keys that name a column
# trm/results/figures.py draws these (and reads all three vocabularies from here); "view" (the default) draws x/y/hue/style/col.
FIGURE_KINDS = ("view", "depth_scaling", "test_time_depth", "learning_curves", "compute")
# What a figure may name besides dotted spec keys: the columns of the runs table that
# trm/results/collect.py builds (a test keeps the two in step). Checked at planning, so that
# a typo fails before training instead of at the figure after it.
RUN_COLUMNS = frozenset({
    "study", "task", "model", "scale", "sig", "seed", "run_dir", "status", "note",
    "exact_accuracy", "cell_accuracy", "n_test", "steps", "params", "puzzle_embedding_params",
    "effective_depth", "forward_calls_per_step", "grad_calls_per_step", "train_flops",
    "test_flops_per_puzzle", "params_with_puzzle_embedding",
    "wall_time_s", "train_time_s", "peak_rss_mb", "peak_gpu_mb", "diverged_at_step",
    "n_supervision", "eval_n_supervision", "compute", "compute_unit", "data_kind",
    "data_source", "has_predictions", "eval_protocol", "device", "git_sha", "precision",
    "valid_optimal_accuracy",
})
# Task metrics that pass through from metrics.json under their own names (ARC pass@K).
EXTRA_METRIC = re.compile(r"^pass@\d+(_per_input)?$")
# learning_curves reads y from train.jsonl (trm/train/loop.py's records).
TRAIN_LOG_COLUMNS = frozenset({"loss", "lm_loss", "lr", "grad_norm", "halted_frac", "train_exact",
                               "mean_segments"})
CELL_KEYS = {"task", "model"}  # besides dotted spec keys
# Study, model, task and figure names end up in paths, rule wildcards and job names.
SAFE_NAME = C.SAFE_NAME


@dataclass
class Run:
    study: str
    task: str
    model: str
    seed: int
    spec: C.RunSpec
    knobs: dict = field(default_factory=dict)  # the dotted keys this study varies, with values

    # Computed once: the workflow asks for these several times per run while planning,
    # and a run's spec is not changed after expand() made it.
    @functools.cached_property
    def sig(self) -> str:
        return C.signature(self.spec)

    @functools.cached_property
    def data_sig(self) -> str:
        return C.data_signature(self.spec)

    @functools.cached_property
    def run_dir(self) -> str:
        return f"results/runs/{self.task}/{self.model}/{self.sig}/seed{self.seed}"

    @functools.cached_property
    def spec_json(self) -> str:
        """The resolved spec as JSON (what the train job validates and writes to spec.yaml)."""
        return json.dumps(C.to_dict(self.spec), sort_keys=True)

    @property
    def data_dir(self) -> str:
        return f"results/data/{self.task}/{self.data_sig}"


def _err(path: Path, msg: str) -> C.SpecError:
    return C.SpecError(f"{path}: {msg}")


def _check_names(path: Path, key: str, values: Any) -> None:
    for v in values or []:
        if not isinstance(v, str) or not SAFE_NAME.match(v):
            raise _err(path, f"'{key}' entry {v!r}: names use letters, digits, '_' or '-' only")


def _check_view(path: Path, where: str, view: Any) -> None:
    """One figure block (`figure:` or an `extra_figures` entry): its keys, its kind, and that
    every column it names exists, so a typo fails at planning, not after the training."""
    if not isinstance(view, dict):
        raise _err(path, f"'{where}' must be a mapping, got {view!r}")
    for key, value in view.items():
        if key not in FIGURE_KEYS:
            raise _err(path, f"unknown key '{where}.{key}' (valid: {', '.join(sorted(FIGURE_KEYS))})")
        if value is not None and not isinstance(value, str):
            raise _err(path, f"'{where}.{key}' must be a string, got {value!r}")
    if not view:
        return  # empty: the default view
    kind = view.get("kind") or "view"
    if kind not in FIGURE_KINDS:
        raise _err(path, f"'{where}.kind' is '{kind}', not one of {', '.join(FIGURE_KINDS)}")
    if kind == "view":
        for key in ("x", "y"):
            if not view.get(key):
                raise _err(path, f"'{where}.{key}' is required (kind view)")
    known = RUN_COLUMNS | C.knob_keys() | ({"cell"} if kind != "view" else set())
    for key in VIEW_KEYS:
        column = view.get(key)
        if column is None:
            continue
        fine = column in known or (key == "y" and EXTRA_METRIC.match(column)) or (
            key == "y" and kind == "learning_curves" and column in TRAIN_LOG_COLUMNS)
        if not fine:
            raise _err(path, f"'{where}.{key}': '{column}' is neither a column of the runs table "
                       "nor a run spec key")


def _check_body(path: Path, data: dict, where: str = "") -> None:
    """The keys and types of a study, or of one `scales.<scale>` tweak of it."""
    for key, value in data.items():
        if key not in STUDY_KEYS:
            raise _err(path, f"unknown key '{where}{key}' (valid: {', '.join(sorted(STUDY_KEYS))})")
        if value is not None and not isinstance(value, STUDY_KEYS[key]):
            raise _err(path, f"'{where}{key}' must be a {STUDY_KEYS[key].__name__}, got {value!r}")
    _check_names(path, f"{where}tasks", data.get("tasks"))
    _check_names(path, f"{where}models", data.get("models"))
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
        for key in cell:
            # A misspelt key here would silently exclude nothing.
            if key not in CELL_KEYS and key not in spec_keys:
                raise _err(path, f"{where}exclude entry {i}: unknown key '{key}'")
    if data.get("figure") is not None:
        _check_view(path, f"{where}figure", data["figure"])
    for fig, view in (data.get("extra_figures") or {}).items():
        if not isinstance(fig, str) or not SAFE_NAME.match(fig):
            raise _err(path, f"'{where}extra_figures' name {fig!r}: use letters, digits, '_' or '-'")
        _check_view(path, f"{where}extra_figures.{fig}", view)


def load_study(path: Path) -> dict:
    path = Path(path)
    data = C.load_yaml(path)
    if not SAFE_NAME.match(path.stem):
        raise _err(path, f"study name '{path.stem}': use letters, digits, '_' or '-' only")
    _check_body(path, data)
    if data.get("name") != path.stem:
        raise _err(path, f"'name' must equal the file name '{path.stem}', got {data.get('name')!r}")
    for key in ("tasks",):
        if not data.get(key):
            raise _err(path, f"'{key}' must be a non-empty list")
    if not data.get("models") and not data.get("include"):
        raise _err(path, "needs 'models' (grid over them) or 'include' cells")
    for scale, tweak in scale_tweaks(path, data).items():
        for key in ("name", "scales", "notes"):
            if key in tweak:
                raise _err(path, f"'scales.{scale}.{key}' cannot be changed per scale")
        _check_body(path, tweak, f"scales.{scale}.")
    data.setdefault("figure", {})
    data["_path"] = str(path)
    return data


def study_paths(config_dir: Path = C.CONFIG_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted((config_dir / "studies").glob("*.yaml"))}


def _matches(cell: dict, pattern: dict) -> bool:
    return all(cell.get(k) == v for k, v in pattern.items())


def _cells(study: dict) -> list[dict]:
    """The study's cells as flat dicts {task, model, dotted keys...} (no seeds yet)."""
    grid = study.get("grid") or {}
    zipped = study.get("zip") or {}
    grid_keys = list(grid)
    zip_rows = [dict(zip(zipped, vals)) for vals in zip(*zipped.values())] if zipped else [{}]
    cells = []
    for task in study["tasks"]:
        for model in study.get("models") or []:
            for combo in itertools.product(*(grid[k] for k in grid_keys)):
                for zrow in zip_rows:
                    cells.append({"task": task, "model": model, **dict(zip(grid_keys, combo)), **zrow})
        for inc in study.get("include") or []:
            inc = dict(inc)
            if "model" not in inc:
                raise _err(Path(study["_path"]), f"include cell {inc} needs a 'model'")
            if inc.get("task", task) == task:
                cells.append({"task": task, **inc})
    excluded = [c for c in cells if any(_matches(c, ex) for ex in study.get("exclude") or [])]
    cells = [c for c in cells if c not in excluded]
    if not cells:
        raise _err(Path(study["_path"]), "the grid is empty after 'exclude'")
    return cells


def topped_up_seeds(seeds: list[int], n_seeds: int | None) -> list[int]:
    """The study's seeds, then the smallest unused seeds up to `n_seeds` in all (a seed plan,
    see `plan-seeds --write`). Never fewer than the study's own: runs are added, not dropped."""
    seeds = list(seeds)
    extra, s = [], 0
    while n_seeds is not None and len(seeds) + len(extra) < n_seeds:
        if s not in seeds:
            extra.append(s)
        s += 1
    return seeds + extra


def expand(study: dict, scale: str, config_dir: Path = C.CONFIG_DIR, n_seeds: int | None = None) -> list[Run]:
    """All runs of a study at a scale, with specs resolved and validated. `n_seeds` (a seed
    plan) raises the number of seeds of every cell to at least that."""
    sc = C.load_scale(scale, config_dir)
    tweak = (study.get("scales") or {}).get(scale) or {}
    if tweak:
        study = {**study, **tweak}
    # Seeds: the study's own, else the scale's for the cell's task (task_seeds), else the
    # scale's; a seed plan tops each up.
    scale_seeds = sc.get("seeds") or [0]
    task_seeds = sc.get("task_seeds") or {}

    def seeds_of(task: str) -> list[int]:
        return topped_up_seeds(study.get("seeds") or task_seeds.get(task) or scale_seeds, n_seeds)

    where = f"{study['_path']}: "
    # Cells override the study's base key by key; both may be dotted or nested.
    base = C.expand_dotted(study.get("base") or {}, where + "base: ")
    runs = []
    seen = set()
    for cell in _cells(study):
        knobs = {k: v for k, v in cell.items() if k not in CELL_KEYS}
        overrides = C.deep_merge(base, C.expand_dotted(knobs, where + f"cell {cell}: "))
        first: Run | None = None
        for seed in seeds_of(cell["task"]):
            try:
                if first is None:
                    spec = C.resolve(cell["model"], cell["task"], scale, overrides, seed=seed,
                                     config_dir=config_dir)
                else:
                    # The seeds of a cell differ in train.seed alone: resolving once per cell
                    # instead of once per run is most of the planning time of a large study.
                    spec = C.with_seed(first.spec, seed)
            except C.SpecError as e:
                raise C.SpecError(f"{study['_path']}: cell {cell}: {e}") from e
            run = Run(study["name"], cell["task"], cell["model"], seed, spec, knobs)
            if first is None:
                first = run
            else:
                # Neither signature hashes the seed: the cell's first run has them already.
                run.sig, run.data_sig = first.sig, first.data_sig
            if (run.run_dir) in seen:
                continue
            seen.add(run.run_dir)
            runs.append(run)
    return runs


def default_studies(config_dir: Path = C.CONFIG_DIR) -> list[str]:
    """What `studies: default` selects: the `default_studies` list of configs/config.yaml (the
    workflow's settings file, so that the workflow and Python read one list)."""
    names = (C.load_yaml(config_dir / "config.yaml") or {}).get("default_studies")
    if not isinstance(names, list) or not names:
        raise C.SpecError(f"{config_dir / 'config.yaml'}: 'default_studies' must be a non-empty list")
    return [str(n) for n in names]


def select_studies(selection: Any, config_dir: Path = C.CONFIG_DIR) -> list[str]:
    """'all' = every study file; 'default' = default_studies(); else names (list or a,b)."""
    paths = study_paths(config_dir)
    if selection in (None, "all", ["all"]):
        return list(paths)
    if selection in ("default", ["default"]):
        selection = default_studies(config_dir)
    names = [selection] if isinstance(selection, str) else list(selection)
    names = [n.strip() for s in names for n in str(s).split(",") if n.strip()]
    # `studies=a,a` names one study: counting its runs (and seeds) twice would weigh it twice.
    names = list(dict.fromkeys(names))
    for n in names:
        if n not in paths:
            raise C.SpecError(f"config 'studies': no study named '{n}'; available: {', '.join(paths)}")
    return names


def check_seed_plan(plan: Any, config_dir: Path = C.CONFIG_DIR) -> dict:
    """The workflow's `study_seeds` setting (written by `plan-seeds --write`, read with
    `snakemake --configfile FILE`): {scale: {study: seeds per cell}}. Returns it checked."""
    if plan is None:
        return {}
    if not isinstance(plan, dict):
        raise C.SpecError(f"config 'study_seeds': must be a mapping {{scale: {{study: seeds}}}}, got {plan!r}")
    paths = study_paths(config_dir)
    for scale, per_study in plan.items():
        if not isinstance(per_study, dict):
            raise C.SpecError(f"config 'study_seeds.{scale}': must be a mapping {{study: seeds}}, got {per_study!r}")
        for name, n in per_study.items():
            where = f"config 'study_seeds.{scale}.{name}'"
            if name not in paths:
                raise C.SpecError(f"{where}: no study named '{name}'; available: {', '.join(paths)}")
            if "kind" in C.load_yaml(paths[name]):
                raise C.SpecError(f"{where}: a test-time study trains nothing; plan the seeds of its source studies")
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10_000:
                raise C.SpecError(f"{where}: seeds per cell must be an integer in [1, 10000], got {n!r}")
    return plan


def plan_test_time(study: dict, scale: str, config_dir: Path = C.CONFIG_DIR):
    """Expand a test-time study (loaded by trm.test_time_study.load) at a scale: (resolved
    study dict, runs to evaluate). Planned here, beside the training studies it draws on.

    The runs are the source studies' runs that the cells and seeds select, relabelled with
    this study's name (so that `studies=<this study>` alone trains them too) and listed once
    even when two sources share a cell. The resolved dict carries `source_runs`: one entry
    per (source study, run), the rows the table is built from."""
    path = study["_path"]
    resolved = TT.at_scale(study, scale)
    paths = study_paths(config_dir)
    runs, source_runs, seen = [], [], set()
    for i, src in enumerate(resolved["source"]):
        name = src["study"]
        if name not in paths:
            raise _err(path, f"source[{i}]: no study named '{name}' (available: {', '.join(paths)})")
        data = C.load_yaml(paths[name])
        if TT.study_kind(data) != "train":
            raise _err(path, f"source[{i}]: '{name}' is a {TT.study_kind(data)} study; sources must "
                       "be training studies")
        source_runs_all = expand(load_study(paths[name]), scale, config_dir)
        keep = source_runs_all
        if src["cells"]:
            knob_keys = {k for r in source_runs_all for k in r.knobs} | CELL_KEYS
            for j, pattern in enumerate(src["cells"]):
                unknown = [k for k in pattern if k not in knob_keys]
                if unknown:
                    raise _err(path, f"source[{i}].cells[{j}]: '{unknown[0]}' is not a key that "
                               f"'{name}' varies (keys: {', '.join(sorted(knob_keys))})")
                if not any(_matches(_cell_of(r), pattern) for r in source_runs_all):
                    raise _err(path, f"source[{i}].cells[{j}] {pattern} matches no cell of '{name}' "
                               f"at scale {scale}")
            keep = [r for r in keep if any(_matches(_cell_of(r), p) for p in src["cells"])]
        if src["seeds"] is not None:
            have = sorted({r.seed for r in source_runs_all})
            missing = [s for s in src["seeds"] if s not in have]
            if missing:
                raise _err(path, f"source[{i}].seeds: '{name}' has no seed {missing[0]} at scale "
                           f"{scale} (its seeds: {have})")
            keep = [r for r in keep if r.seed in src["seeds"]]
        for r in keep:
            source_runs.append({"source_study": name, "task": r.task, "model": r.model,
                                "sig": r.sig, "seed": r.seed, "run_dir": r.run_dir,
                                "knobs": dict(r.knobs)})
            if r.run_dir in seen:
                continue
            seen.add(r.run_dir)
            run = Run(study["name"], r.task, r.model, r.seed, r.spec, dict(r.knobs))
            run.sig, run.data_sig = r.sig, r.data_sig  # computed already; the spec is the same
            runs.append(run)
    out = {k: v for k, v in study.items() if k != "scales"}
    out.update(resolved)
    out["source_runs"] = source_runs
    # What the generic study tooling reads from every study (trm.results.tables): the tasks.
    out["tasks"] = sorted({r.task for r in runs})
    out.setdefault("figure", {})
    return out, runs


def _cell_of(run) -> dict:
    return {"task": run.task, "model": run.model, **run.knobs}


def manifest(selection: Any, scale: str, config_dir: Path = C.CONFIG_DIR,
             seed_plan: dict | None = None) -> tuple[dict, list[Run]]:
    """Load and expand the selected studies; every file is validated before anything runs.
    `seed_plan` ({scale: {study: n}}, see check_seed_plan) tops studies up to n seeds."""
    studies = {}
    runs = []
    planned = (check_seed_plan(seed_plan, config_dir).get(scale) or {})
    for name in select_studies(selection, config_dir):
        path = study_paths(config_dir)[name]
        if "kind" in C.load_yaml(path):
            # A test-time study trains nothing itself: it evaluates runs of training studies
            # (trm/test_time_study.py), returned under its own name so that it alone plans them.
            study, evaluated = plan_test_time(TT.load(path), scale, config_dir)
            studies[name] = study
            runs.extend(evaluated)
            continue
        study = load_study(path)
        studies[name] = study
        runs.extend(expand(study, scale, config_dir, planned.get(name)))
    return studies, runs


def manifest_rows(runs: list[Run]) -> list[dict]:
    rows = []
    for r in runs:
        rows.append(
            {
                "study": r.study,
                "task": r.task,
                "model": r.model,
                "sig": r.sig,
                "seed": r.seed,
                "run_dir": r.run_dir,
                "effective_depth": C.effective_depth(r.spec.model),
                **r.knobs,
            }
        )
    return rows


def dump_manifest(runs: list[Run], path: Path, scale: str) -> None:
    import pandas as pd

    df = pd.DataFrame(manifest_rows(runs))
    df.insert(3, "scale", scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)


def describe(runs: list[Run]) -> str:
    lines = [f"{len(runs)} runs, {len({r.run_dir for r in runs})} unique"]
    for r in runs:
        lines.append(f"  {r.study:18s} {r.run_dir}  {r.knobs}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    import sys

    st, rs = manifest(sys.argv[1] if len(sys.argv) > 1 else "all", sys.argv[2] if len(sys.argv) > 2 else "tiny")
    print(describe(rs))
    print(yaml.safe_dump(C.to_dict(rs[0].spec)))
