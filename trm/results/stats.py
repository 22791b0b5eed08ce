"""Statistics for comparing runs: pure functions on arrays, testable on constructed data.

Conventions (workflow notes, section 4):
- A cell is summarised by mean ± sd over seeds, n, and a 95% CI: a t-interval for small n,
  BCa bootstrap (scipy.stats.bootstrap) when n >= 5.
- Two cells are compared with a paired test on the same test puzzles when per-puzzle
  predictions exist for both (exact McNemar on discordant pairs, paired bootstrap of the
  accuracy difference). That test conditions on the trained models; whether the difference
  survives seed-to-seed variation is a second test with the seed as the unit: a paired
  t-test over the seeds both cells ran (seed k of every cell shares its data order and, where
  the shapes agree, its initial weights), Welch's t-test when fewer than two seeds are
  shared. p-values of one study are Holm-corrected together; effect sizes come with CIs.

Bootstraps take an explicit seed so that tables are byte-identical between reruns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BCA_MIN_N = 5  # below this, BCa's acceleration estimate is too noisy; use the t-interval
N_BOOT = 4999
SEED = 0


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


# --------------------------------------------------------------------------------------
# One cell: mean ± sd, n, CI
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    sd: float  # sample sd (ddof=1); NaN for n < 2
    ci_low: float
    ci_high: float
    ci_method: str  # "t", "bca", "constant" (all values equal), or "" when no CI exists

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval for the mean; NaN for fewer than two values."""
    x = _clean(values)
    if len(x) < 2:
        return (math.nan, math.nan)
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return (float(x.mean() - half), float(x.mean() + half))


def bca_interval(
    values, confidence: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = SEED
) -> tuple[float, float]:
    """BCa bootstrap interval for the mean (NaN when BCa is undefined)."""
    x = _clean(values)
    res = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_boot,
        confidence_level=confidence,
        method="BCa",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def summarize(
    values, confidence: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = SEED
) -> Summary:
    """mean ± sd with a CI; non-finite values (failed runs) are not counted in n."""
    x = _clean(values)
    n = len(x)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, "")
    mean = float(x.mean())
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, "")
    sd = float(x.std(ddof=1))
    if sd == 0.0:
        # Every seed gave the same value (e.g. all 100%): no spread to build an interval from.
        return Summary(n, mean, 0.0, mean, mean, "constant")
    if n >= BCA_MIN_N:
        lo, hi = bca_interval(x, confidence, n_boot, seed)
        if np.isfinite(lo) and np.isfinite(hi):
            return Summary(n, mean, sd, lo, hi, "bca")
    lo, hi = t_interval(x, confidence)
    return Summary(n, mean, sd, lo, hi, "t")


# --------------------------------------------------------------------------------------
# Paired comparison on the same test puzzles
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McNemar:
    a_only: int  # puzzles A solved and B did not (summed over seed pairs)
    b_only: int  # puzzles B solved and A did not
    p_value: float


