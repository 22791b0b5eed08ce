"""Progress lines: one per finished run, with its accuracy and the time left."""

import json

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
