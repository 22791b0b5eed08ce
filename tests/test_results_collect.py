"""The runs table: every manifest row appears, with its status, metrics and provenance."""

import json
import math

import pandas as pd
import pytest

from trm.results.collect import (
    collect_runs,
    knob_columns,
    read_manifest,
    read_runs_table,
    accuracy_by_eval_steps,
    write_runs_table,
)
from trm.results.example_runs import write_example_study
from trm import config
from trm.studies import schema
from trm.model import flops


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study, manifest = write_example_study(root, n_test=100)
    return root, study, manifest, collect_runs(manifest, root)


def test_every_manifest_row_is_kept_with_its_status(example):
    root, study, manifest, runs = example
    assert len(runs) == len(manifest)
    counts = runs["status"].value_counts().to_dict()
    assert counts == {"ok": 13, "missing": 4, "diverged": 1}
    diverged = runs[runs["status"] == "diverged"].iloc[0]
    assert "non-finite" in diverged["note"] and diverged["diverged_at_step"] == 120
    missing = runs[runs["status"] == "missing"]
    assert missing["exact_accuracy"].isna().all()
    assert (missing["model.n_latent_steps"] == 6).all()


def test_metrics_depth_compute_and_provenance(example):
    _, _, _, runs = example
    ok = runs[runs["status"] == "ok"].iloc[0]
    assert 0 <= ok["exact_accuracy"] <= 1 and ok["n_test"] == 100
    assert ok["effective_depth"] == 24  # hrm n=2: T(n+1) * layers = 2 * 3 * 4
    assert ok["n_supervision"] == 4 and ok["eval_n_supervision"] == 4
    # No FLOPs in metrics.json: counted from the spec, so compute is in FLOPs.
    assert ok["compute_unit"] == "flops" and ok["compute"] == ok["train_flops"] > 0
    assert ok["data_kind"] == "generated" and "generator" in ok["data_source"]
    assert bool(ok["has_predictions"])
    assert json.loads(ok["spec_json"])["model"]["layers"] == 4


def test_the_runs_table_has_the_columns_planning_checks_figures_against(example):
    """Figures are checked against schema.RUN_COLUMNS before training: the table collect
    writes has exactly those columns, besides the knobs, the JSON ones and task metrics."""
    _, _, manifest, runs = example
    written = set(runs.columns) - set(knob_columns(manifest)) - set(schema.RUN_JSON_COLUMNS)
    assert list(runs.columns[-3:]) == list(schema.RUN_JSON_COLUMNS)
    assert written == schema.RUN_COLUMNS - set(schema.TASK_METRIC_COLUMNS)


def test_unreadable_metrics_and_unknown_status_count_as_failed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text("{not json")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"status": "weird", "seed": 1}))
    manifest = pd.DataFrame(
        [
            {
                "study": "s",
                "task": "sudoku",
                "model": "trm",
                "scale": "x",
                "sig": "abc",
                "seed": 0,
                "run_dir": "a",
            },
            {
                "study": "s",
                "task": "sudoku",
                "model": "trm",
                "scale": "x",
                "sig": "abc",
                "seed": 0,
                "run_dir": "b",
            },
        ]
    )
    runs = collect_runs(manifest, tmp_path)
    assert list(runs["status"]) == ["failed", "failed"]
    assert "unreadable" in runs.loc[0, "note"]
    assert "unknown status" in runs.loc[1, "note"] and "seed=1" in runs.loc[1, "note"]


