"""Study tables: every cell is listed (missing / failed / diverged included), best values are
bold, comparisons are paired when predictions exist and Holm-corrected."""

import shutil

import pandas as pd
import pytest

from trm.results.collect import collect_runs
from trm.results.example_runs import write_example_study
from trm.results.tables import comparisons_table, summary_table, write_study_tables


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study, manifest = write_example_study(root, n_test=100)
    return root, study, manifest, collect_runs(manifest, root)


def test_summary_has_one_row_per_cell_with_status(example):
    _, study, _, runs = example
    summary = summary_table(study, runs)
    assert len(summary) == 6  # 2 models x 3 values of n
    by_cell = summary.set_index(["model", "model.n_latent_steps"])
    assert by_cell.loc[("trm", 6), "status"] == "missing"
    assert by_cell.loc[("trm", 6), "exact_accuracy_n"] == 0
    assert by_cell.loc[("hrm", 6), "status"] == "partial"
    assert by_cell.loc[("hrm", 6), "status_text"] == "1/3 ok; 1 diverged, 1 missing"
    assert by_cell.loc[("hrm", 6), "exact_accuracy_n"] == 1  # the diverged run is not averaged
    assert by_cell.loc[("hrm", 2), "exact_accuracy_ci_method"] == "t"
    assert summary["best"].sum() == 1
    best = summary.loc[summary["best"]].iloc[0]
    assert best["exact_accuracy_mean"] == summary["exact_accuracy_mean"].max()


def test_written_tables_list_unfinished_cells(example, tmp_path):
    _, study, _, runs = example
    paths = write_study_tables(study, runs, tmp_path)
    assert {p.name for p in paths.values()} == {
        "example_depth.csv",
        "example_depth.md",
        "example_depth.tex",
        "example_depth_tests.csv",
    }
    md, tex = paths["md"].read_text(), paths["tex"].read_text()
    assert "missing (0/3)" in md and "1/3 ok; 1 diverged, 1 missing" in md
    assert "missing (0/3)" in tex
    assert md.count("**") >= 2 and r"\textbf{" in tex  # best value in bold
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex
    assert r"example\_depth" in tex  # escaped for LaTeX
    assert len(pd.read_csv(paths["csv"])) == 6


def test_comparisons_are_paired_with_predictions_and_holm_corrected(example):
    _, study, _, runs = example
    tests = comparisons_table(study, runs)
    model_rows = tests[tests["factor"] == "model"]
    assert len(model_rows) == 3  # hrm vs trm at n = 2, 4, 6
    paired = tests[tests["test"] == "mcnemar_exact"]
    assert len(paired) >= 4 and (paired["n_pairs"] >= 1).all()
    assert (paired["a_only"] + paired["b_only"] > 0).all()
    none = tests[tests["test"] == "none"]
    assert len(none) == 3 and none["note"].str.contains("missing").all()  # trm n=6 is all missing
    finite = tests["p"].notna()
    assert (tests.loc[finite, "p_holm"] >= tests.loc[finite, "p"]).all()
    assert tests.loc[~finite, "p_holm"].isna().all()


def test_comparisons_fall_back_to_welch_without_predictions(example, tmp_path):
    root, study, manifest, _ = example
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for f in copy.rglob("predictions.npz"):
        f.unlink()
    tests = comparisons_table(study, collect_runs(manifest, copy))
    done = tests[tests["test"] != "none"]
    # Without predictions the across-seed test is the only one: paired by seed where the
    # cells share two or more seeds, Welch otherwise.
    assert set(done["test"]) <= {"paired_t", "welch"} and "paired_t" in set(done["test"])
    assert (done["test"] == done["seed_test"]).all()
    both = done[done["seed_n"] >= 2]
    assert both["p"].notna().all() and (both["p"] == both["seed_p"]).all()


def test_study_with_only_missing_runs_still_renders(example, tmp_path):
    _, study, manifest, _ = example
    runs = collect_runs(manifest, tmp_path / "empty_root")
    paths = write_study_tables(study, runs, tmp_path / "out")
    md = paths["md"].read_text()
    assert md.count("missing (0/3)") == 6
    assert "no finished runs" in paths["tests"].read_text()
    assert r"\begin{tabular}" in paths["tex"].read_text()