def _pairs(correct_a, correct_b) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-seed pairs of boolean vectors (one vector, or a list / 2-D array of them)."""

    def rows(x):
        if (isinstance(x, np.ndarray) and x.ndim == 1) or (len(x) and np.isscalar(x[0])):
            return [np.asarray(x, dtype=bool)]
        return [np.asarray(r, dtype=bool).ravel() for r in x]

    ra, rb = rows(correct_a), rows(correct_b)
    if len(ra) != len(rb):
        raise ValueError(f"{len(ra)} prediction vectors for A but {len(rb)} for B")
    for i, (a, b) in enumerate(zip(ra, rb)):
        if a.shape != b.shape:
            raise ValueError(f"pair {i}: predictions differ in shape: {a.shape} vs {b.shape}")
    return list(zip(ra, rb))


def _paired_arrays(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    """[n_pairs, n_test] arrays; every pair must be on the same test set."""
    pairs = _pairs(correct_a, correct_b)
    if len({a.shape for a, _ in pairs}) > 1:
        raise ValueError("paired bootstrap needs every seed pair on the same test set")
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def mcnemar_exact(correct_a, correct_b) -> McNemar:
    """Exact McNemar test: binomial test of the discordant pairs against p = 1/2.

    With several seed pairs (rows), discordant counts are summed: under the null that the
    two models in every pair are equally accurate, each stratum's A-only count given its
    discordant total is Binomial(., 1/2), so the sum is Binomial(total, 1/2) exactly.
    The test conditions on the trained models; seed-to-seed variation is what Welch's
    test across seeds covers.
    """
    pairs = _pairs(correct_a, correct_b)
    a_only = sum(int(np.sum(a & ~b)) for a, b in pairs)
    b_only = sum(int(np.sum(~a & b)) for a, b in pairs)
    n = a_only + b_only
    p = 1.0 if n == 0 else float(stats.binomtest(a_only, n, 0.5).pvalue)
    return McNemar(a_only, b_only, p)


def paired_bootstrap_diff(
    correct_a,
    correct_b,
    confidence: float = CONFIDENCE,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """Accuracy difference A - B (mean over seed pairs) with a percentile CI from
    resampling test puzzles.

    Per puzzle the difference d_i = mean over pairs of (a - b) takes few distinct values,
    and resampling n puzzles with replacement is a multinomial draw over those values, so
    the bootstrap is exact and costs O(n_boot), not O(n_boot * n_test).
    """
    a, b = _paired_arrays(correct_a, correct_b)
    d = (a.astype(float) - b.astype(float)).mean(axis=0)
    n = len(d)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    levels, counts = np.unique(d, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_boot)
    boot = draws @ levels / n
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail])
    return (float(d.mean()), float(lo), float(hi))


# --------------------------------------------------------------------------------------
# Unpaired comparison across seeds
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Welch:
    diff: float  # mean(A) - mean(B)
    ci_low: float
    ci_high: float
    t: float
    df: float
    p_value: float


def welch_test(a, b, confidence: float = CONFIDENCE) -> Welch:
    """Welch's t-test with the matching CI of the mean difference; NaN when either side
    has fewer than two seeds or both sides have zero spread."""
    x, y = _clean(a), _clean(b)
    diff = float(x.mean() - y.mean()) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return Welch(diff, math.nan, math.nan, math.nan, math.nan, math.nan)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return Welch(diff, diff, diff, math.nan, math.nan, math.nan)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    res = stats.ttest_ind(x, y, equal_var=False)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return Welch(diff, diff - half, diff + half, float(res.statistic), float(df), float(res.pvalue))


def hedges_g(a, b, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Standardised mean difference (A - B) with small-sample correction, and an
    approximate normal CI (Hedges & Olkin variance). NaN when undefined."""
    x, y = _clean(a), _clean(b)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return (math.nan, math.nan, math.nan)
    pooled = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0.0:
        return (math.nan, math.nan, math.nan)
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    g = correction * (x.mean() - y.mean()) / pooled
    se = math.sqrt((n1 + n2) / (n1 * n2) + g**2 / (2 * (n1 + n2)))
    z = stats.norm.ppf(0.5 + confidence / 2)
    return (float(g), float(g - z * se), float(g + z * se))


@dataclass(frozen=True)
class SeedTest:
    """The across-seed comparison of two cells: a paired t-test over shared seeds, or
    Welch's test when fewer than two seeds are shared."""
    test: str  # "paired_t" or "welch"
    n: int  # seed pairs (paired_t) or the smaller cell's seeds (welch)
    diff: float  # mean(A) - mean(B)
    ci_low: float
    ci_high: float
    p_value: float
    sd_diff: float  # sd of the per-seed differences (paired_t); NaN for welch


def paired_t_test(diffs, confidence: float = CONFIDENCE) -> tuple[float, float, float, float]:
    """One-sample t-test of per-seed differences against 0: (mean, ci_low, ci_high, p).
    NaN p with fewer than two pairs or when every pair differs by the same amount (no
    spread to test against, as for Welch's test)."""
    d = _clean(diffs)
    if len(d) == 0:
        return (math.nan, math.nan, math.nan, math.nan)
    m = float(d.mean())
    if len(d) < 2:
        return (m, math.nan, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(m)):  # equal differences up to rounding
        return (m, m, m, math.nan)
    se = sd / math.sqrt(len(d))
    half = stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * se
    p = float(2 * stats.t.sf(abs(m) / se, len(d) - 1))
    return (m, m - half, m + half, p)


def seed_test(a_by_seed: dict, b_by_seed: dict, confidence: float = CONFIDENCE) -> SeedTest:
    """Across-seed comparison of two cells given {seed: metric} for each (NaNs dropped)."""
    a = {k: float(v) for k, v in a_by_seed.items() if np.isfinite(float(v))}
    b = {k: float(v) for k, v in b_by_seed.items() if np.isfinite(float(v))}
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        d = np.array([a[k] - b[k] for k in shared])
        m, lo, hi, p = paired_t_test(d, confidence)
        return SeedTest("paired_t", len(shared), m, lo, hi, p, float(d.std(ddof=1)))
    w = welch_test(list(a.values()), list(b.values()), confidence)
    return SeedTest("welch", min(len(a), len(b)), w.diff, w.ci_low, w.ci_high, w.p_value, math.nan)


# --------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order. NaNs stay NaN and do not
    count towards the number of tests."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


# --------------------------------------------------------------------------------------
# Power: what a contrast could have detected, and how many seeds it would need
# --------------------------------------------------------------------------------------

POWER = 0.8


