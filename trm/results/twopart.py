"""The two-part reading of cells on their learning curve's transition, and what each contrast
decides.

At a small budget some seeds of a cell cross the transition and end near the cell's
accuracy while the others stay at the floor: the seeds' values are a mixture of a point
near 0 and a spread near mu. A mean and a t-test describe neither part, and the t-test's
MDE measures the mixture (at 70% successes, mu = 78 and sd 3 points, the seeds' sd is 36
points). Such a cell is read in two parts, against a success threshold fixed in the scale
file (`success_threshold`) before any result is read:

- how many seeds succeed: k of n with a Clopper-Pearson interval; two cells are compared
  with Boschloo's exact test on the two counts;
- how well the successful seeds do: their mean with a Student-t interval (the t-interval
  throughout, since few seeds succeed); two cells are compared with the across-seed test of
  the study tables on the successful seeds (paired over seeds that succeeded in both);
- both at once: Lachenbruch's two-part test (Stat Med 2001, 20:1215), a Z for the
  difference of success fractions and a rank-sum Z on the successful values, combined as
  Z_p^2 + Z_w^2 (chi-square with 2 df for large samples). With a handful of seeds the
  chi-square is not trusted: the same statistic is referred to its permutation
  distribution (every relabelling when there are few, else seeded random ones).

Beside every difference, unimodal or not: the probability of improvement P(A > B), the
Mann-Whitney U over n_A n_B with ties counted half (Agarwal et al. 2021, rliable).

A contrast ends with a decision: `resolved`, `equivalent` (two one-sided tests: the 90% CI
of the across-seed difference lies within +-EQUIVALENCE_MARGIN), or `indeterminate` with a
reason from REASONS.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# Equivalence (TOST at alpha 0.05 each side = a 90% CI inside the margin). In the metric's
# units: 0.10 is 10 points of accuracy. The one place the margin is set.
EQUIVALENCE_MARGIN = 0.10
EQUIVALENCE_CONFIDENCE = 0.90
CEILING = 0.99  # both cells at or above this (accuracies) leave no room for a difference
N_PERMUTATIONS = 10_000
# Enumerate every relabelling when there are at most this many (C(12, 6) = 924,
# C(14, 7) = 3432); above it, N_PERMUTATIONS seeded random ones.
MAX_EXACT_RELABELLINGS = 5_000
SEED = 0

UNIMODAL, TWO_PART = "unimodal", "two-part"
RESOLVED, EQUIVALENT, INDETERMINATE = "resolved", "equivalent", "indeterminate"
ON_TRANSITION = "on a transition"
BELOW_MDE = "below its MDE"
AT_FLOOR = "at a floor"
AT_CEILING = "at a ceiling"
TOO_FEW_SEEDS = "too few seeds"
REASONS = (ON_TRANSITION, BELOW_MDE, AT_FLOOR, AT_CEILING, TOO_FEW_SEEDS)


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    return a[np.isfinite(a)]


# --------------------------------------------------------------------------------------
# The threshold, from the scale file
# --------------------------------------------------------------------------------------


def scale_threshold(scale: str, metric: str, config_dir: Path | None = None) -> float | None:
    """The scale's success threshold for `metric` in the metric's stored units (accuracies
    are given in percent in the YAML and stored as fractions); None when the scale has no
    file (a constructed table) or sets no threshold for this metric."""
    from trm import config
    from trm.results.cells import is_accuracy

    config_dir = Path(config_dir or config.CONFIG_DIR)
    if not (config_dir / "scales" / f"{scale}.yaml").exists():
        return None
    value = (config.load_scale(scale, config_dir).get("success_threshold") or {}).get(metric)
    if value is None:
        return None
    return float(value) / 100 if is_accuracy(metric) else float(value)


def runs_threshold(runs, metric: str, config_dir: Path | None = None) -> float | None:
    """The threshold of the one scale the runs table names (None for several or none)."""
    if "scale" not in getattr(runs, "columns", []):
        return None
    scales = runs["scale"].dropna().astype(str).unique()
    return scale_threshold(scales[0], metric, config_dir) if len(scales) == 1 else None


# --------------------------------------------------------------------------------------
# One cell: success count and accuracy among the successful seeds
# --------------------------------------------------------------------------------------


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a success fraction k/n; NaN for n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return (float(ci.low), float(ci.high))


@dataclass(frozen=True)
class CellSuccess:
    k: int  # seeds at or above the threshold
    n: int  # finished seeds
    rate: float
    rate_ci_low: float  # Clopper-Pearson
    rate_ci_high: float
    acc_mean: float  # mean over the successful seeds
    acc_ci_low: float  # Student-t interval over the successful seeds (NaN below 2)
    acc_ci_high: float

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


def succeeded(values, threshold: float) -> np.ndarray:
    return _clean(values) >= threshold


def cell_success(values, threshold: float, confidence: float = CONFIDENCE) -> CellSuccess:
    x = _clean(values)
    ok = x[x >= threshold]
    k, n = len(ok), len(x)
    lo, hi = clopper_pearson(k, n, confidence)
    mean = float(ok.mean()) if k else math.nan
    if k >= 2 and ok.std(ddof=1) > 0:
        half = stats.t.ppf(0.5 + confidence / 2, k - 1) * ok.std(ddof=1) / math.sqrt(k)
        acc_lo, acc_hi = mean - half, mean + half
    elif k >= 2:
        acc_lo = acc_hi = mean  # every successful seed gave the same value
    else:
        acc_lo = acc_hi = math.nan
    return CellSuccess(k, n, k / n if n else math.nan, lo, hi, mean, float(acc_lo), float(acc_hi))


def on_transition(values, threshold: float | None) -> bool:
    """Seeds on both sides of the threshold: some crossed the transition, some did not."""
    if threshold is None:
        return False
    s = succeeded(values, threshold)
    return bool(s.any() and not s.all())


# --------------------------------------------------------------------------------------
# Two cells
# --------------------------------------------------------------------------------------


def boschloo(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """Two-sided Boschloo exact test of two success counts (k_a of n_a against k_b of n_b);
    NaN when a side has no seeds."""
    if n_a <= 0 or n_b <= 0:
        return math.nan
    table = [[int(k_a), int(k_b)], [int(n_a - k_a), int(n_b - k_b)]]
    return float(stats.boschloo_exact(table, alternative="two-sided").pvalue)


def probability_of_improvement(a, b) -> float:
    """P(A > B) + P(A = B) / 2 for a random seed of each cell: U / (n_A n_B)."""
    x, y = _clean(a), _clean(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(u) / (len(x) * len(y))


@dataclass(frozen=True)
class TwoPartTest:
    z_rate: float  # Z for the difference of success fractions (A - B)
    z_rank: float  # rank-sum Z of A's successful values among all successful values
    chi2: float  # z_rate^2 + z_rank^2
    p_value: float  # from the permutation distribution of chi2
    chi2_p: float  # chi-square with 2 df, for reference (large samples only)
    method: str  # "exact permutation" or "permutation (N)"


def _two_part_statistic(groups: np.ndarray, success: np.ndarray, ranks: np.ndarray,
                        tie_term: float) -> tuple[np.ndarray, np.ndarray]:
    """(Z_rate, Z_rank) for each row of `groups` (True = cell A) over the pooled seeds."""
    groups = np.atleast_2d(groups)
    n_a = groups.sum(axis=1)
    n_b = groups.shape[1] - n_a
    k_total = success.sum()
    k_a = groups @ success.astype(float)
    k_b = k_total - k_a
    pooled = k_total / groups.shape[1]
    se = math.sqrt(pooled * (1 - pooled)) * np.sqrt(1 / n_a + 1 / n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        z_rate = np.where(se > 0, (k_a / n_a - k_b / n_b) / se, 0.0)
        w = groups @ ranks
        var = k_a * k_b / 12 * ((k_total + 1) - tie_term / max(k_total * (k_total - 1), 1))
        z_rank = np.where((k_a > 0) & (k_b > 0) & (var > 0),
                          (w - k_a * (k_total + 1) / 2) / np.sqrt(np.maximum(var, 1e-300)), 0.0)
    return z_rate, z_rank


def _relabellings(n_a: int, n: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """Rows of n booleans with n_a True: every one when few enough, else n_perm random."""
    if math.comb(n, n_a) <= MAX_EXACT_RELABELLINGS:
        rows = np.zeros((math.comb(n, n_a), n), dtype=bool)
        for i, chosen in enumerate(itertools.combinations(range(n), n_a)):
            rows[i, list(chosen)] = True
        return rows, True
    u = np.random.default_rng(seed).random((n_perm, n))
    kth = np.partition(u, n_a - 1, axis=1)[:, n_a - 1 : n_a]
    return u <= kth, False


def two_part_test(a, b, threshold: float, n_perm: int = N_PERMUTATIONS, seed: int = SEED) -> TwoPartTest:
    """Lachenbruch's two-part test of cell A against cell B (unpaired; seeds below the
    threshold are the 'zeros'). The p-value refers Z_rate^2 + Z_rank^2 to its permutation
    distribution over relabellings of the pooled seeds."""
    x, y = _clean(a), _clean(b)
    if len(x) == 0 or len(y) == 0:
        return TwoPartTest(math.nan, math.nan, math.nan, math.nan, math.nan, "")
    values = np.concatenate([x, y])
    success = values >= threshold
    ranks = np.zeros(len(values))
    if success.any():
        ranks[success] = stats.rankdata(values[success])
    _, ties = np.unique(values[success], return_counts=True)
    tie_term = float(np.sum(ties.astype(float) ** 3 - ties))
    observed = np.zeros(len(values), dtype=bool)
    observed[: len(x)] = True
    z_rate, z_rank = (float(v[0]) for v in _two_part_statistic(observed, success, ranks, tie_term))
    chi2 = z_rate**2 + z_rank**2
    groups, exact = _relabellings(len(x), len(values), n_perm, seed)
    zr, zw = _two_part_statistic(groups, success, ranks, tie_term)
    as_large = int(np.sum(zr**2 + zw**2 >= chi2 - 1e-9 * max(1.0, chi2)))
    if exact:
        p, method = as_large / len(groups), "exact permutation"
    else:
        p, method = (as_large + 1) / (len(groups) + 1), f"permutation ({len(groups)})"
    return TwoPartTest(z_rate, z_rank, chi2, float(p), float(stats.chi2.sf(chi2, 2)), method)


# --------------------------------------------------------------------------------------
# What a contrast decides
# --------------------------------------------------------------------------------------


def equivalent(ci90: tuple[float, float], margin: float = EQUIVALENCE_MARGIN) -> bool:
    """Two one-sided tests at 5% each: the 90% CI of the difference inside (-margin, margin)."""
    lo, hi = ci90
    return bool(np.isfinite(lo) and np.isfinite(hi) and -margin < lo and hi < margin)


def decide(a, b, *, resolved: bool, reading: str, ci90: tuple[float, float],
           threshold: float | None, accuracy: bool = True,
           margin: float = EQUIVALENCE_MARGIN) -> tuple[str, str]:
    """(decision, reason) for a contrast of cells with seed values `a` and `b`.

    In order: fewer than two seeds a side decides nothing; a resolved contrast is resolved;
    two cells both at the floor (no seed past the threshold, or both means below it; all
    zeros without a threshold) or both at the ceiling are indeterminate there, even when
    their CI is narrow, since equal failure is not equal skill; a 90% CI inside the margin is
    equivalent (accuracies only: the margin is in accuracy points); what is left is on a
    transition (two-part reading) or below its MDE.
    """
    x, y = _clean(a), _clean(b)
    if len(x) < 2 or len(y) < 2:
        return INDETERMINATE, TOO_FEW_SEEDS
    if resolved:
        return RESOLVED, ""
    if threshold is not None:
        floor = (not succeeded(x, threshold).any() and not succeeded(y, threshold).any()) or (
            x.mean() < threshold and y.mean() < threshold)
    else:
        floor = x.mean() <= 0 and y.mean() <= 0
    if floor:
        return INDETERMINATE, AT_FLOOR
    if accuracy and x.mean() >= CEILING and y.mean() >= CEILING:
        return INDETERMINATE, AT_CEILING
    if accuracy and equivalent(ci90, margin):
        return EQUIVALENT, ""
    return INDETERMINATE, ON_TRANSITION if reading == TWO_PART else BELOW_MDE


def direction(rate_diff: float, cond_diff: float, diff: float) -> str:
    """Which cell a resolved contrast favours: by success rate when the rates differ, else
    by accuracy among the successful seeds, else (unimodal) by the difference itself."""
    for d in (rate_diff, cond_diff, diff):
        if d is not None and np.isfinite(d) and d != 0:
            return "A > B" if d > 0 else "A < B"
    return ""
