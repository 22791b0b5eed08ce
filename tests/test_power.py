"""Power analysis: the minimum detectable effect of the across-seed tests (paired by seed,
and Welch), the seed planner, and the MDE column of the study tables, on constructed data."""

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


def test_paired_mde_matches_textbook_values():
    # One-sample (paired) t-test, alpha 0.05, power 0.8: 34 pairs detect dz = 0.5 (G*Power:
    # 34), and a paired MDE is in the units of the differences' spread.
    assert stats.paired_seeds_needed(0.5, 1.0) == 34
    assert stats.paired_min_detectable_effect(1.0, 34) == pytest.approx(0.495, abs=3e-3)
    assert stats.paired_min_detectable_effect(0.05, 5) == pytest.approx(
        0.05 * stats.paired_min_detectable_effect(1.0, 5))
    assert math.isnan(stats.paired_min_detectable_effect(0.05, 1))
    assert stats.paired_min_detectable_effect(0.0, 5) == 0.0


def test_paired_mde_has_the_power_it_claims_by_simulation():
    # Correlated seeds (a shared seed effect), as when cells share data order and init.
    rng = np.random.default_rng(1)
    n, sims = 5, 4000
    seed_effect = rng.normal(0, 0.08, (sims, n))
    a = 0.6 + seed_effect + rng.normal(0, 0.03, (sims, n))
    b_noise = rng.normal(0, 0.03, (sims, n))
    sd_diff = math.sqrt(2) * 0.03
    mde = stats.paired_min_detectable_effect(sd_diff, n)
    p = sps.ttest_rel(a, 0.6 + mde + seed_effect + b_noise, axis=1).pvalue
    assert abs((p < 0.05).mean() - 0.80) < 0.03
    # Welch on the same data ignores the pairing and is far weaker at that effect.
    pw = sps.ttest_ind(a, 0.6 + mde + seed_effect + b_noise, axis=1, equal_var=False).pvalue
    assert (pw < 0.05).mean() < 0.5
    assert stats.min_detectable_effect(0.085, 0.085, n, n) > 2 * mde


def test_paired_t_test_matches_scipy():
    a = np.array([0.50, 0.61, 0.70, 0.66, 0.58])
    b = np.array([0.45, 0.52, 0.72, 0.60, 0.50])
    want = sps.ttest_rel(a, b)
    m, lo, hi, p = stats.paired_t_test(a - b)
    assert p == pytest.approx(want.pvalue)
    assert m == pytest.approx((a - b).mean())
    half = sps.t.ppf(0.975, 4) * (a - b).std(ddof=1) / math.sqrt(5)
    assert (lo, hi) == (pytest.approx(m - half), pytest.approx(m + half))
    assert math.isnan(stats.paired_t_test([0.1, 0.1, 0.1])[3])  # no spread: undefined
    # seed_test pairs by seed number, not by position, and falls back to Welch.
    t = stats.seed_test({0: 0.5, 1: 0.61, 2: 0.70, 7: 0.9}, {2: 0.72, 1: 0.52, 0: 0.45, 5: 0.1})
    assert t.test == "paired_t" and t.n == 3
    assert t.sd_diff == pytest.approx(np.std([0.05, 0.09, -0.02], ddof=1))
    w = stats.seed_test({0: 0.5, 1: 0.6}, {2: 0.4, 3: 0.45})
    assert w.test == "welch" and w.p_value == pytest.approx(sps.ttest_ind([0.5, 0.6], [0.4, 0.45], equal_var=False).pvalue)


def test_tables_state_each_contrasts_mde(example):
    root, study, runs = example
    tests = comparisons_table(study, runs, root)
    assert {"a_sd", "b_sd", "sd_diff", "mde", "seed_test", "seed_p_holm", "resolved"} <= set(tests.columns)
    ok = runs[runs["status"] == "ok"]
    checked = 0
    for _, t in tests.iterrows():
        if t["seed_test"] == "paired_t":
            want = stats.paired_min_detectable_effect(t["sd_diff"], t["seed_n"])
            assert t["mde"] == pytest.approx(want) and t["mde"] > 0
            checked += 1
        elif t["a_n"] >= 2 and t["b_n"] >= 2:
            want = stats.min_detectable_effect(t["a_sd"], t["b_sd"], t["a_n"], t["b_n"])
            assert t["mde"] == pytest.approx(want)
        else:
            assert math.isnan(t["mde"])
    assert checked >= 3
    # The sd of the differences is recomputed here from the runs, pairing by seed.
    model = tests[(tests["factor"] == "model") & (tests["seed_test"] == "paired_t")].iloc[0]
    n = int(model["a"].split("n=")[1].split(",")[0]) if "n=" in model["a"] else None
    rows = ok[ok["model.n_latent_steps"].astype(float) == float(n)] if n is not None else ok
    per = rows.pivot_table(index="seed", columns="model", values="exact_accuracy")
    d = (per[model["a"].split(",")[0]] - per[model["b"].split(",")[0]]).dropna()
    assert len(d) == model["seed_n"]
    assert model["sd_diff"] == pytest.approx(d.std(ddof=1))


