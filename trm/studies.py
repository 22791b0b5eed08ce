"""Study YAML -> manifest of runs.

A study is one question asked of the model space: a factorial `grid` (and `zip`) of dotted
spec keys over some `models` and `tasks`, plus one-off `include` cells, minus `exclude`d
ones, times `seeds`. Each cell resolves to a RunSpec; its signature names its run directory,
so a cell shared by two studies trains once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trm import config as C

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
FIGURE_KEYS = {"x", "y", "hue", "style", "col", "kind", "title"}
CELL_KEYS = {"task", "model"}  # besides dotted spec keys


@dataclass
class Run:
    study: str
    task: str
    model: str
    seed: int
    spec: C.RunSpec
    knobs: dict = field(default_factory=dict)  # the dotted keys this study varies, with values

    @property
    def sig(self) -> str:
        return C.signature(self.spec)

    @property
    def data_sig(self) -> str:
        return C.data_signature(self.spec)

    @property
    def run_dir(self) -> str:
        return f"results/runs/{self.task}/{self.model}/{self.sig}/seed{self.seed}"

    @property
    def data_dir(self) -> str:
        return f"results/data/{self.task}/{self.data_sig}"


def _err(path: Path, msg: str) -> C.SpecError:
    return C.SpecError(f"{path}: {msg}")


def load_study(path: Path) -> dict:
    path = Path(path)
    data = C.load_yaml(path)
    for key, value in data.items():
        if key not in STUDY_KEYS:
            raise _err(path, f"unknown key '{key}' (valid: {', '.join(sorted(STUDY_KEYS))})")
        if value is not None and not isinstance(value, STUDY_KEYS[key]):
            raise _err(path, f"'{key}' must be a {STUDY_KEYS[key].__name__}, got {value!r}")
    if data.get("name") != path.stem:
        raise _err(path, f"'name' must equal the file name '{path.stem}', got {data.get('name')!r}")
    for key in ("tasks",):
        if not data.get(key):
            raise _err(path, f"'{key}' must be a non-empty list")
    if not data.get("models") and not data.get("include"):
        raise _err(path, "needs 'models' (grid over them) or 'include' cells")
    for key, values in (data.get("grid") or {}).items():
        if not isinstance(values, list) or not values:
            raise _err(path, f"grid axis '{key}' must be a non-empty list, got {values!r}")
    zipped = data.get("zip") or {}
    lengths = {len(v) if isinstance(v, list) else -1 for v in zipped.values()}
    if zipped and (len(lengths) != 1 or -1 in lengths or 0 in lengths):
        raise _err(path, "'zip' axes must be non-empty lists of equal length")
    for key in (data.get("figure") or {}):
        if key not in FIGURE_KEYS:
            raise _err(path, f"unknown key 'figure.{key}' (valid: {', '.join(sorted(FIGURE_KEYS))})")
    for fig, view in (data.get("extra_figures") or {}).items():
        if not isinstance(view, dict):
            raise _err(path, f"'extra_figures.{fig}' must be a mapping")
        for key in view:
            if key not in FIGURE_KEYS:
                raise _err(path, f"unknown key 'extra_figures.{fig}.{key}' (valid: {', '.join(sorted(FIGURE_KEYS))})")
    for i, cell in enumerate((data.get("include") or []) + (data.get("exclude") or [])):
        if not isinstance(cell, dict):
            raise _err(path, f"include/exclude entry {i} must be a mapping, got {cell!r}")
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


def expand(study: dict, scale: str, config_dir: Path = C.CONFIG_DIR) -> list[Run]:
    """All runs of a study at a scale, with specs resolved and validated."""
    sc = C.load_scale(scale, config_dir)
    tweak = (study.get("scales") or {}).get(scale) or {}
    if tweak:
        study = {**study, **tweak}
    seeds = study.get("seeds") or sc.get("seeds") or [0]
    base = study.get("base") or {}
    runs = []
    seen = set()
    for cell in _cells(study):
        overrides = {**base, **{k: v for k, v in cell.items() if k not in CELL_KEYS}}
        knobs = {k: v for k, v in cell.items() if k not in CELL_KEYS}
        for seed in seeds:
            try:
                spec = C.resolve(cell["model"], cell["task"], scale, overrides, seed=seed, config_dir=config_dir)
            except C.SpecError as e:
                raise C.SpecError(f"{study['_path']}: cell {cell}: {e}") from e
            run = Run(study["name"], cell["task"], cell["model"], seed, spec, knobs)
            if (run.run_dir) in seen:
                continue
            seen.add(run.run_dir)
            runs.append(run)
    return runs


def select_studies(selection: Any, config_dir: Path = C.CONFIG_DIR) -> list[str]:
    paths = study_paths(config_dir)
    if selection in (None, "all", ["all"]):
        return list(paths)
    names = [selection] if isinstance(selection, str) else list(selection)
    names = [n for s in names for n in str(s).split(",") if n]
    for n in names:
        if n not in paths:
            raise C.SpecError(f"config 'studies': no study named '{n}'; available: {', '.join(paths)}")
    return names


def manifest(selection: Any, scale: str, config_dir: Path = C.CONFIG_DIR) -> tuple[dict, list[Run]]:
    """Load and expand the selected studies; every file is validated before anything runs."""
    studies = {}
    runs = []
    for name in select_studies(selection, config_dir):
        study = load_study(study_paths(config_dir)[name])
        studies[name] = study
        runs.extend(expand(study, scale, config_dir))
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
