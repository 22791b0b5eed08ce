"""Learning speed: crossing steps with censoring from constructed train logs, the Kaplan-Meier
fraction crossed, the log-rank test against a hand computation, and the study report section."""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from trm.results import learning as L
from trm.results.collect import collect_runs
from trm.results.example_runs import write_example_study
from trm.results.tables import comparisons_table


def crossing(step, crossed, seed=0):
    return L.Crossing(seed, step, crossed, evals=5, status="ok", budget=600)


# --------------------------------------------------------------------------------------
# Log-rank
# --------------------------------------------------------------------------------------


def test_logrank_matches_a_hand_computation():
    # A crosses at 10 and 20 and is censored at 40; B crosses at 30 and is censored at 40 twice.
    # At each crossing step: N at risk, N_A of them in A, O crossings, O_A of them in A;
    # E_A = O N_A / N, V = E_A (N - O)/N (N - N_A)/(N - 1).
    #   step 10: N 6, N_A 3, O_A 1: E_A 3/6 = 0.5,  V 0.5 * 5/6 * 3/5 = 0.25
    #   step 20: N 5, N_A 2, O_A 1: E_A 2/5 = 0.4,  V 0.4 * 4/5 * 3/4 = 0.24
    #   step 30: N 4, N_A 1, O_A 0: E_A 1/4 = 0.25, V 0.25 * 3/4 * 3/3 = 0.1875
    # O_A - E_A = 2 - 1.15 = 0.85, V = 0.6775.
    a = [crossing(10, True), crossing(20, True), crossing(40, False)]
    b = [crossing(30, True), crossing(40, False), crossing(40, False)]
    z = 0.85 / math.sqrt(0.6775)
    res = L.logrank(a, b)
    assert res.statistic == pytest.approx(z, rel=1e-9)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(z), rel=1e-9)
    # A crossed sooner: z is positive; swapping the sides flips its sign, not the p-value.
    swapped = L.logrank(b, a)
    assert swapped.statistic == pytest.approx(-z) and swapped.p_value == pytest.approx(res.p_value)


def test_logrank_is_censoring_aware():
    # The same steps read as crossings in A but as censorings in B: the test must see it.
    a = [crossing(s, True) for s in (100, 150, 200, 250, 300)]
    b = [crossing(s, False) for s in (100, 150, 200, 250, 300)]
    assert L.logrank(a, b).p_value < 0.05
    assert L.logrank(a, [crossing(s, True) for s in (100, 150, 200, 250, 300)]).p_value == pytest.approx(1.0)


def test_logrank_under_the_null_gives_a_large_p():
    a = [crossing(s, True) for s in (100, 200, 300, 400)] + [crossing(600, False)]
    b = [crossing(s, True) for s in (150, 250, 350, 450)] + [crossing(600, False)]
    res = L.logrank(a, b)
    assert 0.5 < res.p_value <= 1.0


def test_logrank_without_any_crossing_says_why():
    res = L.logrank([crossing(600, False)] * 3, [crossing(600, False)] * 3)
    assert math.isnan(res.p_value) and "no seed crossed" in res.note
    assert "one side" in L.logrank([], [crossing(100, True)]).note
    # Every seed of both cells crossing at one step leaves nothing to order.
    same = L.logrank([crossing(300, True)] * 3, [crossing(300, True)] * 3)
    assert math.isnan(same.p_value) and "same step" in same.note


# --------------------------------------------------------------------------------------
# Crossing steps from a train log
# --------------------------------------------------------------------------------------


def write_log(path: Path, evals: dict, train_steps=range(50, 601, 50)) -> Path:
    """A train.jsonl as trm.train.loop writes it: training records, and periodic evaluations
    {step: exact} as separate records."""
    with open(path, "w") as f:
        for s in train_steps:
            f.write(json.dumps({"step": s, "loss": 1.0, "lm_loss": 1.0, "halted_frac": 0.25}) + "\n")
            if s in evals:
                f.write(json.dumps({"step": s, "eval_n": 500, "eval_exact_accuracy": evals[s],
                                    "eval_cell_accuracy": 0.5}) + "\n")
        f.write('{"step": 600, "loss": 1.0, "lm_lo')  # a line cut by a kill
    return path


def metrics(final=None, steps=600, status="ok"):
    m = {"status": status, "steps": steps, "total_steps": 600}
    if final is not None:
        m["exact_accuracy"] = final
    return m


def test_crossing_is_the_first_evaluation_at_the_threshold(tmp_path):
    # 25 of 500 is exactly 5%: reaching the threshold counts as crossing it.
    log = L.read_train_log(write_log(tmp_path / "t.jsonl", {100: 0.0, 200: 0.01, 300: 25 / 500,
                                                           400: 0.02, 500: 0.3}))
    c = L.run_crossing(log, metrics(0.6), 0.05, seed=3)
    assert (c.step, c.crossed, c.evals, c.seed, c.budget) == (300, True, 5, 3, 600)


def test_a_seed_that_never_crosses_is_censored_at_its_budget(tmp_path):
    log = L.read_train_log(write_log(tmp_path / "t.jsonl", {100: 0.0, 300: 0.01, 500: 0.04}))
    c = L.run_crossing(log, metrics(0.045), 0.05)
    assert (c.step, c.crossed) == (600, False)
    # The final evaluation is the last observation: a seed that crosses only there crosses at
    # its final step.
    c = L.run_crossing(log, metrics(0.08), 0.05)
    assert (c.step, c.crossed) == (600, True)


