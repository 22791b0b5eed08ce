"""Seed planning: from finished pilot runs, how many seeds each contrast of a study needs to
detect a target effect with 80% power (the across-seed test of the study tables: paired
by seed where the pilot's cells share seeds, else Welch; alpha 0.05, two-sided). New seeds
are added to every cell of the study, so pairs stay pairs.

    python -m trm plan-seeds --study depth_scaling --effect 10 [--scale tiny]

The pilot's seed spreads stand in for the true ones; with few pilot seeds they are themselves
uncertain, so the plan is a guide (rerun it after the larger run).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from trm.results import stats
from trm.results.cells import CELL_KEYS
from trm.results.tables import ALPHA, comparisons_table


def plan_seeds(study: dict, runs: pd.DataFrame, effect: float, root: Path | None = None) -> pd.DataFrame:
    """One row per contrast: the pilot's seeds and spreads, its MDE, the seeds needed for
    `effect` (a fraction for accuracies), and whether the pilot already suffices."""
    tests = comparisons_table(study, runs, root)
    out = []
    for _, t in tests.iterrows():
        paired = t.get("seed_test") == "paired_t"
        if paired:
            need = stats.paired_seeds_needed(effect, t["sd_diff"], alpha=ALPHA, power=stats.POWER)
            have = int(t["seed_n"])
        else:
            need = stats.seeds_needed(effect, t["a_sd"], t["b_sd"], alpha=ALPHA, power=stats.POWER)
            have = int(min(t["a_n"], t["b_n"]))
        out.append({
            "task": t["task"], "a": t["a"], "b": t["b"], "test": "paired" if paired else "welch",
            "pilot_seeds": have, "a_sd": t["a_sd"], "b_sd": t["b_sd"],
            "sd_diff": t["sd_diff"] if paired else math.nan, "mde": t["mde"],
            "seeds_needed": need,
            "enough": need is not None and have >= need,
        })
    return pd.DataFrame(out, columns=["task", "a", "b", "test", "pilot_seeds", "a_sd", "b_sd",
                                      "sd_diff", "mde", "seeds_needed", "enough"])


def format_plan(plan: pd.DataFrame, effect: float, percent: bool = True) -> str:
    if plan.empty:
        return "no contrasts with finished runs: run a pilot first (e.g. snakemake --config studies=NAME)"
    k = 100 if percent else 1
    unit = " pp" if percent else ""

    def num(x):
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{k * x:.1f}"

    view = pd.DataFrame({
        "task": plan["task"], "A": plan["a"], "B": plan["b"],
        "pilot seeds": plan["pilot_seeds"],
        "test": plan["test"],
        "sd A / B": [f"{num(a)} / {num(b)}" for a, b in zip(plan["a_sd"], plan["b_sd"])],
        "sd of A − B": [num(d) for d in plan["sd_diff"]],
        f"MDE now{unit}": [num(x) for x in plan["mde"]],
        f"seeds for {k * effect:g}{unit}": [("> 10000" if n is None or n != n else str(int(n)))
                                           for n in plan["seeds_needed"]],
    })
    worst = pd.to_numeric(plan["seeds_needed"], errors="coerce")
    tail = (f"\nseeds per cell for every contrast to detect {k * effect:g}{unit} at 80% power: "
            + ("more than 10000" if worst.isna().any() else str(int(worst.max()))))
    return view.to_markdown(index=False) + tail


def plan_cost(runs: pd.DataFrame, seeds: int, cores: int = 2) -> dict:
    """What `seeds` seeds per cell would cost, from the pilot's own run times: per cell the
    median wall time of its finished runs (a cell with none costs the median of the others),
    times the seeds. Wall time on `cores` cores assumes one run per core and no overhead
    between runs, so it is a lower bound for a workflow on one machine."""
    ok = runs[runs["status"] == "ok"].copy()
    ok["wall_time_s"] = pd.to_numeric(ok.get("wall_time_s"), errors="coerce")
    cells = runs.drop_duplicates(CELL_KEYS)[CELL_KEYS]
    per_cell = ok.groupby(CELL_KEYS)["wall_time_s"].median()
    fallback = float(per_cell.median()) if len(per_cell) else math.nan
    cost = [float(per_cell.get(tuple(c), fallback)) for c in cells.itertuples(index=False)]
    core_s = seeds * sum(cost)
    return {"cells": len(cells), "seeds": seeds, "runs": len(cells) * seeds,
            "core_s": core_s, "wall_s": core_s / max(1, cores),
            "cells_without_timing": int(sum(1 for c in cells.itertuples(index=False)
                                            if tuple(c) not in per_cell.index))}


def format_cost(cost: dict, cores: int = 2) -> str:
    if not math.isfinite(cost["core_s"]):
        return "cost: unknown (no finished run reports its wall time)"
    guess = (f"; {cost['cells_without_timing']} cell(s) without a finished run costed at the "
             "median cell" if cost["cells_without_timing"] else "")
    return (f"cost at that many seeds: {cost['cells']} cells x {cost['seeds']} seeds = "
            f"{cost['runs']} runs, {cost['core_s'] / 3600:.2f} core-hours of training at the "
            f"pilot's per-run times (at least {cost['wall_s'] / 60:.1f} min wall on {cores} "
            f"cores){guess}")
