"""How the workflow plans runs: one train job per run that writes the run's spec.yaml itself,
the spec no rerun trigger, and one study_done file per study between the runs and the
tables (timings: benchmarks/bench_planning.py, not here)."""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trm import config as C
from trm import studies as S

BIN = str(Path(sys.executable).parent)

ONE_RUN = """\
name: one_run
description: one smoke run, for the planning tests
tasks: [sudoku]
models: [trm_mlp]
seeds: [0]
base: {{train.log_interval: {log_interval}}}
figure: {{x: effective_depth, y: exact_accuracy, hue: model}}
"""


def snakemake(cwd, *args, timeout=900):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def planned_rules(out: str) -> dict[str, int]:
    """The job stats table of a dry run: rule -> count."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    counts = {}
    for line in lines[start + 3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_each_run_is_one_job_that_writes_its_resolved_spec(repo_copy):
    r = snakemake(repo_copy, "-n", "-p", "--config", "scale=smoke", "studies=depth_scaling")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    _, runs = S.manifest("depth_scaling", "smoke", repo_copy / "configs")
    by_dir = {run.run_dir: run for run in runs}
    counts = planned_rules(out)
    assert counts["train"] == len(by_dir) and "write_spec" not in counts
    assert counts["study_done"] == 1
    shells = [line for line in out.splitlines() if "python -m trm write-spec" in line]
    assert len(shells) == len(by_dir)
    for line in shells:
        argv = shlex.split(line[line.index("python -m trm write-spec"):].split("&&")[0])
        # ... --json JSON --out $(dirname RUN_DIR/metrics.json)/spec.yaml > LOG
        spec_json = argv[argv.index("--json") + 1]
        assert argv[argv.index("--out") + 1] == "$(dirname"
        metrics = argv[argv.index("--out") + 2].removesuffix(")/spec.yaml")
        run = by_dir[str(Path(metrics).parent)]
        # The JSON the job writes is the run's resolved spec, and the launcher then reads
        # the spec.yaml it wrote.
        assert json.loads(spec_json) == C.to_dict(run.spec)
        assert f"--spec $(dirname {metrics})/spec.yaml " in line


@pytest.mark.slow
def test_spec_is_no_rerun_trigger_and_study_done_passes_reruns_on(repo_copy):
    study = repo_copy / "configs/studies/one_run.yaml"
    study.write_text(ONE_RUN.format(log_interval=10))
    args = ["--config", "scale=smoke", "studies=one_run"]
    r = snakemake(repo_copy, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    _, (run,) = S.manifest("one_run", "smoke", repo_copy / "configs")
    run_dir = repo_copy / run.run_dir
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    assert C.to_dict(C.load_spec(run_dir / "spec.yaml")) == C.to_dict(run.spec)
    assert (repo_copy / "results/index/one_run.done").exists()

    again = snakemake(repo_copy, "-n", *args)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, \
        again.stdout[-3000:]

    # A key that changes nothing computed: the same run directory, another spec JSON. The
    # finished run is neither retrained nor re-evaluated, and its spec.yaml stays the one it
    # trained with (a spec passed as a plain param would rerun it: params trigger). The
    # study's own tables follow their study file (their params), as before.
    study.write_text(ONE_RUN.format(log_interval=5))
    _, (changed,) = S.manifest("one_run", "smoke", repo_copy / "configs")
    assert changed.run_dir == run.run_dir and changed.spec_json != run.spec_json
    plan = snakemake(repo_copy, "-n", *args)
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = planned_rules(plan.stdout + plan.stderr)
    assert "train" not in counts and "study_done" not in counts, counts
    assert C.to_dict(C.load_spec(run_dir / "spec.yaml")) == C.to_dict(run.spec)
    r = snakemake(repo_copy, *args)
    assert r.returncode == 0, r.stderr[-3000:]

    # A run with a new result (here: metrics.json rewritten, newer and with other bytes;
    # Snakemake ignores a newer input whose checksum it has seen) makes its study's
    # study_done newer, so the tables and figures are rebuilt; nothing is trained.
    metrics = run_dir / "metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()), indent=1))
    later = time.time() + 5
    os.utime(metrics, (later, later))
    plan = snakemake(repo_copy, "-n", *args)
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = planned_rules(plan.stdout + plan.stderr)
    assert "train" not in counts
    for rule in ("study_done", "study_tables", "study_figure", "runs_table", "paper_reference",
                 "summary_figures"):
        assert counts.get(rule) == 1, (rule, counts)
