"""Study YAML -> manifest of runs.

A study is one question asked of the model space: a factorial `grid` (and `zip`) of dotted
spec keys over some `models` and `tasks`, plus one-off `include` cells, minus `exclude`d
ones, times `seeds`. Each cell resolves to a RunSpec; its signature names its run directory,
so a cell shared by two studies trains once. A study of kind test_time trains nothing: its
runs are those of its source studies (plan_test_time).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trm import config as C
from trm.studies import test_time
from trm.studies.grid import cells, matches
from trm.studies.scales import scale_tweaks
from trm.studies.schema import CELL_KEYS, FIXED_KEYS, SAFE_NAME, SEEDS_PER_CELL, check_body


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


def load_study(path: Path) -> dict:
    path = Path(path)
    data = C.load_yaml(path)
    if not SAFE_NAME.match(path.stem):
        raise _err(path, f"study name '{path.stem}': use letters, digits, '_' or '-' only")
    check_body(path, data)
    if data.get("name") != path.stem:
        raise _err(path, f"'name' must equal the file name '{path.stem}', got {data.get('name')!r}")
    for key in ("tasks",):
        if not data.get(key):
            raise _err(path, f"'{key}' must be a non-empty list")
    if not data.get("models") and not data.get("include"):
        raise _err(path, "needs 'models' (grid over them) or 'include' cells")
    for scale, tweak in scale_tweaks(path, data).items():
        for key in FIXED_KEYS:
            if key in tweak:
                raise _err(path, f"'scales.{scale}.{key}' cannot be changed per scale")
        check_body(path, tweak, f"scales.{scale}.")
    data.setdefault("figure", {})
    data["_path"] = str(path)
    return data


def study_paths(config_dir: Path = C.CONFIG_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted((config_dir / "studies").glob("*.yaml"))}


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
    for cell in cells(study):
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
            low, high = SEEDS_PER_CELL
            if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
                raise C.SpecError(f"{where}: seeds per cell must be an integer in [{low}, {high}], got {n!r}")
    return plan


def plan_test_time(study: dict, scale: str, config_dir: Path = C.CONFIG_DIR):
    """Expand a test-time study (loaded by trm.studies.test_time.load) at a scale: (resolved
    study dict, runs to evaluate). Planned here, beside the training studies it draws on.

    The runs are the source studies' runs that the cells and seeds select, relabelled with
    this study's name (so that `studies=<this study>` alone trains them too) and listed once
    even when two sources share a cell. The resolved dict carries `source_runs`: one entry
    per (source study, run), the rows the table is built from."""
    path = study["_path"]
    resolved = test_time.at_scale(study, scale)
    paths = study_paths(config_dir)
    runs, source_runs, seen = [], [], set()
    for i, src in enumerate(resolved["source"]):
        name = src["study"]
        if name not in paths:
            raise _err(path, f"source[{i}]: no study named '{name}' (available: {', '.join(paths)})")
        data = C.load_yaml(paths[name])
        if test_time.study_kind(data) != "train":
            raise _err(path, f"source[{i}]: '{name}' is a {test_time.study_kind(data)} study; sources must "
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
                if not any(matches(_cell_of(r), pattern) for r in source_runs_all):
                    raise _err(path, f"source[{i}].cells[{j}] {pattern} matches no cell of '{name}' "
                               f"at scale {scale}")
            keep = [r for r in keep if any(matches(_cell_of(r), p) for p in src["cells"])]
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
            # (trm/studies/test_time.py), returned under its own name so that it alone plans them.
            study, evaluated = plan_test_time(test_time.load(path), scale, config_dir)
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
