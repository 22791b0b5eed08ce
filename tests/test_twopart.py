"""The two-part reading of cells on their transition (trm/results/twopart.py) on constructed
data: the intervals and tests against known values, the two-part test's size by simulation,
the probability of improvement by hand, and what each contrast decides."""

import math

import numpy as np
import pandas as pd
import pytest

from trm import config
from trm.results import stats
from trm.results import twopart as T
from trm.results.collect import collect_runs
from trm.results.example_runs import EXAMPLE_STUDY, write_example_study
from trm.results.tables import comparisons_table, summary_table, write_study_tables


def test_clopper_pearson_known_values():
    assert T.clopper_pearson(0, 5) == pytest.approx((0.0, 0.5218), abs=1e-4)
    assert T.clopper_pearson(5, 5) == pytest.approx((0.4782, 1.0), abs=1e-4)
    lo, hi = T.clopper_pearson(3, 10)  # the textbook 3/10: [0.0667, 0.6525]
    assert (lo, hi) == pytest.approx((0.0667, 0.6525), abs=1e-4)
    assert all(math.isnan(v) for v in T.clopper_pearson(0, 0))


def test_boschloo_known_values_and_symmetry():
    # Two-sided, from the issue: more powerful than Fisher's 0.087 and 0.048.
    assert T.boschloo(10, 10, 6, 10) == pytest.approx(0.042, abs=0.002)
    assert T.boschloo(5, 5, 1, 5) == pytest.approx(0.021, abs=0.002)
    assert T.boschloo(1, 5, 5, 5) == pytest.approx(T.boschloo(5, 5, 1, 5))
    assert T.boschloo(3, 5, 3, 5) == pytest.approx(1.0)
    assert math.isnan(T.boschloo(0, 0, 3, 5))


def test_cell_success_counts_and_conditional_accuracy():
    cs = T.cell_success([0.80, 0.0, 0.76, 0.01, 0.84, float("nan")], threshold=0.05)
    assert (cs.k, cs.n) == (3, 5) and cs.rate == pytest.approx(0.6)
    assert (cs.rate_ci_low, cs.rate_ci_high) == pytest.approx(T.clopper_pearson(3, 5))
    assert cs.acc_mean == pytest.approx(0.80)
    lo, hi = stats.t_interval([0.80, 0.76, 0.84])
    assert (cs.acc_ci_low, cs.acc_ci_high) == pytest.approx((lo, hi))
    none = T.cell_success([0.0, 0.01], threshold=0.05)
    assert none.k == 0 and math.isnan(none.acc_mean)
    assert T.on_transition([0.8, 0.0], 0.05) and not T.on_transition([0.8, 0.7], 0.05)
    assert not T.on_transition([0.8, 0.0], None)


def test_probability_of_improvement_by_hand():
    # A = [3, 2, 1], B = [2, 0]: A wins 3>2, 3>0, 2>0, 1>0, ties 2=2 (half), loses 1<2.
    assert T.probability_of_improvement([3, 2, 1], [2, 0]) == pytest.approx(4.5 / 6)
    assert T.probability_of_improvement([2, 0], [3, 2, 1]) == pytest.approx(1.5 / 6)
    assert T.probability_of_improvement([1, 1], [1]) == pytest.approx(0.5)
    assert math.isnan(T.probability_of_improvement([], [1]))


def test_two_part_statistic_by_hand():
    # A: 4 of 5 past 0.05; B: 1 of 5. Z for the fractions: 0.6 / sqrt(0.5 * 0.5 * 2/5).
    a, b = [0.8, 0.7, 0.9, 0.6, 0.0], [0.5, 0.0, 0.0, 0.0, 0.01]
    tp = T.two_part_test(a, b, 0.05)
    assert tp.z_rate == pytest.approx(0.6 / math.sqrt(0.25 * 0.4))
    # Ranks of the successful values 0.5 < 0.6 < ... < 0.9: A holds 2..5, sum 14, mean 12,
    # variance 4 * 1 * 6 / 12 = 2.
    assert tp.z_rank == pytest.approx(2 / math.sqrt(2))
    assert tp.chi2 == pytest.approx(tp.z_rate**2 + tp.z_rank**2)
    assert tp.method == "exact permutation" and 0 < tp.p_value <= 1
    # Its permutation p counts the relabellings at least as extreme as this one.
    assert tp.p_value == pytest.approx(T.two_part_test(b, a, 0.05).p_value)