def _welch_se_df(sd_a: float, sd_b: float, n_a: int, n_b: int) -> tuple[float, float]:
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:
        return 0.0, math.inf
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return se, df


def _t_power(delta: float, se: float, df: float, alpha: float) -> float:
    """Power of a two-sided t-test at level alpha for a true difference `delta` whose
    estimate has standard error `se`: P(|T| > t_crit), T ~ noncentral t(df, delta / se)."""
    if se == 0.0:
        return 1.0 if delta != 0 else alpha
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(delta) / se
    if nc > crit + 40:  # scipy's noncentral t returns NaN this far out; the power is 1
        return 1.0
    # The far lower tail can also come back NaN; it is ~0 there.
    lower = stats.nct.cdf(-crit, df, nc)
    power = float(stats.nct.sf(crit, df, nc) + (lower if math.isfinite(lower) else 0.0))
    return power if math.isfinite(power) else 1.0


def _solve_mde(power_at, se: float, power: float) -> float:
    """The difference at which power_at(difference) reaches `power` (0 without spread)."""
    if se == 0.0:
        return 0.0  # no spread at all: any difference is seen (a floor or ceiling, usually)
    from scipy.optimize import brentq

    f = lambda d: power_at(d) - power  # noqa: E731
    hi = se
    while f(hi) < 0:
        hi *= 2
    return float(brentq(f, 0.0, hi, xtol=1e-6 * se))


def _smallest_n(power_at_n, power: float, max_seeds: int) -> int | None:
    """The smallest n >= 2 with power_at_n(n) >= power (coarser steps above 64)."""
    n = 2
    while n <= max_seeds:
        if power_at_n(n) >= power:
            return n
        n = n + 1 if n < 64 else int(n * 1.25)
    return None


def welch_power(delta: float, sd_a: float, sd_b: float, n_a: int, n_b: int,
                alpha: float = 0.05) -> float:
    """Power of the two-sided Welch t-test at level alpha to detect a true mean difference
    `delta`, when the seeds of the two cells spread with sd_a and sd_b (df by
    Welch-Satterthwaite, the usual approximation)."""
    if n_a < 2 or n_b < 2 or not (math.isfinite(sd_a) and math.isfinite(sd_b)):
        return math.nan
    se, df = _welch_se_df(sd_a, sd_b, n_a, n_b)
    return _t_power(delta, se, df, alpha)


def min_detectable_effect(sd_a: float, sd_b: float, n_a: int, n_b: int,
                          alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest true difference that the across-seed Welch test (two-sided, level alpha)
    detects with probability `power`, given the observed seed spreads and seed counts.
    In the metric's units (fractions for accuracies). NaN when a side has < 2 seeds."""
    if n_a < 2 or n_b < 2 or not (math.isfinite(sd_a) and math.isfinite(sd_b)):
        return math.nan
    se, _ = _welch_se_df(sd_a, sd_b, n_a, n_b)
    return _solve_mde(lambda d: welch_power(d, sd_a, sd_b, n_a, n_b, alpha), se, power)


def seeds_needed(effect: float, sd_a: float, sd_b: float, alpha: float = 0.05,
                 power: float = POWER, max_seeds: int = 10_000) -> int | None:
    """Seeds per cell (the same in both) for the Welch test to detect `effect` with the
    given power, assuming the observed spreads; None if more than max_seeds."""
    if not (math.isfinite(sd_a) and math.isfinite(sd_b)):
        return None
    return _smallest_n(lambda n: welch_power(effect, sd_a, sd_b, n, n, alpha), power, max_seeds)


def paired_power(delta: float, sd_diff: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test over n seed pairs whose differences spread with
    sd_diff (noncentral t with n - 1 df)."""
    if n < 2 or not math.isfinite(sd_diff):
        return math.nan
    return _t_power(delta, sd_diff / math.sqrt(n), n - 1, alpha)


def paired_min_detectable_effect(sd_diff: float, n: int, alpha: float = 0.05,
                                 power: float = POWER) -> float:
    """The smallest true difference the paired t-test over n seed pairs detects with
    probability `power`, given the observed sd of the per-seed differences."""
    if n < 2 or not math.isfinite(sd_diff):
        return math.nan
    return _solve_mde(lambda d: paired_power(d, sd_diff, n, alpha), sd_diff / math.sqrt(n), power)


def paired_seeds_needed(effect: float, sd_diff: float, alpha: float = 0.05,
                        power: float = POWER, max_seeds: int = 10_000) -> int | None:
    """Seed pairs for the paired t-test to detect `effect`, assuming the observed sd of the
    per-seed differences; None if more than max_seeds."""
    if not math.isfinite(sd_diff):
        return None
    return _smallest_n(lambda n: paired_power(effect, sd_diff, n, alpha), power, max_seeds)
