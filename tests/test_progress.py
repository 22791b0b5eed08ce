"""Progress lines: one per finished run, with its accuracy and the time left."""

import json

import pytest

from trm import progress


def test_progress_line_counts_runs_and_estimates_time_left(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs = [f"results/runs/sudoku/trm_mlp/abc/seed{k}" for k in range(4)]
    for d in dirs:
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / dirs[0] / "metrics.json").write_text(json.dumps({"status": "ok", "exact_accuracy": 0.5}))
    progress.start(dirs)  # one already done before the workflow started
    state = json.loads(progress.PROGRESS_FILE.read_text())
    assert state["done_at_start"] == 1
    (tmp_path / dirs[1] / "metrics.json").write_text(json.dumps({"status": "ok", "exact_accuracy": 0.625}))
    line = progress.line(tmp_path / dirs[1], now=state["started"] + 30)
    # 1 new run in 30 s, 2 left -> about 60 s left.
    assert line.startswith("[2/4 runs, 30 s, about 1 min 00 s left]")
    assert "sudoku/trm_mlp/abc/seed1: exact 62.5%" in line
    (tmp_path / dirs[2] / "metrics.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    assert "status failed (boom)" in progress.line(tmp_path / dirs[2], now=state["started"] + 60)


# ----------------------------------------------------------------- the [plan] line
def test_estimate_adds_training_start_up_and_results_and_spreads_them_over_the_cores():
    rate = progress.TRAIN_FLOPS_PER_CPU_S
    flops = [10 * rate, 30 * rate, 20 * rate]  # 10, 30 and 20 CPU-s of training
    est = progress.estimate(flops, n_studies=2, cores=4)
    cpu_s = 60 + 3 * progress.START_AND_EVAL_CPU_S_PER_RUN + 2 * progress.RESULTS_CPU_S_PER_STUDY
    assert est["cpu_s"] == pytest.approx(cpu_s)
    assert est["wall_s"] == pytest.approx(cpu_s / 4)
    # More cores than the work spreads over: the longest run is the wall time.
    wide = progress.estimate(flops, n_studies=0, cores=64)
    assert wide["wall_s"] == pytest.approx(30 + progress.START_AND_EVAL_CPU_S_PER_RUN)


def test_plan_line_counts_runs_by_task_and_rounds_the_estimate():
    rate = progress.TRAIN_FLOPS_PER_CPU_S
    per_run = 100 - progress.START_AND_EVAL_CPU_S_PER_RUN  # each run's job: 100 CPU-s
    tasks = ["sudoku"] * 12 + ["maze"] * 6 + ["arc1"] * 2
    line = progress.plan_line(tasks, [per_run * rate] * 20, n_studies=0, cores=8, done=3)
    # 2,000 CPU-s on 8 cores: 250 s, about 4 min.
    assert line == ("[plan] 20 runs (12 Sudoku, 6 Maze, 2 ARC), 3 already done, about 2,000 "
                    "CPU-s of jobs; on 8 cores about 4 min")
    assert progress.plan_line(["maze"], None, 1, 2).endswith("no time estimate (a run's steps are set by train.epochs)")


def test_train_flops_are_counted_once_per_signature_and_kept(tmp_path, monkeypatch):
    from trm import studies as S
    from trm.model import flops

    _, runs = S.manifest("depth_scaling", "smoke")
    cache = tmp_path / "flops.json"
    counted = progress.runs_train_flops(runs, cache)
    assert len(counted) == len(runs) and all(f > 0 for f in counted)
    # Seeds of a cell share their count; a second plan reads the cache, counting nothing.
    by_sig = {}
    for r, f in zip(runs, counted):
        assert by_sig.setdefault(r.sig, f) == f
    monkeypatch.setattr(flops, "schedule_train_flops", lambda *a: pytest.fail("counted again"))
    assert progress.runs_train_flops(runs, cache) == counted
    # A cache from other model code is not used.
    stored = json.loads(cache.read_text())
    cache.write_text(json.dumps({**stored, "model_code": "other"}))
    monkeypatch.setattr(flops, "schedule_train_flops", lambda *a: 1.0)
    assert progress.runs_train_flops(runs, cache) == [1.0] * len(runs)