def test_runs_csv_round_trip_keeps_identifiers_as_text(example, tmp_path):
    _, _, manifest, _ = example
    manifest = manifest.copy()
    manifest.loc[0, "sig"] = "1234e56789"  # would parse as a float
    manifest.loc[1, "sig"] = "0012345678"  # would lose its leading zeros
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    runs = collect_runs(read_manifest(tmp_path / "manifest.csv"), tmp_path / "nowhere")
    path = write_runs_table(runs, tmp_path / "tables" / "runs.csv")
    back = read_runs_table(path)
    assert set(back["sig"]) >= {"1234e56789", "0012345678"}
    assert (back["status"] == "missing").all()  # root has no run dirs
    assert write_runs_table(back, tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_accuracy_by_eval_steps_merges_per_step_and_test_time(example):
    _, _, _, runs = example
    long = accuracy_by_eval_steps(runs[runs["status"] == "ok"].head(1))
    assert list(long["eval_steps"]) == [1, 2, 3, 4, 8, 16]  # per_step 1..4 + test_time 1,2,4,8,16
    assert long["exact_accuracy"].is_monotonic_increasing
    assert accuracy_by_eval_steps(runs[runs["status"] == "missing"]).empty


def test_manifest_without_required_columns_is_rejected():
    with pytest.raises(ValueError, match="run_dir"):
        collect_runs(
            pd.DataFrame(
                {"study": [], "task": [], "model": [], "scale": [], "sig": [], "seed": []}
            ),
            ".",
        )


def test_empty_manifest_gives_empty_table():
    runs = collect_runs(
        pd.DataFrame(columns=["study", "task", "model", "scale", "sig", "seed", "run_dir"]), "."
    )
    assert runs.empty and "status" in runs.columns and not math.isnan(len(runs))


def test_flops_are_counted_from_each_runs_spec_and_steps(example):
    """train_flops = steps actually run x global batch x one step's FLOPs per sample;
    test_flops_per_puzzle = N_sup at evaluation x one no-grad step; both from the spec."""
    _, _, _, runs = example
    ran = runs[runs["status"].isin(["ok", "diverged"])]
    for _, run in ran.drop_duplicates(["sig", "status"]).iterrows():  # one count per cell
        spec = json.loads(run["spec_json"])
        model = config.from_dict(config.ModelSpec, spec["model"])
        vocab, seq_len = 6 + 2, 6 * 6  # generated 6x6 Sudoku: digits + pad + blank
        batch = spec["train"]["global_batch_size"]
        assert run["train_flops"] == flops.train_flops(model, vocab, seq_len, batch, run["steps"])
        assert run["test_flops_per_puzzle"] == flops.test_flops_per_puzzle(model, vocab, seq_len, 4)
    hrm6 = runs[(runs["model"] == "hrm") & (runs["model.n_latent_steps"] == 6)]
    ok, diverged = (hrm6[hrm6["status"] == s].iloc[0] for s in ("ok", "diverged"))
    assert ok["steps"] == 300 and diverged["steps"] == 120  # the diverged run stopped early
    assert diverged["train_flops"] * 300 == ok["train_flops"] * 120
    assert diverged["test_flops_per_puzzle"] == ok["test_flops_per_puzzle"]
    # Missing runs ran nothing.
    assert runs.loc[runs["status"] == "missing", "train_flops"].isna().all()
    # HRM's Q-learning pass and 4-layer nets make its step dearer than TRM's at equal n.
    at2 = runs[(runs["status"] == "ok") & (runs["model.n_latent_steps"] == 2)]
    by_model = at2.groupby("model")["train_flops"].first()
    assert by_model["hrm"] > by_model["trm"]


def test_params_with_and_without_the_puzzle_table(example, tmp_path):
    _, _, manifest, runs = example
    ok = runs[runs["status"] == "ok"]
    assert (ok["params_with_puzzle_embedding"] == ok["params"] + ok["puzzle_embedding_params"]).all()
    # A run with a table: the total counts it, "params" does not.
    # Named configs that do not exist, so no spec can be resolved for this row.
    row = {**manifest.iloc[0].to_dict(), "model": "no_such_model", "scale": "no_such_scale"}
    run_dir = tmp_path / row["run_dir"]
    run_dir.mkdir(parents=True)
    metrics = {"status": "ok", "params": 1000, "puzzle_embedding_params": 512 * 7,
               "forward_calls_per_step": 6, "grad_calls_per_step": 2, "steps": 10}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    one = collect_runs(pd.DataFrame([row]), tmp_path).iloc[0]
    assert one["params"] == 1000 and one["params_with_puzzle_embedding"] == 1000 + 512 * 7
    # No spec anywhere (no metrics spec, no spec.yaml, no such configs): call equivalents.
    assert one["spec_json"] == "" and math.isnan(one["train_flops"])
    assert one["compute_unit"] == "call_equivalents" and one["compute"] == (6 + 2 * 2) * 10


def test_matched_compute_notes_name_the_cells_of_equal_compute():
    from trm.results.figures import matched_compute_notes

    rows = pd.DataFrame([
        {"status": "ok", "task": "sudoku", "model": "trm", "sig": "a", "model.n_cycles": 3, "compute": 1.0e9},
        {"status": "ok", "task": "sudoku", "model": "trm", "sig": "a", "model.n_cycles": 3, "compute": 1.0e9},
        {"status": "ok", "task": "sudoku", "model": "hrm", "sig": "b", "model.n_cycles": 2, "compute": 1.004e9},
        {"status": "ok", "task": "sudoku", "model": "trm", "sig": "c", "model.n_cycles": 6, "compute": 2.0e9},
        {"status": "failed", "task": "sudoku", "model": "trm", "sig": "d", "model.n_cycles": 9, "compute": 2.0e9},
        {"status": "ok", "task": "maze", "model": "trm", "sig": "e", "model.n_cycles": 3, "compute": 2.0e9},
    ])
    notes = matched_compute_notes(rows, "compute", "training compute", "task")
    assert len(notes) == 1  # a ~ b within 1%; c alone (d failed; e is another task)
    assert notes[0] == "Matched training compute (sudoku: 1e+09 FLOPs): trm, T=3; hrm, T=2"
    assert matched_compute_notes(rows, "test_flops_per_puzzle", "test compute", "task") == []