def test_study_absent_from_runs_table_renders_empty(tmp_path, example):
    _, study, _, runs = example
    other = dict(study, name="not_run_yet")
    paths = write_study_tables(other, runs, tmp_path)
    assert "No runs of this study" in paths["md"].read_text()
    assert pd.read_csv(paths["tests"]).empty


def test_contrasts_use_study_factors():
    from trm.results import cells as cell_tools
    from trm.results.tables import contrasts

    # trm_ablations-like: an include cell sets a knob the other cells leave blank, so
    # trm_mlp vs trm_act is a model contrast and the include cell a halting contrast.
    cells = [
        {"task": "sudoku", "model": "trm_mlp", "model.halting": None},
        {"task": "sudoku", "model": "trm_act", "model.halting": None},
        {"task": "sudoku", "model": "trm_mlp", "model.halting": "none"},
    ]
    factors = cell_tools.study_factors(
        {"include": [{"model": "trm_mlp", "model.halting": "none"}]}, ["model.halting"]
    )
    assert factors == [["model"], ["model.halting"]]
    assert contrasts(cells, factors) == [(0, 1, 0), (0, 2, 1)]
    # Zip axes change together: one factor, labelled with both knobs.
    study = {"zip": {"model.n_latent_steps": [1, 2], "model.n_cycles": [1, 2]}}
    factors = cell_tools.study_factors(study, ["model.n_latent_steps", "model.n_cycles"])
    assert factors == [["model"], ["model.n_latent_steps", "model.n_cycles"]]
    assert cell_tools.factor_label(factors[1]) == "n + T"
    zipped = [
        {"task": "sudoku", "model": "trm", "model.n_latent_steps": k, "model.n_cycles": k}
        for k in (1, 2)
    ]
    assert contrasts(zipped, factors) == [(0, 1, 1)]
    # hrm at its own n=2, T=2 vs trm with n=2, T=2 set by the study: the values that ran
    # are equal, so only the model changed; vs trm at n=1, T=1 two factors changed.
    hrm = {
        "task": "sudoku",
        "model": "hrm",
        "model.n_latent_steps": None,
        "model.n_cycles": None,
        "resolved": {"model.n_latent_steps": 2, "model.n_cycles": 2},
    }
    trm = [
        dict(
            c,
            resolved={
                "model.n_latent_steps": c["model.n_latent_steps"],
                "model.n_cycles": c["model.n_cycles"],
            },
        )
        for c in zipped
    ]
    assert contrasts([hrm] + trm, factors) == [(0, 2, 0), (1, 2, 1)]


def test_scale_tweak_of_a_study_is_applied(example, tmp_path):
    _, study, _, runs = example
    tweaked = dict(study, models=["trm", "hrm"], scales={"example": {"models": ["hrm", "trm"]}})
    summary = summary_table(tweaked, runs)
    assert list(summary["model"].unique()) == ["hrm", "trm"]  # order of the scale's list


def test_real_studies_render_with_no_runs(tmp_path):
    """Every study of the repository, expanded by trm.studies at the tiny scale, renders
    its tables before any run exists (all cells listed as missing)."""
    from trm import studies as S

    try:
        loaded, planned = S.manifest("all", "tiny")
    except Exception as e:  # the configs are edited concurrently; this test is about us
        pytest.skip(f"studies do not expand right now: {e}")
    manifest = pd.DataFrame(S.manifest_rows(planned))
    manifest.insert(3, "scale", "tiny")
    runs = collect_runs(manifest, tmp_path / "no_runs_here")
    assert (runs["status"] == "missing").all() and runs["effective_depth"].notna().all()
    for study in loaded.values():
        paths = write_study_tables(study, runs, tmp_path / "tables")
        summary = pd.read_csv(paths["csv"])
        assert len(summary) >= 1 and (summary["status"] == "missing").all()


def test_tables_are_byte_identical_on_rerun(example, tmp_path):
    _, study, _, runs = example
    first = write_study_tables(study, runs, tmp_path / "a")
    second = write_study_tables(study, runs, tmp_path / "b")
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), key