def test_seed_planner_from_pilot_runs(example):
    root, study, runs = example
    plan = plan_seeds(study, runs, effect=0.10, root=root)
    assert len(plan) == len(comparisons_table(study, runs, root))
    assert set(plan["test"]) >= {"paired"}
    for _, r in plan.iterrows():
        if r["test"] == "paired" and math.isfinite(r["sd_diff"]):
            n = r["seeds_needed"]
            assert stats.paired_power(0.10, r["sd_diff"], n) >= 0.8
            if n > 2:
                assert stats.paired_power(0.10, r["sd_diff"], n - 1) < 0.8
            assert r["enough"] == (r["pilot_seeds"] >= n)
        elif r["pilot_seeds"] >= 2 and math.isfinite(r["a_sd"]) and math.isfinite(r["b_sd"]):
            n = r["seeds_needed"]
            assert stats.welch_power(0.10, r["a_sd"], r["b_sd"], n, n) >= 0.8
            assert r["enough"] == (r["pilot_seeds"] >= n)
    text = format_plan(plan, 0.10)
    assert "seeds for 10 pp" in text and "seeds per cell for every contrast" in text
    assert "sd of A − B" in text


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


def test_power_line_names_pairs_for_the_paired_test():
    from trm.results.pipeline import power_summary

    rows = pd.DataFrame([
        {"a": "x", "b": "y", "a_n": 6, "b_n": 5, "seed_test": "paired_t", "seed_n": 5, "mde": 0.12},
        {"a": "x", "b": "z", "a_n": 4, "b_n": 3, "seed_test": "welch", "seed_n": 3, "mde": 0.08},
    ])
    line = power_summary(rows)
    assert "8.0 to 12.0 pp" in line and "x vs y (5 seed pairs)" in line
    rows.loc[1, "mde"] = 0.30
    assert "x vs z (3 seeds a side)" in power_summary(rows)


def test_boschloo_power_and_seeds_for_success_rates():
    from trm.results import power, twopart

    # Rates 1.0 vs 0.2 at 5 seeds: 5/5 vs 1/5 rejects (p 0.021), 5/5 vs 2/5 does not, so the
    # power is P(B has at most one success) = 0.8^5 + 5 * 0.2 * 0.8^4.
    assert twopart.boschloo(5, 5, 2, 5) > 0.05
    assert power.boschloo_power(1.0, 0.2, 5) == pytest.approx(0.8**5 + 5 * 0.2 * 0.8**4)
    n, method = power.boschloo_seeds_needed(1.0, 0.2)
    assert method == "exact" and n == 6
    assert power.boschloo_power(1.0, 0.2, n) >= 0.8 > power.boschloo_power(1.0, 0.2, n - 1)
    # Rates too close for the exact search: the normal approximation (textbook: about 93 per
    # group for 0.7 vs 0.5), and no plan for equal rates.
    assert power.boschloo_seeds_needed(0.7, 0.5) == (93, "normal approximation")
    assert power.boschloo_seeds_needed(0.6, 0.6) == (None, "")


def test_seed_planner_plans_two_part_contrasts_on_success_counts(example):
    from trm.results import power, twopart

    root, study, runs = example
    runs = runs.copy()
    cell = (runs["model"] == "trm") & (runs["model.n_latent_steps"] == 2) & (runs["status"] == "ok")
    runs.loc[cell, "exact_accuracy"] = [0.80, 0.0, 0.74]  # trm n=2 on its transition
    runs["scale"] = "tiny"  # its threshold: 5% exact
    plan = plan_seeds(study, runs, effect=0.10, root=root)
    two = plan[plan["reading"] == twopart.TWO_PART]
    assert len(two) == 2 and (plan.loc[plan["reading"] != twopart.TWO_PART, "rate_method"] == "").all()
    for _, r in two.iterrows():
        want = power.boschloo_seeds_needed(r["a_success_rate"], r["b_success_rate"])
        assert (r["rate_seeds_needed"], r["rate_method"]) == want and want[0] is not None
    text = format_plan(plan, 0.10)
    assert "seeds for these rates (Boschloo)" in text
    assert "67% / 100%" in text or "100% / 67%" in text
