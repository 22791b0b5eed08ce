"""A study's cells: every task x model x `grid` combination x `zip` row, plus the `include`
cells, minus those an `exclude` pattern matches. A cell is a flat dict {task, model, dotted
spec keys...}; seeds come later (trm/studies/manifest.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

from trm import config as C


def matches(cell: dict, pattern: dict) -> bool:
    return all(cell.get(k) == v for k, v in pattern.items())


def cells(study: dict) -> list[dict]:
    """The study's cells as flat dicts {task, model, dotted keys...} (no seeds yet)."""
    grid = study.get("grid") or {}
    zipped = study.get("zip") or {}
    grid_keys = list(grid)
    zip_rows = [dict(zip(zipped, vals)) for vals in zip(*zipped.values())] if zipped else [{}]
    out = []
    for task in study["tasks"]:
        for model in study.get("models") or []:
            for combo in itertools.product(*(grid[k] for k in grid_keys)):
                for zrow in zip_rows:
                    out.append({"task": task, "model": model, **dict(zip(grid_keys, combo)), **zrow})
        for inc in study.get("include") or []:
            inc = dict(inc)
            if "model" not in inc:
                raise C.SpecError(f"{Path(study['_path'])}: include cell {inc} needs a 'model'")
            if inc.get("task", task) == task:
                out.append({"task": task, **inc})
    excluded = [c for c in out if any(matches(c, ex) for ex in study.get("exclude") or [])]
    out = [c for c in out if c not in excluded]
    if not out:
        raise C.SpecError(f"{Path(study['_path'])}: the grid is empty after 'exclude'")
    return out
