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


# ----------------------------------------------------------------- what a bare run builds
def dry_run_jobs(text: str) -> list[dict]:
    """The jobs of a dry run's listing: rule, output (first file), priority (0 if unset)."""
    jobs = []
    for line in text.splitlines():
        if line.startswith("rule ") and line.rstrip().endswith(":"):
            jobs.append({"rule": line[5:].strip().rstrip(":"), "output": "", "priority": 0})
        elif jobs and line.startswith("    output: "):
            jobs[-1]["output"] = line.split(": ", 1)[1].split(", ")[0]
        elif jobs and line.startswith("    priority: "):
            jobs[-1]["priority"] = int(line.split(": ", 1)[1])
    return jobs


def test_default_studies_are_the_configured_list_and_all_is_every_study(repo_copy):
    import yaml

    listed = yaml.safe_load((repo_copy / "configs/config.yaml").read_text())["default_studies"]
    assert S.select_studies("default", repo_copy / "configs") == listed
    assert set(listed) < set(S.study_paths(repo_copy / "configs"))
    for selection, want in (("default", listed), ("all", list(S.study_paths(repo_copy / "configs")))):
        r = snakemake(repo_copy, "-n", "--config", "scale=smoke", f"studies={selection}")
        assert r.returncode == 0, r.stderr[-3000:]
        done = {j["output"] for j in dry_run_jobs(r.stdout + r.stderr) if j["rule"] == "study_done"}
        assert done == {f"results/index/{name}.done" for name in want}


def test_first_studies_train_first_and_their_results_come_as_soon_as_done(repo_copy):
    import yaml

    first = yaml.safe_load((repo_copy / "configs/config.yaml").read_text())["first_studies"]
    r = snakemake(repo_copy, "-n", "--config", "scale=smoke")
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = dry_run_jobs(r.stdout + r.stderr)
    _, runs = S.manifest("default", "smoke", repo_copy / "configs")
    studies_of = {}
    for run in runs:
        studies_of.setdefault(f"{run.run_dir}/metrics.json", set()).add(run.study)
    train = {j["output"]: j["priority"] for j in jobs if j["rule"] == "train"}
    assert set(train) == set(studies_of)
    # A run's priority is set by the earliest of the first studies it belongs to.
    for out, priority in train.items():
        ranks = [first.index(s) for s in studies_of[out] if s in first]
        others = [p for o, p in train.items() if not set(studies_of[o]) & set(first)]
        if ranks:
            assert all(priority > p for p in others), out
            later = [p for o, p in train.items()
                     if min((first.index(s) for s in studies_of[o] if s in first), default=len(first)) > min(ranks)]
            assert all(priority > p for p in later), out
    assert len(set(train.values())) > 1  # the smoke default has runs of both kinds
    # Every study's tables and figures outrank every run: made as soon as that study is done.
    results = [j for j in jobs if j["rule"] in ("study_done", "study_tables", "study_figure")]
    assert results and min(j["priority"] for j in results) > max(train.values())
    data = [j for j in jobs if j["rule"] == "build_dataset"]
    assert data and all(j["priority"] >= min(train.values()) for j in data)


def test_dry_run_prints_the_plan(repo_copy):
    import re

    r = snakemake(repo_copy, "-n", "--cores", "3", "--config", "scale=smoke")
    assert r.returncode == 0, r.stderr[-3000:]
    _, runs = S.manifest("default", "smoke", repo_copy / "configs")
    line = next(x for x in (r.stdout + r.stderr).splitlines() if x.startswith("[plan]"))
    m = re.fullmatch(r"\[plan\] (\d+) runs \((.+)\), about ([\d,]+) CPU-s of jobs; on 3 cores about \d+ (s|min)", line)
    assert m, line
    assert int(m.group(1)) == len({r.run_dir for r in runs})


def test_misspelt_study_target_is_a_one_line_error(repo_copy):
    r = snakemake(repo_copy, "-n", "--config", "scale=smoke", "--", "results/figures/depth_scalng.pdf")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "no study named 'depth_scalng'" in out and "depth_scaling" in out.split("available:")[1]
    assert "InputFunctionException" not in out and "KeyError" not in out


def test_target_of_an_unselected_study_names_the_setting(repo_copy):
    r = snakemake(repo_copy, "-n", "--config", "scale=smoke", "studies=depth_scaling", "--",
                  "results/tables/hrm_vs_trm.csv")
    assert r.returncode != 0
    assert "add --config studies=hrm_vs_trm" in r.stdout + r.stderr


def test_gpu_sized_scale_is_refused_on_a_cpu_before_any_job(repo_copy):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: paper scale is allowed here")
    r = snakemake(repo_copy, "--config", "scale=paper", "studies=depth_scaling")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "scale paper is sized for a GPU" in out and "allow_cpu=true" in out
    assert not (repo_copy / "results" / "data").exists() and not (repo_copy / "results" / "runs").exists()
    # A dry run plans it, with a warning.
    dry = snakemake(repo_copy, "-n", "--config", "scale=paper", "studies=depth_scaling")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "[warning] a real run would stop: scale paper" in dry.stdout + dry.stderr


def test_guard_reads_targets_and_dry_run_from_the_command_line():
    from trm import guard

    inv = guard.invocation(["snakemake", "-np", "--config", "scale=smoke", "--", "results/figures/x.pdf"])
    assert inv.dry_run and inv.targets == ["results/figures/x.pdf"]
    assert not guard.invocation(["snakemake", "-Rtrain", "--cores", "2"]).dry_run
    assert guard.invocation(["pytest", "-n"]) == guard.Invocation()
    assert guard.study_of_target("results/tables/depth_scaling_tests.csv") == "depth_scaling"
    assert guard.study_of_target("./results/figures/test_time/hrm_vs_trm.png") == "test_time"
    assert guard.study_of_target("results/index/grad_truncation.done") == "grad_truncation"
    for other in ("results/tables/runs.csv", "results/figures/learning_curves.pdf", "all",
                  "results/runs/sudoku/trm_mlp/abc/seed0/metrics.json"):
        assert guard.study_of_target(other) is None