def test_a_diverged_seed_is_censored_at_the_budget_not_at_its_divergence(tmp_path):
    log = L.read_train_log(write_log(tmp_path / "t.jsonl", {100: 0.0, 200: 0.0},
                                     train_steps=range(50, 251, 50)))
    c = L.run_crossing(log, metrics(None, steps=250, status="diverged"), 0.05, status="diverged")
    assert (c.step, c.crossed, c.status) == (600, False, "diverged")
    # A diverged run's metrics.json has no final evaluation to read, whatever it holds.
    c = L.run_crossing(log, metrics(0.4, steps=250, status="diverged"), 0.05, status="diverged")
    assert (c.step, c.crossed) == (600, False)


def test_a_log_without_periodic_evaluation_gives_no_crossing(tmp_path):
    log = L.read_train_log(write_log(tmp_path / "t.jsonl", {}))
    assert L.run_crossing(log, metrics(0.5), 0.05) is None
    assert L.run_crossing(pd.DataFrame(), None, 0.05) is None


# --------------------------------------------------------------------------------------
# Fraction crossed and median step
# --------------------------------------------------------------------------------------


def test_fraction_crossed_is_a_step_function_of_the_seeds():
    seeds = [crossing(100, True), crossing(200, True), crossing(600, False), crossing(600, False)]
    steps, fraction = L.km_crossed(seeds)
    assert list(steps) == [0, 100, 200, 600]
    assert list(fraction) == pytest.approx([0, 0.25, 0.5, 0.5])
    assert L.median_step(seeds) == 200


def test_median_is_not_reached_when_fewer_than_half_cross():
    seeds = [crossing(100, True)] + [crossing(600, False)] * 3
    assert math.isnan(L.median_step(seeds))
    assert math.isnan(L.median_step([]))


def test_default_threshold_without_a_scale_file():
    assert L.success_threshold("no_such_scale") == L.DEFAULT_SUCCESS_THRESHOLD == 0.05


# --------------------------------------------------------------------------------------
# A study: the report section and the figure
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study, manifest = write_example_study(root, n_test=50)
    return root, study, manifest


def with_evals(root: Path, manifest: pd.DataFrame, dest: Path) -> Path:
    """A copy of the example runs whose logs gain periodic evaluations: hrm cells cross at
    step 60 (seed 0), 80, 100; trm cells never cross before their final evaluation."""
    shutil.copytree(root, dest)
    for run in manifest.to_dict("records"):
        log = dest / run["run_dir"] / "train.jsonl"
        if not log.exists():
            continue
        first = 60 + 20 * int(run["seed"]) if run["model"] == "hrm" else 10_000
        with open(log, "a") as f:
            for s in range(20, 300, 20):
                f.write(json.dumps({"step": s, "eval_n": 50,
                                    "eval_exact_accuracy": 0.4 if s >= first else 0.0}) + "\n")
    return dest


def test_study_without_periodic_evaluations_says_so(example):
    root, study, manifest = example
    runs = collect_runs(manifest, root)
    result = L.learning_speed(study, runs, 0.05)
    assert not result.any_eval
    assert "No periodic evaluation logged" in L.section(result)


def test_study_section_and_figure(example, tmp_path):
    root, study, manifest = example
    root = with_evals(root, manifest, tmp_path / "runs")
    runs = collect_runs(manifest, root)
    result = L.learning_speed(study, runs, 0.05)
    by_label = {c.label: c for c in result.cells}
    hrm2 = by_label["hrm, n=2"]
    assert [(c.seed, c.step, c.crossed) for c in hrm2.crossings] == [(0, 60, True), (1, 80, True),
                                                                     (2, 100, True)]
    assert hrm2.median == 80
    # trm's seeds reach 5% only at their final evaluation (step 300).
    assert {c.step for c in by_label["trm, n=2"].crossings} == {300}
    # The contrasts are the study tables' own, in their order.
    tables = comparisons_table(study, runs)
    assert list(zip(result.tests["a"], result.tests["b"])) == list(zip(tables["a"], tables["b"]))
    model = result.tests[(result.tests["a"] == "hrm, n=2") & (result.tests["b"] == "trm, n=2")].iloc[0]
    assert model["logrank_z"] > 0 and model["p"] < 0.05
    text = L.section(result, "results/figures/example_depth.learning_speed.pdf")
    assert "## Learning speed" in text and "| sudoku | hrm, n=2 | 3/3 " in text
    assert "0: 60, 1: 80, 2: 100" in text and "example_depth.learning_speed.pdf" in text
    pdf, png = L.plot(result, L.figure_path(tmp_path / "figures" / "example_depth.pdf"))
    assert pdf.name == "example_depth.learning_speed.pdf" and pdf.exists() and png.exists()


def test_study_report_and_figure_from_the_pipeline(example, tmp_path, monkeypatch):
    from trm.results import pipeline

    root, study, manifest = example
    root = with_evals(root, manifest, tmp_path / "runs")
    monkeypatch.chdir(root)  # manifest run_dirs are relative to the working directory
    rows = manifest.drop(columns="scale").to_dict("records")  # the workflow's manifest rows
    paths = pipeline.study_tables(study, rows, "example", Path("results/tables"))
    report = Path(paths["md"]).read_text()
    assert report.index("## Learning speed") < report.index("## Failed seeds")
    assert "results/figures/example_depth.learning_speed.pdf" in report
    assert "**diverged**" in report  # hrm n=6 seed 1
    pipeline.study_figure(study, rows, "example", Path("results/figures/example_depth.pdf"))
    assert Path("results/figures/example_depth.learning_speed.png").exists()
