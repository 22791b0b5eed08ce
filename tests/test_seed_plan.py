"""Seed plans: `plan-seeds --write FILE` records the seeds per cell a study needs, and
`snakemake --configfile FILE` (or `trm studies --seed-plan FILE`) tops the study up to them,
keeping every run it has."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from trm import config as C
from trm import studies as S
from trm.studies import schema
from trm.results import stats
from trm.train import loop

REPO = Path(__file__).resolve().parent.parent
BIN = str(Path(sys.executable).parent)


def test_topped_up_seeds_adds_the_smallest_unused_and_never_drops():
    assert S.topped_up_seeds([0, 1, 2, 3, 4], 8) == [0, 1, 2, 3, 4, 5, 6, 7]
    assert S.topped_up_seeds([3, 7], 4) == [3, 7, 0, 1]
    assert S.topped_up_seeds([0, 1, 2], 2) == [0, 1, 2]
    assert S.topped_up_seeds([5], None) == [5]


def test_the_workflow_schema_and_the_planning_checks_agree():
    """Snakemake validates the config with workflow/schemas/config.schema.yaml before the
    Snakefile plans with trm.studies: both must refuse the same seed plans and study names."""
    props = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    per_cell = props["study_seeds"]["additionalProperties"]["additionalProperties"]
    assert (per_cell["minimum"], per_cell["maximum"]) == schema.SEEDS_PER_CELL
    assert props["default_studies"]["items"]["pattern"] == schema.SAFE_NAME.pattern


def test_a_seed_plan_tops_up_one_study_at_one_scale():
    _, plain = S.manifest("weight_sharing,depth_scaling", "smoke")
    plan = {"smoke": {"weight_sharing": 5}, "tiny": {"depth_scaling": 9}}
    _, planned = S.manifest("weight_sharing,depth_scaling", "smoke", seed_plan=plan)
    by_study = lambda runs, name: [r for r in runs if r.study == name]  # noqa: E731
    ws_plain, ws_planned = by_study(plain, "weight_sharing"), by_study(planned, "weight_sharing")
    cells = {(r.task, r.model, r.sig) for r in ws_plain}
    assert len(ws_plain) == 2 * len(cells) and len(ws_planned) == 5 * len(cells)
    assert sorted({r.seed for r in ws_planned}) == [0, 1, 2, 3, 4]
    # The runs it had keep their directories (nothing retrains); the new ones are new seeds.
    assert {r.run_dir for r in ws_plain} <= {r.run_dir for r in ws_planned}
    # The tiny entry does not touch the smoke scale.
    assert [r.run_dir for r in by_study(planned, "depth_scaling")] == \
        [r.run_dir for r in by_study(plain, "depth_scaling")]


@pytest.mark.parametrize("plan, message", [
    ({"smoke": {"nope": 3}}, "no study named 'nope'"),
    ({"smoke": {"test_time": 3}}, "test-time study trains nothing"),
    ({"smoke": {"weight_sharing": 0}}, "integer in [1, 10000]"),
    ({"smoke": {"weight_sharing": True}}, "integer in [1, 10000]"),
    ({"smoke": {"weight_sharing": "5"}}, "integer in [1, 10000]"),
    ({"smoke": [3]}, "must be a mapping"),
    ([1], "must be a mapping"),
])
def test_bad_seed_plans_are_refused_naming_the_key(plan, message):
    with pytest.raises(C.SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        S.manifest("weight_sharing", "smoke", seed_plan=plan)


def _pilot(root: Path, accuracies: dict) -> list:
    """Train the smoke pilot of weight_sharing (2 cells x 2 seeds) under root, on its dataset
    where the workflow keeps it, then set each run's exact accuracy to the constructed value
    (the spread the planner reads)."""
    from trm.data.build import build_dataset

    _, runs = S.manifest("weight_sharing", "smoke")
    for r in runs:
        data_dir = root / r.data_dir
        if not data_dir.exists():
            build_dataset(r.spec.data, data_dir)
        run_dir = root / r.run_dir
        loop.run(r.spec, run_dir, data_dir, progress=False)
        m = json.loads((run_dir / "metrics.json").read_text())
        m["exact_accuracy"] = accuracies[r.spec.model.share_weights][r.seed]
        (run_dir / "metrics.json").write_text(json.dumps(m))
    return runs


def _cli(*args, cwd):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "trm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_plan_seeds_writes_the_plan_and_snakemake_runs_it(tmp_path, repo_copy):
    acc = {True: {0: 0.50, 1: 0.60}, False: {0: 0.55, 1: 0.75}}
    _pilot(repo_copy, acc)
    # Seeds 0 and 1 of both cells form pairs: the planner uses the spread of their differences.
    want = stats.paired_seeds_needed(0.10, float(np.std([0.50 - 0.55, 0.60 - 0.75], ddof=1)),
                                     alpha=0.05, power=stats.POWER)
    assert want is not None and want > 2  # the constructed spread needs more seeds than the pilot
    plan_file = tmp_path / "plan" / "seeds.yaml"
    out = _cli("plan-seeds", "--study", "weight_sharing", "--scale", "smoke", "--effect", "10",
               "--root", str(repo_copy), "--write", str(plan_file), cwd=repo_copy)
    assert out.returncode == 0, out.stderr[-2000:]
    assert yaml.safe_load(plan_file.read_text()) == {"study_seeds": {"smoke": {"weight_sharing": want}}}
    assert f"seeds per cell for every contrast to detect 10 pp at 80% power: {want}" in out.stdout
    assert f"snakemake --configfile {plan_file} --config scale=smoke" in out.stdout

    listed = _cli("studies", "--scale", "smoke", "--seed-plan", str(plan_file), "weight_sharing",
                  cwd=repo_copy)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert f"{2 * want} runs, {2 * want} unique" in listed.stdout

    # The workflow reads the plan: the two finished seeds per cell stay, the rest are planned.
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(plan_file),
                          "--config", "scale=smoke", "studies=weight_sharing"],
                         cwd=repo_copy, env=env, capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    from test_planning import planned_rules

    assert planned_rules(dry.stdout)["train"] == 2 * (want - 2)


def test_snakemake_refuses_a_bad_plan_before_running_anything(tmp_path, repo_copy):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    for body, message in (({"study_seeds": {"smoke": {"nope": 3}}}, "no study named 'nope'"),
                          ({"study_seeds": {"smoke": {"weight_sharing": 0}}}, "minimum")):
        plan_file = tmp_path / "bad.yaml"
        plan_file.write_text(yaml.safe_dump(body))
        out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(plan_file),
                              "--config", "scale=smoke", "studies=weight_sharing"],
                             cwd=repo_copy, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode != 0
        assert message in out.stdout + out.stderr
        assert not (repo_copy / "results" / "runs").exists()