def test_cells_follow_the_studys_order_and_ties_are_not_bold():
    from trm.results.tables import _order_cells

    study = {"tasks": ["sudoku"], "models": ["trm_mlp"],
             "grid": {"model.grad_steps": ["one_step", "last_cycle", "all"]}}
    summary = pd.DataFrame({"task": ["sudoku"] * 3, "model": ["trm_mlp"] * 3,
                            "model.grad_steps": ["all", "last_cycle", "one_step"],
                            "sig": ["a", "b", "c"]})
    ordered = _order_cells(summary, study, summary, ["model.grad_steps"])
    assert list(ordered["model.grad_steps"]) == ["one_step", "last_cycle", "all"]  # not a-z


def test_all_tied_cells_are_not_bold(example):
    _, study, _, runs = example
    flat = runs.copy()
    flat["exact_accuracy"] = 0.0  # every cell at the floor: nothing is best
    assert not summary_table(study, flat)["best"].any()


def test_wide_cells_are_listed_with_their_seeds(example, tmp_path):
    """A cell whose seeds split between the floor and the rest is named under the power line
    with every seed's value; steady cells are not."""
    from trm.results.pipeline import resolution_section, spread_summary
    from trm.results.tables import wide_cells

    _, study, _, runs = example
    assert wide_cells(study, runs) == []  # the constructed cells are steady (sd < 10 pp)
    runs = runs.copy()
    cell = (runs["model"] == "trm") & (runs["model.n_latent_steps"] == 2) & (runs["status"] == "ok")
    assert cell.sum() == 3
    runs.loc[cell, "exact_accuracy"] = [0.80, 0.0, 0.74]
    wide = wide_cells(study, runs)
    assert [(w["task"], w["cell"]) for w in wide] == [("sudoku", "trm, n=2")]
    assert wide[0]["seeds"] == {0: 0.80, 1: 0.0, 2: 0.74}
    assert abs(wide[0]["sd"] - pd.Series([0.80, 0.0, 0.74]).std()) < 1e-12
    text = spread_summary(wide)
    assert "- sudoku: trm, n=2: sd 44.6 pp (seed 0: 80.0, seed 1: 0.0, seed 2: 74.0)" in text
    paths = write_study_tables(study, runs, tmp_path)
    section = resolution_section(study, "tiny", paths["tests"], text)
    assert section.index("**Power:**") < section.index("**Wide cells:**")
    assert spread_summary([]) == "" and "Wide cells" not in resolution_section(study, "tiny", paths["tests"])


def test_knobs_a_network_never_reads_do_not_split_a_contrast():
    """depth_scaling's reach rows: a one-pass network (direct, 2 layers) against TRM at n1 T1
    is a model contrast, although the study set n and T only on TRM and direct_layers only
    on the direct cell: a one-pass network has no n or T, TRM no direct_layers."""
    from trm.results import cells as cell_tools
    from trm.results.tables import contrasts

    knobs = ["model.n_latent_steps", "model.n_cycles", "model.direct_layers"]
    study = {"zip": {"model.n_latent_steps": [1, 2], "model.n_cycles": [1, 2]},
             "include": [{"model": "direct", "model.direct_layers": 2}]}
    factors = cell_tools.study_factors(study, knobs)

    def cell(model, arch, n, T, layers, set_n=True):
        return {"task": "reach", "model": model, "arch": arch,
                "model.n_latent_steps": n if set_n else None, "model.n_cycles": T if set_n else None,
                "model.direct_layers": layers if not set_n else None,
                "resolved": {"model.n_latent_steps": n, "model.n_cycles": T,
                             "model.direct_layers": layers}}

    one_pass = cell("direct", "direct", 2, 2, 2, set_n=False)
    trm = [cell("trm_mlp", "recursive", k, k, 4) for k in (1, 2)]
    pairs = contrasts([one_pass] + trm, factors)
    model_factor = factors.index(["model"])
    assert (0, 1, model_factor) in pairs and (0, 2, model_factor) in pairs
    # Without the architecture the same cells differ in three factors: no contrast.
    blind = [{k: v for k, v in c.items() if k != "arch"} for c in [one_pass] + trm]
    assert all(0 not in p[:2] for p in contrasts(blind, factors))
