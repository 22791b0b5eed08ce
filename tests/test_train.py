"""Training engine: determinism, exact resume after SIGKILL, divergence, failure records."""

import json
import signal
import subprocess
import sys
import time

import pytest

from trm import config as C
from trm.launch import launch
from trm.train import loop


def _spec(model="trm_mlp", seed=0, **over):
    return C.resolve(model, "sudoku", "smoke", over, seed=seed)


def test_same_seed_same_metrics(tmp_path, smoke_data):
    spec = _spec()
    loop.run(spec, tmp_path / "a", smoke_data, progress=False)
    loop.run(spec, tmp_path / "b", smoke_data, progress=False)
    a = (tmp_path / "a" / "metrics.json").read_bytes()
    assert a == (tmp_path / "b" / "metrics.json").read_bytes()
    assert (tmp_path / "a" / "train.jsonl").read_text() == (tmp_path / "b" / "train.jsonl").read_text()
    m = json.loads(a)
    assert m["status"] == "ok" and m["steps"] == spec.train.steps
    assert len(m["per_step"]["exact_accuracy"]) == max(spec.model.n_supervision, *spec.eval.extra_n_supervision)
    assert 0.0 <= m["exact_accuracy"] <= m["cell_accuracy"] <= 1.0


def test_other_seed_other_metrics(tmp_path, smoke_data):
    a = loop.run(_spec(), tmp_path / "a", smoke_data, progress=False)
    b = loop.run(C.resolve("trm_mlp", "sudoku", "smoke", seed=1), tmp_path / "b", smoke_data, progress=False)
    assert a["per_step"] != b["per_step"] or a["sig"] == b["sig"] and a["seed"] != b["seed"]
    assert (tmp_path / "a" / "train.jsonl").read_text() != (tmp_path / "b" / "train.jsonl").read_text()


@pytest.mark.parametrize("model", ["trm_mlp", "hrm"])  # hrm: Q-learning second pass + 2 nets
def test_sigkill_then_rerun_gives_identical_metrics(tmp_path, smoke_data, model):
    over = {"train.steps": 120, "train.checkpoint_interval": 10, "train.log_interval": 5}
    spec = C.resolve(model, "sudoku", "smoke", over)
    spec_path = tmp_path / "spec.yaml"
    C.dump_spec(spec, spec_path)
    clean = loop.run(spec, tmp_path / "clean", smoke_data, progress=False)
    assert clean["status"] == "ok"

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "trm", "train", "--spec", str(spec_path), "--out", str(run_dir),
           "--data", str(smoke_data)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoints" / "latest.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run_dir / "metrics.json").exists()
    import torch

    killed_at = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < killed_at < 120

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["resumed_from_step"] >= killed_at
    assert (run_dir / "metrics.json").read_bytes() == (tmp_path / "clean" / "metrics.json").read_bytes()
    assert (run_dir / "train.jsonl").read_text() == (tmp_path / "clean" / "train.jsonl").read_text()


def test_non_finite_loss_marks_diverged(tmp_path, smoke_data, monkeypatch):
    real = loop.losses.lm_loss
    calls = {"n": 0}

    def poisoned(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] == 7 else out

    monkeypatch.setattr(loop.losses, "lm_loss", poisoned)
    m = loop.run(_spec(), tmp_path / "r", smoke_data, progress=False)
    assert m["status"] == "diverged" and m["diverged_at_step"] == 7 and m["steps"] == 6
    assert "exact_accuracy" not in m
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["status"] == "diverged"


def test_crash_is_recorded_as_failed(tmp_path, smoke_data, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("synthetic crash")

    monkeypatch.setattr(loop.Trainer, "train_step", boom)
    spec_path = tmp_path / "spec.yaml"
    C.dump_spec(_spec(), spec_path)
    rc = launch(spec_path, tmp_path / "run", "inline", data_dir=str(smoke_data))
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert rc == 0 and m["status"] == "failed" and "synthetic crash" in m["error"]


def test_bad_spec_file_is_rejected_before_training(tmp_path):
    bad = tmp_path / "spec.yaml"
    bad.write_text("model:\n  n_cycles: three\n")
    with pytest.raises(C.SpecError, match="model.n_cycles"):
        launch(bad, tmp_path / "run", "inline")
    assert not (tmp_path / "run").exists()