def test_two_part_test_has_its_size_under_the_null():
    """Both cells drawn from one Bernoulli x Normal mixture (70% of seeds succeed, at
    78 +- 3 points): the test rejects at about its 5% level."""
    rng = np.random.default_rng(2024)
    sims, rejected = 400, 0
    for i in range(sims):
        n = 5 + i % 6

        def draw():
            return (rng.random(n) < 0.7) * rng.normal(0.78, 0.03, n)

        rejected += T.two_part_test(draw(), draw(), 0.05, n_perm=2000, seed=i).p_value < 0.05
    assert 0.02 <= rejected / sims <= 0.09


def test_two_part_test_detects_each_part():
    rng = np.random.default_rng(7)
    # Equal success counts (all 8), lower accuracy among successes in B: the rank part.
    a, b = rng.normal(0.80, 0.02, 8), rng.normal(0.70, 0.02, 8)
    tp = T.two_part_test(a, b, 0.05)
    assert tp.z_rate == 0 and tp.p_value < 0.01 and tp.method.startswith("permutation")
    # Equal accuracy among successes, 8/8 against 2/8 past the threshold: the count part.
    b = np.where(np.arange(8) < 2, rng.normal(0.80, 0.02, 8), 0.0)
    assert T.two_part_test(a, b, 0.05).p_value < 0.01


@pytest.mark.parametrize("a, b, resolved, reading, want", [
    ([0.5, 0.6, 0.7], [0.2, 0.3, 0.2], True, T.UNIMODAL, (T.RESOLVED, "")),
    ([0.80, 0.81, 0.79, 0.80, 0.82], [0.78, 0.80, 0.79, 0.81, 0.80], False, T.UNIMODAL,
     (T.EQUIVALENT, "")),
    ([0.0, 0.0, 0.01, 0.0, 0.0], [0.0] * 5, False, T.UNIMODAL, (T.INDETERMINATE, T.AT_FLOOR)),
    ([0.06, 0.0, 0.01, 0.0, 0.0], [0.0] * 5, False, T.TWO_PART, (T.INDETERMINATE, T.AT_FLOOR)),
    ([1.0, 1.0, 0.995, 1.0, 1.0], [1.0] * 5, False, T.UNIMODAL, (T.INDETERMINATE, T.AT_CEILING)),
    ([0.8, 0.0, 0.78, 0.0, 0.81], [0.79, 0.8, 0.0, 0.77, 0.0], False, T.TWO_PART,
     (T.INDETERMINATE, T.ON_TRANSITION)),
    ([0.5, 0.8, 0.3, 0.6, 0.7], [0.6, 0.5, 0.55, 0.75, 0.4], False, T.UNIMODAL,
     (T.INDETERMINATE, T.BELOW_MDE)),
    ([0.5], [0.4, 0.6], False, T.UNIMODAL, (T.INDETERMINATE, T.TOO_FEW_SEEDS)),
])
def test_decisions_on_constructed_cells(a, b, resolved, reading, want):
    ci90 = stats.seed_test(dict(enumerate(a)), dict(enumerate(b)), confidence=0.90)
    got = T.decide(a, b, resolved=resolved, reading=reading, ci90=(ci90.ci_low, ci90.ci_high),
                   threshold=0.05)
    assert got == want
    assert got[1] in T.REASONS + ("",)


def test_equivalence_margin_is_two_one_sided_tests():
    assert T.equivalent((-0.09, 0.09)) and not T.equivalent((-0.11, 0.02))
    assert not T.equivalent((0.02, 0.10)) and not T.equivalent((math.nan, 0.0))
    assert T.equivalent((-0.04, 0.04), margin=0.05) and T.EQUIVALENCE_MARGIN == 0.10


def test_direction_by_rate_then_conditional_accuracy():
    assert T.direction(0.5, -0.1, math.nan) == "A > B"  # the success rate decides
    assert T.direction(0.0, -0.1, math.nan) == "A < B"  # equal rates: accuracy among them
    assert T.direction(math.nan, math.nan, 0.2) == "A > B"
    assert T.direction(0.0, 0.0, 0.0) == ""


