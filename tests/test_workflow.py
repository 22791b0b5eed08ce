"""The Snakemake workflow, run for real at the smoke scale in a scratch copy of the repo."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trm import studies as S

BIN = str(Path(sys.executable).parent)


def snakemake(cwd, *args, timeout=900):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_smoke_study_end_to_end(repo_copy):
    r = snakemake(repo_copy, "--config", "scale=smoke", "studies=depth_scaling")
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(repo_copy / "results/tables/depth_scaling.csv")
    _, runs = S.manifest("depth_scaling", "smoke")
    cells = {(r.model, r.sig) for r in runs}
    assert len(table) == len(cells)
    assert set(table["model"]) == {"trm_mlp", "hrm_mlp"}
    pdf = repo_copy / "results/figures/depth_scaling.pdf"
    assert pdf.exists() and pdf.read_bytes()[:5] == b"%PDF-"
    runs_csv = pd.read_csv(repo_copy / "results/tables/runs.csv")
    assert len(runs_csv) == len(runs) and set(runs_csv["status"]) == {"ok"}
    for fig in ("test_time_depth", "learning_curves", "accuracy_vs_compute"):
        assert (repo_copy / f"results/figures/{fig}.png").exists()
    md = (repo_copy / "results/tables/depth_scaling.md").read_text()
    assert "What the `smoke` scale resolves" in md
    report = snakemake(repo_copy, "--config", "scale=smoke", "studies=depth_scaling",
                       "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-2000:]
    html = (repo_copy / "results/report.html").read_text(errors="replace")
    assert "depth_scaling" in html
    # A second invocation has nothing left to do.
    again = snakemake(repo_copy, "--config", "scale=smoke", "studies=depth_scaling", "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_one_figure_plans_only_its_runs(repo_copy):
    r = snakemake(repo_copy, "-n", "--config", "scale=smoke", "--", "results/figures/depth_scaling.pdf")
    assert r.returncode == 0, r.stderr[-3000:]
    _, runs = S.manifest("depth_scaling", "smoke")
    out = r.stdout + r.stderr
    n_train = sum(1 for line in out.splitlines() if line.strip().startswith("rule train:"))
    assert n_train == len(runs)
    assert "runs_table" not in out and "study_tables" not in out


def test_bad_study_file_stops_before_any_job(repo_copy):
    (repo_copy / "configs/studies/depth_scaling.yaml").write_text(
        "name: depth_scaling\ntasks: [sudoku]\nmodels: [trm_mlp]\ngrid: {model.n_cyclez: [1, 2]}\n")
    r = snakemake(repo_copy, "-n", "--config", "scale=smoke")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "depth_scaling.yaml" in out and "model.n_cyclez" in out


def test_bad_config_value_is_rejected(repo_copy):
    r = snakemake(repo_copy, "-n", "--config", "launcher=ssh")
    assert r.returncode != 0 and "launcher" in r.stdout + r.stderr and "ssh" in r.stdout + r.stderr


def test_lint_is_clean(repo_copy):
    r = snakemake(repo_copy, "--lint", "--config", "scale=smoke")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_snakefmt_check():
    repo = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/"],
                       cwd=repo, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_failed_cell_is_shown_not_dropped(repo_copy):
    # The second cell passes validation but cannot train: its global batch is larger than an
    # epoch of the smoke train split, which the sampler refuses at run time.
    (repo_copy / "configs/studies/fails.yaml").write_text(
        "name: fails\ntasks: [sudoku]\nmodels: [trm_mlp]\nseeds: [0]\n"
        "grid: {train.global_batch_size: [16, 100000]}\nfigure: {x: train.global_batch_size, y: exact_accuracy}\n")
    r = snakemake(repo_copy, "--config", "scale=smoke", "studies=fails")
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(repo_copy / "results/tables/fails.csv")
    assert len(table) == 2
    md = (repo_copy / "results/tables/fails.md").read_text()
    assert "failed" in md
    runs = pd.read_csv(repo_copy / "results/tables/runs.csv")
    assert sorted(runs["status"]) == ["failed", "ok"]
    assert (repo_copy / "results/figures/fails.pdf").exists()
