"""Failed seeds diagnosed: each class from a constructed train log, and a study's section."""

import math

import numpy as np
import pandas as pd
import pytest

from trm.results import diagnosis as D
from trm.results.collect import collect_runs
from trm.results.example_runs import write_example_study

STEPS = list(range(50, 601, 50))


def log(loss, halted_frac=None, mean_segments=None, train_exact=None, evals=None) -> pd.DataFrame:
    """A train log as trm.train.loop writes it: per logged step lm_loss, halted_frac,
    mean_segments, train_exact (callables of the step, or constants); periodic evaluations
    {step: exact} as their own records."""

    def at(v, s):
        return v(s) if callable(v) else v

    records = [{"step": s, "loss": at(loss, s) + 0.01, "lm_loss": at(loss, s),
                "halted_frac": at(0.25 if halted_frac is None else halted_frac, s),
                "mean_segments": at(4.0 if mean_segments is None else mean_segments, s),
                "train_exact": at(0.0 if train_exact is None else train_exact, s)} for s in STEPS]
    records += [{"step": s, "eval_n": 500, "eval_exact_accuracy": e} for s, e in (evals or {}).items()]
    return pd.DataFrame(records)


def metrics(final=0.0, status="ok", n_sup=4, halting="bce", **extra):
    return {"status": status, "steps": 600, "total_steps": 600, "exact_accuracy": final,
            "spec": {"model": {"n_supervision": n_sup, "halting": halting}}, **extra}


def falling(start, end, until):
    """Loss falling linearly from `start` to `end` by step `until`, flat after."""
    return lambda s: start + (end - start) * min(s, until) / until


def test_label_prior_loss_flat_from_the_first_step():
    d = D.diagnose(log(lambda s: 0.6931 - 1e-6 * s), metrics())
    assert d.classes == ["label prior"]
    assert d.evidence["loss_max_dev"] < D.PRIOR_BAND
    assert "0.693 → 0.693 (within 0.1% of the first throughout)" in D.evidence_text(d.evidence)


def test_loss_plateau_after_a_fall():
    d = D.diagnose(log(falling(2.0, 0.8, 250)), metrics())
    assert d.classes == ["loss plateau"]
    assert abs(d.evidence["last_half_change"]) < D.PLATEAU_CHANGE


def test_halted_early_on_most_steps():
    d = D.diagnose(log(falling(2.0, 0.8, 250), halted_frac=1.0, mean_segments=1.0), metrics())
    assert d.primary == "halted early" and "loss plateau" in d.classes
    assert d.evidence["early_halt_steps"] == len(STEPS)
    assert f"on {len(STEPS)}/{len(STEPS)} logged steps" in D.evidence_text(d.evidence)


def test_halting_every_step_is_no_trap_when_halting_cannot_act():
    # N_sup = 1: every slot halts after its one segment by construction.
    flat = log(falling(2.0, 0.8, 250), halted_frac=1.0, mean_segments=1.0)
    assert "halted early" not in D.diagnose(flat, metrics(n_sup=1)).classes
    assert "halted early" not in D.diagnose(flat, metrics(halting="none")).classes
    # Early halting on a minority of the logged steps is not the trap either.
    few = log(falling(2.0, 0.8, 250), halted_frac=lambda s: 1.0 if s <= 150 else 0.25,
              mean_segments=lambda s: 1.0 if s <= 150 else 4.0)
    assert "halted early" not in D.diagnose(few, metrics()).classes


def test_late_crossing_from_the_periodic_evaluation():
    evals = {100: 0.0, 200: 0.0, 300: 0.0, 400: 0.0, 500: 0.01, 550: 0.025}
    d = D.diagnose(log(falling(2.0, 0.8, 250), evals=evals), metrics(final=0.04))
    assert d.primary == "late crossing"
    assert d.evidence["late_source"] == "periodic evaluation"
    # 500, 550 and the final 600 lie on a line rising 1.5 points per 50 steps: 3 points.
    assert d.evidence["late_rise"] == pytest.approx(0.03)
    assert d.evidence["best_periodic_exact"] == 0.025


def test_late_crossing_from_train_exact_without_evaluations():
    d = D.diagnose(log(falling(2.0, 0.8, 250), train_exact=lambda s: 0.0 if s < 500 else (s - 450) / 5000),
                   metrics(final=0.02))
    assert "late crossing" in d.classes and d.evidence["late_source"] == "train_exact"