# --------------------------------------------------------------------------------------
# Through the study tables
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eight_seeds(tmp_path_factory):
    """hrm vs trm at n=2 with 8 seeds: trm's seeds all succeed, hrm's two of eight."""
    root = tmp_path_factory.mktemp("runs8")
    study = dict(EXAMPLE_STUDY, name="ex8", seeds=list(range(8)), grid={"model.n_latent_steps": [2]})
    study, manifest = write_example_study(root, n_test=40, study=study)
    runs = collect_runs(manifest, root)
    rng = np.random.default_rng(3)
    hrm, trm = runs["model"] == "hrm", runs["model"] == "trm"
    runs.loc[trm, "exact_accuracy"] = rng.normal(0.80, 0.02, trm.sum())
    runs.loc[hrm, "exact_accuracy"] = np.where(np.arange(hrm.sum()) < 2, 0.79, 0.0)
    return root, study, runs


def test_a_transition_contrast_is_read_in_two_parts(eight_seeds):
    root, study, runs = eight_seeds
    tests = comparisons_table(study, runs, root, threshold=0.05)
    (t,) = tests.itertuples()
    assert (t.a.split(",")[0], t.b.split(",")[0]) == ("hrm", "trm")
    assert t.reading == T.TWO_PART and (t.a_success_k, t.b_success_k) == (2, 8)
    assert t.boschloo_p == pytest.approx(T.boschloo(2, 8, 8, 8))
    assert t.twopart_p < 0.01 and t.twopart_p_holm == t.twopart_p  # one contrast
    assert t.cond_test == "welch" or t.cond_n <= 2  # seeds past it in both cells: 0 and 1
    assert t.resolved and t.decision == T.RESOLVED and t.direction == "A < B"
    assert t.prob_improvement == pytest.approx(T.probability_of_improvement(
        runs.loc[runs["model"] == "hrm", "exact_accuracy"], runs.loc[runs["model"] == "trm", "exact_accuracy"]))
    summary = summary_table(study, runs, threshold=0.05).set_index("model")
    assert summary.loc["hrm", "success_k"] == 2 and summary.loc["hrm", "on_transition"]
    assert summary.loc["trm", "success_acc_mean"] == pytest.approx(summary.loc["trm", "exact_accuracy_mean"])


def test_without_a_threshold_every_contrast_is_unimodal(eight_seeds):
    root, study, runs = eight_seeds
    tests = comparisons_table(study, runs, root, threshold=None)
    assert (tests["reading"] == T.UNIMODAL).all() and tests["twopart_p"].isna().all()
    assert tests["success_threshold"].isna().all()
    # The constructed example names a scale without a file: no threshold from it either.
    assert T.runs_threshold(runs, "exact_accuracy") is None


def test_the_report_says_each_reading_and_the_totals(eight_seeds, tmp_path):
    root, study, runs = eight_seeds
    paths = write_study_tables(study, runs, tmp_path, root=root, threshold=0.05)
    md = paths["md"].read_text()
    assert "## Decisions" in md and "Success threshold: 5% exact accuracy" in md
    assert "**Totals:** 1 contrasts: 1 resolved, 0 equivalent, 0 indeterminate." in md
    assert "**resolved, A < B**; two-part reading: past the threshold 2/8 vs 8/8" in md
    assert "| Succeeded " in md and "2/8 [" in md
    saved = pd.read_csv(paths["tests"])
    assert {"reading", "decision", "reason", "prob_improvement", "boschloo_p", "twopart_p"} <= set(saved.columns)


def test_scale_threshold_is_read_and_validated(tmp_path):
    scales = tmp_path / "scales"
    scales.mkdir()
    (scales / "mine.yaml").write_text("success_threshold: {exact_accuracy: 5.0, loss: 0.7}\n")
    assert T.scale_threshold("mine", "exact_accuracy", tmp_path) == pytest.approx(0.05)
    assert T.scale_threshold("mine", "loss", tmp_path) == pytest.approx(0.7)  # own units
    assert T.scale_threshold("mine", "cell_accuracy", tmp_path) is None
    assert T.scale_threshold("absent", "exact_accuracy", tmp_path) is None
    for bad, message in [("[5.0]", "must be a mapping"), ("{exact_accuracy: '5'}", "must be a number"),
                         ("{exact_accuracy: 150}", "(0, 100)")]:
        (scales / "bad.yaml").write_text(f"success_threshold: {bad}\n")
        with pytest.raises(config.SpecError, match="success_threshold") as e:
            config.load_scale("bad", tmp_path)
        assert message in str(e.value)
    # The shipped scales fix one before any run is read.
    assert T.scale_threshold("tiny", "exact_accuracy") == pytest.approx(0.05)
