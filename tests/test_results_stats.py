"""Statistics on constructed data with known answers."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from trm.results import stats

# ------------------------------------------------------------------ summaries and CIs


def test_summarize_small_n_uses_t_interval():
    x = [0.5, 0.6, 0.7]
    s = stats.summarize(x)
    assert s.n == 3 and s.ci_method == "t"
    assert s.mean == pytest.approx(0.6)
    assert s.sd == pytest.approx(0.1)
    half = sps.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)  # 4.303 * 0.0577 = 0.2484
    assert (s.ci_low, s.ci_high) == pytest.approx((0.6 - half, 0.6 + half))


def test_summarize_edge_cases():
    assert stats.summarize([]).n == 0 and math.isnan(stats.summarize([]).mean)
    one = stats.summarize([0.4, float("nan")])  # NaN = a run without a value: not counted
    assert one.n == 1 and one.mean == 0.4 and math.isnan(one.sd) and one.ci_method == ""
    const = stats.summarize([1.0] * 6)
    assert const.ci_method == "constant" and (const.ci_low, const.ci_high) == (1.0, 1.0)


def test_summarize_switches_to_bca_at_five_and_is_reproducible():
    x = [0.61, 0.55, 0.72, 0.66, 0.58]
    a, b = stats.summarize(x), stats.summarize(x)
    assert a.ci_method == "bca" and a == b
    assert a.ci_low < np.mean(x) < a.ci_high


def test_t_interval_coverage_simulation():
    rng = np.random.default_rng(123)
    hits = sum(
        lo <= 0.5 <= hi
        for lo, hi in (stats.t_interval(rng.normal(0.5, 0.1, 4)) for _ in range(1000))
    )
    assert 0.92 <= hits / 1000 <= 0.97


def test_bca_coverage_simulation():
    # BCa is known to under-cover a little at small n (about 0.91 at n = 8).
    rng = np.random.default_rng(123)
    hits = 0
    for i in range(200):
        s = stats.summarize(rng.normal(0.5, 0.1, 8), n_boot=999, seed=i)
        assert s.ci_method == "bca"
        hits += s.ci_low <= 0.5 <= s.ci_high
    assert 0.85 <= hits / 200 <= 0.97


# ------------------------------------------------------------------ paired tests


def _table(both, a_only, b_only, neither):
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither, dtype=bool)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither, dtype=bool)
    return a, b


def test_mcnemar_exact_hand_computed():
    # Discordant pairs 7 vs 2: p = 2 * P(X <= 2 | Bin(9, 1/2)) = 2 * (1 + 9 + 36) / 512.
    a, b = _table(both=30, a_only=7, b_only=2, neither=11)
    res = stats.mcnemar_exact(a, b)
    assert (res.a_only, res.b_only) == (7, 2)
    assert res.p_value == pytest.approx(92 / 512)


def test_mcnemar_no_discordant_pairs_and_symmetry():
    a, b = _table(both=5, a_only=0, b_only=0, neither=5)
    assert stats.mcnemar_exact(a, b).p_value == 1.0
    a, b = _table(both=3, a_only=1, b_only=8, neither=0)
    assert stats.mcnemar_exact(a, b).p_value == pytest.approx(stats.mcnemar_exact(b, a).p_value)
    # 8 vs 1: 2 * (1 + 9) / 512
    assert stats.mcnemar_exact(a, b).p_value == pytest.approx(20 / 512)


def test_mcnemar_sums_discordant_pairs_over_seeds():
    a1, b1 = _table(10, 4, 1, 5)
    a2, b2 = _table(10, 3, 1, 5)
    res = stats.mcnemar_exact([a1, a2], [b1, b2])
    assert (res.a_only, res.b_only) == (7, 2)
    assert res.p_value == pytest.approx(92 / 512)
    with pytest.raises(ValueError):
        stats.mcnemar_exact([a1], [b1[:-1]])


def test_paired_bootstrap_difference_and_interval():
    a, b = _table(both=300, a_only=60, b_only=20, neither=120)  # n = 500, diff = 40/500
    diff, lo, hi = stats.paired_bootstrap_diff(a, b)
    assert diff == pytest.approx(0.08)
    assert lo < 0.08 < hi
    # Normal approximation of the paired difference: sd of d_i / sqrt(n).
    d = a.astype(float) - b.astype(float)
    se = d.std(ddof=0) / math.sqrt(len(d))
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert stats.paired_bootstrap_diff(a, b) == (diff, lo, hi)  # fixed seed


def test_paired_bootstrap_matches_index_resampling():
    # The multinomial shortcut must give the same distribution as resampling indices.
    rng = np.random.default_rng(5)
    a = rng.random((2, 300)) < 0.6
    b = rng.random((2, 300)) < 0.5
    _, lo, hi = stats.paired_bootstrap_diff(a, b, n_boot=4000, seed=1)
    d = (a.astype(float) - b.astype(float)).mean(axis=0)
    idx = np.random.default_rng(2).integers(0, len(d), size=(4000, len(d)))
    ref_lo, ref_hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    assert lo == pytest.approx(ref_lo, abs=0.01) and hi == pytest.approx(ref_hi, abs=0.01)


# ------------------------------------------------------------------ unpaired tests and effects


def test_welch_matches_scipy_and_hand_ci():
    a, b = [0.80, 0.85, 0.90, 0.82], [0.60, 0.70, 0.65]
    w = stats.welch_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w.p_value == pytest.approx(ref.pvalue) and w.t == pytest.approx(ref.statistic)
    assert w.diff == pytest.approx(np.mean(a) - np.mean(b))
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (w.ci_low, w.ci_high) == pytest.approx((w.diff - half, w.diff + half))


def test_welch_undefined_cases_are_nan():
    assert math.isnan(stats.welch_test([0.5], [0.4, 0.6]).p_value)
    same = stats.welch_test([0.5, 0.5], [0.7, 0.7])
    assert math.isnan(same.p_value) and same.diff == pytest.approx(-0.2)


def test_hedges_g_known_value():
    # Means 2 and 0, both sd 1 (n = 3 each): d = 2, J = 1 - 3 / (4 * 6 - 9) = 0.8.
    g, lo, hi = stats.hedges_g([1, 2, 3], [-1, 0, 1])
    assert g == pytest.approx(1.6)
    se = math.sqrt(6 / 9 + 1.6**2 / 12)
    assert (lo, hi) == pytest.approx((1.6 - 1.959964 * se, 1.6 + 1.959964 * se), rel=1e-5)


# ------------------------------------------------------------------ Holm


def test_holm_hand_computed():
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> monotone .06
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_ignores_nan_and_caps_at_one():
    adj = stats.holm([0.2, float("nan"), 0.6, 0.01])
    assert math.isnan(adj[1])
    assert adj[[0, 2, 3]] == pytest.approx([0.4, 0.6, 0.03])  # m = 3 finite p-values
    assert stats.holm([0.5, 0.9]).max() == 1.0
    assert len(stats.holm([])) == 0


def test_holm_preserves_order_of_raw_p_values():
    p = np.random.default_rng(0).random(12) ** 3
    adj = stats.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p)