def test_diverged_and_failed_come_from_the_status():
    d = D.diagnose(log(falling(2.0, 0.8, 250)), metrics(status="diverged", diverged_at_step=120,
                                                        error="loss became non-finite"))
    assert d.primary == "diverged" and d.evidence["diverged_at_step"] == 120
    assert "diverged at step 120" in D.evidence_text(d.evidence)
    # The shape rules read finished runs only: a diverged run is not also a 'loss plateau'.
    assert d.classes == ["diverged"]
    assert D.diagnose(pd.DataFrame(), {"status": "failed", "error": "boom"}, "failed").classes == ["failed"]


def test_a_loss_still_falling_with_exact_flat_is_still_learning():
    """Full BPTT's failed Sudoku seeds at tiny: cells mostly right, no puzzle whole, loss
    still falling by a fifth over the last half."""
    d = D.diagnose(log(lambda s: 2.0 - 0.002 * s), metrics())
    assert d.classes == ["loss still falling"]
    assert d.evidence["last_half_change"] > D.PLATEAU_CHANGE
    # A loss that rises over the last half is not still learning.
    assert D.diagnose(log(lambda s: 0.5 + 0.002 * s), metrics()).classes == ["unclassified"]


def test_halting_numbers_are_left_out_where_halting_cannot_act():
    d = D.diagnose(log(falling(2.0, 0.8, 250), halted_frac=1.0, mean_segments=1.0), metrics(n_sup=1))
    assert "halted early" not in d.classes and "early_halt_steps" not in d.evidence


def test_too_short_a_log_decides_nothing():
    d = D.diagnose(log(0.6931).iloc[:2], metrics())
    assert d.classes == ["unclassified"] and "loss_first" not in d.evidence


# --------------------------------------------------------------------------------------
# A study's failed seeds
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study, manifest = write_example_study(root, n_test=50)
    return root, study, collect_runs(manifest, root)


def test_study_lists_every_seed_below_the_threshold(example):
    root, study, runs = example
    ok = runs[runs["status"] == "ok"]
    threshold = float(np.median(ok["exact_accuracy"]))
    failed = D.failed_seeds(study, runs, threshold)
    below = ok[ok["exact_accuracy"] < threshold]
    diverged = runs[runs["status"] == "diverged"]
    assert len(failed) == len(below) + len(diverged)  # missing runs are not failed seeds
    assert [f["classes"][0] for f in failed if f["status"] == "diverged"] == ["diverged"] * len(diverged)
    text = D.section(failed, threshold)
    assert "## Failed seeds" in text and "**diverged**" in text
    assert f"{len(failed)} seed(s) below" in text


def test_study_with_every_seed_past_the_threshold(example):
    root, study, runs = example
    finished = runs[runs["status"] != "diverged"]
    assert D.failed_seeds(study, finished, 0.0) == []
    assert "Every finished seed reached" in D.section([], 0.05)
    assert math.isfinite(D.PRIOR_BAND)


def test_label_prior_from_the_input_free_prediction_although_the_loss_wandered():
    """The reach seeds of n2 T2 that never left the prior: the loss wanders by 15% while
    the cell accuracy is exactly what each position's most common label gives."""
    wandering = lambda s: 0.715 - 0.1 * math.sin(s / 100)  # noqa: E731
    d = D.diagnose(log(wandering), metrics(cell_accuracy=0.684, n_sup=1), prior=0.684)
    assert d.primary == "label prior"
    assert "cell accuracy 68.4% against 68.4% for the input-free prediction" in D.evidence_text(d.evidence)
    # A seed that learned something the prior does not give is not at the prior.
    d = D.diagnose(log(wandering), metrics(cell_accuracy=0.75, n_sup=1), prior=0.684)
    assert "label prior" not in d.classes


def test_prior_cell_accuracy_is_each_positions_most_common_label(tmp_path):
    from trm.data import official_format as fmt

    # Two positions; position 0: labels 2, 2, 4 (best constant right 2 of 3); position 1:
    # labels 4, 0 (ignored), 4 (right 2 of 2): 4 of 5 non-ignored labels.
    labels = np.array([[2, 4], [2, 0], [4, 4]], np.uint8)
    sb = fmt.SplitBuilder(2)
    sb.add_group_of_single_examples(np.ones_like(labels), labels)
    arrays = sb.finish()
    for split in fmt.SPLITS:
        fmt.write_arrays(tmp_path / split, arrays.arrays())
        fmt.write_json(tmp_path / split / "dataset.json",
                       fmt.split_metadata(arrays, vocab_size=5, num_puzzle_identifiers=1))
    fmt.write_json(tmp_path / "identifiers.json", ["<blank>"])
    assert D.prior_cell_accuracy(tmp_path) == pytest.approx(4 / 5)
    assert D.prior_cell_accuracy(tmp_path / "missing") is None
