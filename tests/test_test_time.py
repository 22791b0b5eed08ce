"""Test-time compute studies: planning checks, the PTRM-style trajectories, ARC vote subsets,
the tables (missing runs shown), and the workflow on a fresh clone."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from trm import config as C
from trm import studies as S
from trm.studies import test_time as TT
from trm.train import arc_eval
from trm.train import test_time as TTE
from trm.train.evaluate import evaluate

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


# --------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------


@pytest.fixture
def config_dir(tmp_path):
    dst = tmp_path / "configs"
    shutil.copytree(REPO / "configs", dst)
    return dst


def _write(config_dir: Path, body: dict) -> Path:
    path = config_dir / "studies" / "tt_probe.yaml"
    path.write_text(yaml.safe_dump({"name": "tt_probe", "kind": "test_time", **body}))
    return path


GOOD = {"source": [{"study": "depth_scaling", "cells": [{"model": "trm_mlp"}], "seeds": [0]}],
        "settings": {"max_examples": 8, "depths": [{"n_latent_steps": 1, "n_cycles": 1}]}}


def test_plan_selects_the_named_cells_and_seeds_under_its_own_name(config_dir):
    _write(config_dir, GOOD)
    studies, runs = S.manifest("tt_probe", "smoke", config_dir)
    _, source = S.manifest("depth_scaling", "smoke", config_dir)
    want = {r.run_dir for r in source if r.model == "trm_mlp" and r.seed == 0}
    assert {r.run_dir for r in runs} == want and want
    assert {r.study for r in runs} == {"tt_probe"}
    study = studies["tt_probe"]
    assert study["settings"]["trajectories"] == [1]  # defaults filled in
    assert {e["source_study"] for e in study["source_runs"]} == {"depth_scaling"}
    # The figure targets: one per source study.
    assert TT.targets(study) == ["results/figures/tt_probe/depth_scaling.pdf"]


def test_a_run_named_by_two_sources_is_evaluated_once(config_dir):
    _write(config_dir, {"source": [{"study": "depth_scaling", "cells": [{"model": "trm_mlp"}]},
                                   {"study": "hrm_vs_trm", "cells": [{"model": "trm_mlp"}]}]})
    studies, runs = S.manifest("tt_probe", "smoke", config_dir)
    dirs = [r.run_dir for r in runs]
    assert len(dirs) == len(set(dirs))
    entries = studies["tt_probe"]["source_runs"]
    assert len(entries) > len(dirs)  # the shared cell is listed under both sources


@pytest.mark.parametrize("body, words", [
    ({**GOOD, "sources": []}, ["unknown key 'sources'"]),
    ({**GOOD, "source": [{"study": "no_such_study"}]}, ["no study named 'no_such_study'"]),
    ({**GOOD, "source": [{"study": "depth_scaling", "cells": [{"model": "hrm"}]}]},
     ["matches no cell", "depth_scaling"]),
    ({**GOOD, "source": [{"study": "depth_scaling", "cells": [{"model.layers": 3}]}]},
     ["'model.layers' is not a key that 'depth_scaling' varies"]),
    ({**GOOD, "source": [{"study": "depth_scaling", "seeds": [7]}]}, ["has no seed 7"]),
    ({**GOOD, "settings": {"noise_sigma": [-0.1]}}, ["noise_sigma", ">= 0"]),
    ({**GOOD, "settings": {"trajectories": [0, 2]}}, ["trajectories", ">= 1"]),
    ({**GOOD, "settings": {"depths": [{"n": 2, "T": 2}]}}, ["depths", "n_latent_steps"]),
    ({**GOOD, "settings": {"max_exmples": 5}}, ["unknown key 'settings.max_exmples'"]),
    ({**GOOD, "scales": {"smoke": {"settings": {"arc_votes": [0]}}}}, ["scales.smoke.settings.arc_votes"]),
    ({**GOOD, "scales": {"smoke": {"name": "other"}}}, ["unknown key 'scales.smoke.name'"]),
    ({**GOOD, "source": [{"study": "depth_scaling", "seed": [0]}]}, ["unknown key 'source[0].seed'"]),
    ({**GOOD, "kind": "test-time"}, ["'kind' must be 'test_time'"]),
])
def test_bad_test_time_study_is_refused_at_planning(config_dir, body, words):
    path = _write(config_dir, body)
    with pytest.raises(C.SpecError) as e:
        S.manifest("tt_probe", "smoke", config_dir)
    for w in [str(path), *words]:
        assert w in str(e.value), (w, str(e.value))


def test_a_test_time_study_cannot_be_a_source(config_dir):
    _write(config_dir, GOOD)
    other = config_dir / "studies" / "tt_other.yaml"
    other.write_text(yaml.safe_dump({"name": "tt_other", "kind": "test_time",
                                     "source": [{"study": "tt_probe"}]}))
    with pytest.raises(C.SpecError, match="sources must be training studies"):
        S.manifest("tt_other", "smoke", config_dir)


def test_the_shipped_study_plans_at_every_scale():
    for scale in C.available("scales"):
        studies, runs = S.manifest("test_time", scale)
        assert runs and studies["test_time"]["source_runs"], scale


# --------------------------------------------------------------------------------------
# Trajectories: plain evaluation exactly at K=1, sigma=0; seeded noise
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_model(smoke_data):
    from trm.data.dataset import load_split
    from trm.model import build_model

    spec = C.resolve("trm_mlp", "sudoku", "smoke", {"model": {"n_latent_steps": 2, "n_cycles": 2}})
    test = load_split(smoke_data, "test")
    torch.manual_seed(0)
    model = build_model(spec.model, vocab_size=int(test.meta["vocab_size"]),
                        seq_len=int(test.meta["seq_len"]),
                        num_puzzle_ids=int(test.meta.get("num_puzzle_identifiers", 1)))
    # The halting head starts at zero weights (a constant logit): give it some, so that
    # trajectories differ in confidence as a trained head's do.
    with torch.no_grad():
        model.q_head.weight.normal_(0.0, 0.5)
    return model, test


def test_one_trajectory_without_noise_is_plain_evaluation(smoke_model):
    model, test = smoke_model
    idx = np.arange(test.num_examples)
    plain = evaluate(model, test, 3, 8, CPU, indices=idx)
    traj = TTE.evaluate_trajectories(model, test, idx, 3, 8, CPU, 1, 0.0, None)
    assert np.array_equal(traj["correct"][0], plain["correct"][2])
    sel = TTE.select_by_halting(traj["correct"], traj["q_halt"], 1)
    assert sel["exact_accuracy"] == plain["exact_accuracy"][2]


def test_noise_is_seeded_and_changes_the_trajectories(smoke_model):
    model, test = smoke_model
    idx = np.arange(test.num_examples)

    def run(seed, sigma):
        return TTE.evaluate_trajectories(model, test, idx, 2, 8, CPU, 3, sigma,
                                         TTE.noise_generator(seed, sigma, CPU))

    a, b, c = run(0, 0.5), run(0, 0.5), run(1, 0.5)
    assert np.array_equal(a["q_halt"], b["q_halt"])  # reproducible
    assert not np.array_equal(a["q_halt"], c["q_halt"])  # another seed, other noise
    assert not np.array_equal(a["q_halt"][0], a["q_halt"][1])  # trajectories differ
    clean = TTE.evaluate_trajectories(model, test, idx, 2, 8, CPU, 1, 0.0, None)
    assert not np.array_equal(a["q_halt"][0], clean["q_halt"][0])


def test_selection_keeps_the_most_confident_trajectory():
    correct = np.array([[True, False, False], [False, True, False]])
    q = np.array([[0.1, 2.0, -1.0], [0.5, 1.0, -3.0]])
    sel = TTE.select_by_halting(correct, q, 2)
    # puzzle 0 picks trajectory 1 (wrong), puzzle 1 trajectory 0 (wrong), puzzle 2 trajectory 0.
    assert sel["exact_accuracy"] == 0.0
    assert sel["oracle_accuracy"] == pytest.approx(2 / 3)
    assert sel["mean_trajectory_accuracy"] == pytest.approx(2 / 6)
    assert TTE.select_by_halting(correct, q, 1)["exact_accuracy"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------------------
# ARC: voting over the first m variants
# --------------------------------------------------------------------------------------


def test_vote_subsets_match_full_voting_and_use_only_the_first_variants():
    from test_eval import TableModel, _arc_fixture

    names, split, preds = _arc_fixture()
    q = np.zeros((2, len(preds)))
    model = TableModel(np.stack([preds, preds]), q, vocab=12)
    full = arc_eval.ArcScorer(names, split, steps=[2])
    subset = TTE.ArcVoteSubsetScorer(names, split, 2, [1, 2, 3])
    ev = evaluate(model, split, 2, 4, CPU, scorers=[full, subset])
    by_m = ev["scorers"]["arc_votes"]
    assert by_m[3] == ev["scorers"]["arc"][2]  # every variant: the ordinary vote
    assert by_m[1]["augmentations_voted"]["max"] == 1
    # The first variant of every test input is right (the fixture's originals): one vote
    # solves both tasks, while all three votes lose task A's second input at pass@1.
    assert by_m[1]["task_all_or_nothing"]["pass@1"] == 1.0
    assert by_m[3]["task_all_or_nothing"]["pass@1"] == 0.5


# --------------------------------------------------------------------------------------
# Records and tables: runs without results are shown
# --------------------------------------------------------------------------------------


def _study(tmp_path, statuses):
    from trm.studies.test_time import check_settings

    settings = check_settings("t", {"n_supervision_multipliers": [1, 2], "trajectories": [1, 2],
                                    "noise_sigma": [0.1], "depths": []})
    entries = []
    for seed, status in enumerate(statuses):
        run_dir = tmp_path / f"runs/sudoku/trm_mlp/abc/seed{seed}"
        entries.append({"source_study": "src", "task": "sudoku", "model": "trm_mlp", "sig": "abc",
                        "seed": seed, "run_dir": str(run_dir), "knobs": {"model.n_cycles": 2}})
        if status == "missing":
            continue
        record = {"status": status, "rows": [], "settings": settings}
        if status == "ok":
            acc = 0.5 + 0.1 * seed
            record |= {"trained": {"n_supervision_eval": 2}, "n_test": 10,
                       "per_step_exact_accuracy": [0.1, acc, acc + 0.05, acc + 0.1],
                       "time_s": {"total": 1.0},
                       "rows": [{"sweep": "n_supervision", "multiplier": 1, "exact_accuracy": acc},
                                {"sweep": "n_supervision", "multiplier": 2, "exact_accuracy": acc + 0.1},
                                {"sweep": "trajectories", "trajectories": 1, "noise_sigma": 0.1,
                                 "exact_accuracy": acc - 0.1, "oracle_accuracy": acc - 0.1},
                                {"sweep": "trajectories", "trajectories": 2, "noise_sigma": 0.1,
                                 "exact_accuracy": acc, "oracle_accuracy": acc + 0.2}]}
        path = Path(TT.result_path(str(run_dir), "tt"))
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(record))
    return {"name": "tt", "settings": settings, "source": [{"study": "src"}],
            "source_runs": entries}


def test_missing_and_failed_runs_are_listed_not_dropped(tmp_path):
    from trm.results import test_time as R

    study = _study(tmp_path, ["ok", "ok", "failed", "missing"])
    frame = R.collect(study)
    assert set(frame["seed"]) == {0, 1, 2, 3}
    assert set(frame[frame["seed"] == 3]["status"]) == {"missing"}
    assert set(frame[frame["seed"] == 2]["status"]) == {"failed"}
    summary = R.summary(frame)
    x2 = summary[(summary["sweep"] == "n_supervision") & (summary["x"] == 2)].iloc[0]
    assert x2["n_runs"] == 4 and x2["n_ok"] == 2
    assert x2["mean"] == pytest.approx(0.65) and "1 missing" in x2["status"] and "1 failed" in x2["status"]
    assert x2["gain_pp"] == pytest.approx(10.0)  # over the same runs' plain evaluation
    paths = R.write_tables(study, frame, tmp_path / "tables")
    md = paths["md"].read_text()
    assert "Runs without results" in md and "seed3: missing" in md and "seed2: failed" in md
    assert len(pd.read_csv(paths["csv"])) == len(summary)
    for pdf in (R.plot_summary(study, frame, tmp_path / "fig.pdf")[0],
                R.plot_source(study, frame, "src", tmp_path / "fig_src.pdf")[0]):
        assert pdf.read_bytes()[:5] == b"%PDF-"


def test_a_run_that_did_not_finish_gets_its_status(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"status": "diverged"}))
    out = run_dir / "test_time" / "tt.json"
    record = TTE.write_test_time(run_dir, "tt", {}, out)
    assert record["status"] == "diverged" and json.loads(out.read_text())["rows"] == []
    assert TTE.write_test_time(tmp_path / "absent", "tt", {}, tmp_path / "a.json")["status"] == "missing"


# --------------------------------------------------------------------------------------
# The workflow on a fresh clone
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_test_time_study_and_figures_on_a_fresh_clone(tmp_path):
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    if not (clone / "workflow/rules/test_time.smk").exists():
        pytest.skip("the test-time study is not committed yet")
    # The clone's own package, not the installed working tree.
    env = {**os.environ, "PYTHONPATH": str(clone),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
    targets = ["results/tables/test_time.csv", "results/figures/test_time.pdf",
               "results/figures/test_time/depth_scaling.pdf"]
    r = subprocess.run([sys.executable, "-m", "snakemake", "-c2", "--config", "scale=smoke",
                        "studies=test_time", "--", *targets], cwd=clone, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    for t in targets:
        assert (clone / t).exists(), t
    assert (clone / "results/figures/test_time.png").exists()
    table = pd.read_csv(clone / "results/tables/test_time.csv")
    assert set(table["status"]) == {"ok"}
    assert set(table["sweep"]) == {"n_supervision", "depth", "trajectories"}
    _, runs = S.manifest("test_time", "smoke")
    for run in runs:
        record = json.loads((clone / TT.result_path(run.run_dir, "test_time")).read_text())
        assert record["status"] == "ok" and record["time_s"]["total"] > 0
