"""Seed planning: from finished pilot runs, how many seeds each contrast of a study needs to
detect a target effect with 80% power (the across-seed test of the study tables: paired
by seed where the pilot's cells share seeds, else Welch; alpha 0.05, two-sided). New seeds
are added to every cell of the study, so pairs stay pairs.

    python -m trm plan-seeds --study depth_scaling --effect 10 [--scale tiny]

The pilot's seed spreads stand in for the true ones; with few pilot seeds they are themselves
uncertain, so the plan is a guide (rerun it after the larger run).

A contrast read in two parts (a cell with seeds on both sides of the scale's success
threshold, trm/results/twopart.py) is planned on its success counts too: the seeds per cell
for Boschloo's exact test to detect the pilot's observed success rates with 80% power. The
power is exact (every pair of success counts, each Boschloo p-value computed) up to
EXACT_MAX_SEEDS seeds per cell; beyond that, the normal approximation for two proportions.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import pandas as pd
from scipy import stats as sps

from trm.results import stats, twopart
from trm.results.cells import CELL_KEYS
from trm.results.tables import ALPHA, comparisons_table


EXACT_MAX_SEEDS = 25  # above, Boschloo's power costs too many exact tests: normal approximation
MASS_FLOOR = 1e-7  # pairs of success counts less likely than this are left out of the exact power


@lru_cache(maxsize=100_000)
def _boschloo_p(k_a: int, k_b: int, n: int) -> float:
    return twopart.boschloo(k_a, n, k_b, n)


def boschloo_power(p_a: float, p_b: float, n: int, alpha: float = ALPHA) -> float:
    """Exact power of the two-sided Boschloo test at level alpha with n seeds per cell whose
    true success rates are p_a and p_b: the probability of the success counts it rejects."""
    pmf_a = sps.binom.pmf(range(n + 1), n, p_a)
    pmf_b = sps.binom.pmf(range(n + 1), n, p_b)
    power = 0.0
    for k_a in range(n + 1):
        for k_b in range(n + 1):
            mass = pmf_a[k_a] * pmf_b[k_b]
            if mass < MASS_FLOOR:
                continue
            # The two-sided test is symmetric in the cells and in success / failure.
            key = min((k_a, k_b), (k_b, k_a), (n - k_a, n - k_b), (n - k_b, n - k_a))
            if _boschloo_p(*key, n) <= alpha:
                power += mass
    return float(power)


def normal_rate_seeds(p_a: float, p_b: float, alpha: float = ALPHA, power: float = stats.POWER) -> int | None:
    """Seeds per cell for two success rates, from the normal approximation (pooled Z test,
    no continuity correction); None when the rates are equal."""
    if p_a == p_b:
        return None
    pooled = (p_a + p_b) / 2
    z_a, z_b = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    root = z_a * math.sqrt(2 * pooled * (1 - pooled)) + z_b * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return max(2, math.ceil((root / abs(p_a - p_b)) ** 2))


def boschloo_seeds_needed(p_a: float, p_b: float, alpha: float = ALPHA,
                          power: float = stats.POWER) -> tuple[int | None, str]:
    """(seeds per cell, method) for Boschloo's test to detect success rates p_a against p_b
    with the given power: "exact" (smallest n from a little under the normal approximation
    up to EXACT_MAX_SEEDS whose exact power reaches it) or "normal approximation"."""
    if not (math.isfinite(p_a) and math.isfinite(p_b)) or p_a == p_b:
        return None, ""
    guess = normal_rate_seeds(p_a, p_b, alpha, power)
    if guess <= EXACT_MAX_SEEDS:
        for n in range(max(2, guess - 2), EXACT_MAX_SEEDS + 1):
            if boschloo_power(p_a, p_b, n, alpha) >= power:
                # The approximation can overshoot: step down while fewer seeds still do.
                while n > 2 and boschloo_power(p_a, p_b, n - 1, alpha) >= power:
                    n -= 1
                return n, "exact"
    return guess, "normal approximation"


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
            **_rate_plan(t),
        })
    return pd.DataFrame(out, columns=["task", "a", "b", "test", "pilot_seeds", "a_sd", "b_sd",
                                      "sd_diff", "mde", "seeds_needed", "enough", "reading",
                                      "a_success_rate", "b_success_rate", "rate_seeds_needed",
                                      "rate_method"])


def _rate_plan(t: pd.Series) -> dict:
    """For a two-part contrast, the seeds Boschloo needs for the pilot's success rates."""
    reading = t.get("reading") if isinstance(t.get("reading"), str) else twopart.UNIMODAL
    out = {"reading": reading, "a_success_rate": t.get("a_success_rate", math.nan),
           "b_success_rate": t.get("b_success_rate", math.nan), "rate_seeds_needed": None,
           "rate_method": ""}
    if reading == twopart.TWO_PART:
        out["rate_seeds_needed"], out["rate_method"] = boschloo_seeds_needed(
            float(out["a_success_rate"]), float(out["b_success_rate"]))
    return out


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
    two_part = plan["reading"] == twopart.TWO_PART if "reading" in plan else pd.Series(False, plan.index)
    if two_part.any():
        view["success rates A / B"] = [f"{100 * a:.0f}% / {100 * b:.0f}%" if tp else "—" for a, b, tp
                                       in zip(plan["a_success_rate"], plan["b_success_rate"], two_part)]
        view["seeds for these rates (Boschloo)"] = [
            ("no difference" if n is None or n != n else f"{int(n)} ({m})") if tp else "—"
            for n, m, tp in zip(plan["rate_seeds_needed"], plan["rate_method"], two_part)]
    worst = pd.to_numeric(plan["seeds_needed"], errors="coerce")
    tail = (f"\nseeds per cell for every contrast to detect {k * effect:g}{unit} at 80% power: "
            + ("more than 10000" if worst.isna().any() else str(int(worst.max()))))
    if two_part.any():
        tail += ("\ncontrasts with a cell on its transition are planned on their success counts too "
                 "(Boschloo, two-sided, 80% power at the pilot's success rates; exact power up to "
                 f"{EXACT_MAX_SEEDS} seeds, else the normal approximation); the t-test's seeds above "
                 "measure the mixture of failed and successful seeds, not the effect")
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
