"""Power analysis: the minimum detectable effect of the across-seed Welch test, the seed
planner, and the MDE column of the study tables, on constructed data."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from trm.results import stats
from trm.results.collect import collect_runs
from trm.results.example_runs import write_example_study
from trm.results.power import format_plan, plan_seeds
from trm.results.tables import comparisons_table


def test_mde_matches_textbook_values():
    # Two-sided two-sample t-test, alpha 0.05, power 0.8, equal n and sd 1: the classic
    # 64 per group for d = 0.5, and d = 2.02 for 5 per group (G*Power gives 2.0244).
    assert stats.min_detectable_effect(1.0, 1.0, 64, 64) == pytest.approx(0.4997, abs=2e-3)
    assert stats.min_detectable_effect(1.0, 1.0, 5, 5) == pytest.approx(2.0244, abs=5e-3)
    assert stats.seeds_needed(0.5, 1.0, 1.0) == 64
    # Scale: the MDE is in the metric's units and linear in the spread.
    assert stats.min_detectable_effect(0.05, 0.05, 5, 5) == pytest.approx(0.05 * 2.0244, abs=5e-4)


def test_mde_has_the_power_it_claims_by_simulation():
    rng = np.random.default_rng(0)
    sd_a, sd_b, n = 0.04, 0.07, 6
    mde = stats.min_detectable_effect(sd_a, sd_b, n, n)
    sims = 4000
    a = rng.normal(0.0, sd_a, (sims, n))
    b = rng.normal(mde, sd_b, (sims, n))
    p = sps.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    assert abs((p < 0.05).mean() - 0.80) < 0.03  # the Welch test rejects ~80% of the time
    # Half the effect is detected far less often: the MDE is not a loose bound.
    b_half = rng.normal(mde / 2, sd_b, (sims, n))
    assert (sps.ttest_ind(a, b_half, axis=1, equal_var=False).pvalue < 0.05).mean() < 0.4


def test_more_seeds_or_less_spread_detect_smaller_effects():
    assert stats.min_detectable_effect(0.05, 0.05, 10, 10) < stats.min_detectable_effect(0.05, 0.05, 5, 5)
    assert stats.min_detectable_effect(0.02, 0.05, 5, 5) < stats.min_detectable_effect(0.05, 0.05, 5, 5)
    assert math.isnan(stats.min_detectable_effect(0.05, 0.05, 1, 5))  # one seed: no spread known
    assert stats.min_detectable_effect(0.0, 0.0, 5, 5) == 0.0
    assert stats.seeds_needed(0.10, 0.05, 0.05) == 6
    assert stats.seeds_needed(0.001, 0.3, 0.3, max_seeds=100) is None


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study, manifest = write_example_study(root, n_test=100)
    return root, study, collect_runs(manifest, root)


def test_tables_state_each_contrasts_mde(example):
    root, study, runs = example
    tests = comparisons_table(study, runs, root)
    assert {"a_sd", "b_sd", "mde"} <= set(tests.columns)
    for _, t in tests.iterrows():
        if t["a_n"] >= 2 and t["b_n"] >= 2:
            want = stats.min_detectable_effect(t["a_sd"], t["b_sd"], t["a_n"], t["b_n"])
            assert t["mde"] == pytest.approx(want)
            assert t["mde"] > 0
        else:
            assert math.isnan(t["mde"])


def test_seed_planner_from_pilot_runs(example):
    root, study, runs = example
    plan = plan_seeds(study, runs, effect=0.10, root=root)
    assert len(plan) == len(comparisons_table(study, runs, root))
    for _, r in plan.iterrows():
        if r["pilot_seeds"] >= 2 and math.isfinite(r["a_sd"]) and math.isfinite(r["b_sd"]):
            n = r["seeds_needed"]
            assert stats.welch_power(0.10, r["a_sd"], r["b_sd"], n, n) >= 0.8
            if n > 2:
                assert stats.welch_power(0.10, r["a_sd"], r["b_sd"], n - 1, n - 1) < 0.8
            assert r["enough"] == (r["pilot_seeds"] >= n)
    text = format_plan(plan, 0.10)
    assert "seeds for 10 pp" in text and "seeds per cell for every contrast" in text


def test_plan_cost_is_seeds_times_the_pilot_cell_times(example):
    from trm.results.power import format_cost, plan_cost

    root, study, runs = example
    ok = runs[runs["status"] == "ok"]
    per_cell = ok.groupby(["task", "model", "sig"])["wall_time_s"].median()
    cells = runs.drop_duplicates(["task", "model", "sig"])
    cost = plan_cost(runs, seeds=12, cores=4)
    assert cost["runs"] == 12 * len(cells)
    missing = len(cells) - len(per_cell)
    want = 12 * (per_cell.sum() + missing * per_cell.median())
    assert cost["core_s"] == pytest.approx(want)
    assert cost["wall_s"] == pytest.approx(want / 4)
    assert cost["cells_without_timing"] == missing
    assert f"{12 * len(cells)} runs" in format_cost(cost, 4)
