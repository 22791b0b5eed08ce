"""Launchers without a cluster: resource validation, the sbatch script, the slurm profile,
re-attachment and waiting against a faked squeue/sacct, and the local (submitit) launcher.
The same code against a real SLURM is in test_slurm.py."""

import json
import os
import pickle
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from trm import config as C
from trm import rundir
from trm import slurm as slurm_jobs
from trm import resources
from trm.launch import TrainJob, launch

REPO = Path(__file__).resolve().parent.parent
BIN = str(Path(sys.executable).parent)


def snakemake(cwd, *args, timeout=600):
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def smoke_spec(tmp_path, **over) -> Path:
    spec = C.resolve("trm_mlp", "sudoku", "smoke", over)
    path = tmp_path / "spec.yaml"
    C.dump_spec(spec, path)
    return path


# ----------------------------------------------------------------- resources
def test_resource_defaults_and_types():
    r = resources.parse_resources({"gpu": "2", "runtime": 90, "poll_s": "0.5", "slurm_partition": "gpu",
                           "mem_mb": None, "qos": ""})
    assert (r.gpu, r.tasks, r.runtime, r.poll_s, r.slurm_partition) == (2, 2, 90, 0.5, "gpu")
    assert r.mem_mb == resources.Resources.mem_mb and r.qos == ""
    assert resources.parse_resources({}).deadline_min() == 60 * 4 + 3 * 24 * 60
    assert resources.parse_resources({"wait_deadline_min": 5}).deadline_min() == 5


@pytest.mark.parametrize("raw, match", [
    ({"gpus": 1}, "unknown SLURM resource 'gpus'.*did you mean 'gpu'"),
    ({"partition": "x"}, "unknown SLURM resource 'partition'"),
    ({"gpu": -1}, "gpu=-1.*>= 0"),
    ({"gpu": 1.5}, "whole number"),
    ({"runtime": "1h"}, "runtime='1h'.*number"),
    ({"runtime": 0}, ">= 1"),
    ({"cpus_per_task": True}, "number"),
    ({"gpu_flag": "gpus"}, "gpus_per_node, gres"),
    ({"slurm_partition": "a b"}, "spaces"),
    ({"slurm_extra": "-w node1"}, "long sbatch options"),
    ({"slurm_extra": "--comment='unclosed"}, "shell line"),
    ({"slurm_setup": ["a", "b"]}, "string"),
])
def test_bad_resources_are_rejected(raw, match):
    with pytest.raises(C.SpecError, match=match):
        resources.parse_resources(raw)


def test_bad_resource_fails_before_anything_is_submitted(tmp_path):
    spec = smoke_spec(tmp_path)
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "trm", "launch", "--spec", str(spec), "--out", str(run_dir),
                        "--launcher", "slurm", "--resource", "gpus=1"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown SLURM resource 'gpus'" in r.stderr
    assert not run_dir.exists()
    with pytest.raises(C.SpecError, match="unknown launcher"):
        launch(spec, run_dir, "ssh")


def test_slurm_launcher_needs_sbatch(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm_jobs.shutil, "which", lambda name: None)
    with pytest.raises(C.SpecError, match="'sbatch' is not on PATH"):
        launch(smoke_spec(tmp_path), tmp_path / "run", "slurm")


def test_extra_sbatch_options():
    assert resources.extra_parameters("--exclude=n[1-2] --reservation r --exclusive --comment 'a b'") == {
        "exclude": "n[1-2]", "reservation": "r", "exclusive": True, "comment": "a b"}


def test_sbatch_script_maps_every_resource(tmp_path):
    res = resources.parse_resources({
        "slurm_partition": "gpu", "slurm_account": "proj", "qos": "high", "constraint": "a100|h100",
        "gpu": 4, "gpu_type": "a100", "cpus_per_task": 8, "mem_mb": 64000, "runtime": 1440,
        "signal_delay_s": 90, "slurm_extra": "--exclude=n01", "slurm_setup": "module load cuda\nsource x # y: z",
    })
    text = slurm_jobs.sbatch_script(res, "trm-x", tmp_path / "%j")
    for line in ("--partition=gpu", "--account=proj", "--qos=high", "--constraint='a100|h100'",
                 "--gpus-per-node=a100:4", "--ntasks-per-node=4", "--cpus-per-task=8", "--mem=64000M",
                 "--time=1440", "--signal=USR2@90", "--requeue", "--exclude=n01", "--job-name=trm-x",
                 "--nodes=1"):
        assert f"#SBATCH {line}\n" in text, line
    assert "\nmodule load cuda\nsource x # y: z\n" in text
    gres = slurm_jobs.sbatch_script(resources.parse_resources({"gpu": 1, "gpu_flag": "gres"}), "j", tmp_path)
    assert "#SBATCH --gres=gpu:1\n" in gres and "--ntasks-per-node=1" in gres
    cpu = slurm_jobs.sbatch_script(resources.parse_resources({"mem_mb": 0}), "j", tmp_path)
    assert "gpus" not in cpu and "--mem" not in cpu and "--partition" not in cpu


def test_job_name_is_unique_per_run_directory(tmp_path):
    spec = C.load_spec(smoke_spec(tmp_path))
    a, b = slurm_jobs.job_name(spec, tmp_path / "a"), slurm_jobs.job_name(spec, tmp_path / "b")
    assert a != b and a.startswith(f"trm-sudoku-trm_mlp-{C.signature(spec)}-s0-")


# ----------------------------------------------------------------- cluster.yaml -> rule -> launcher
def cluster_config() -> dict:
    return yaml.safe_load((REPO / "slurm" / "cluster.yaml").read_text())


def test_cluster_yaml_validates_and_sets_the_launcher():
    from snakemake.utils import validate

    cfg = {**yaml.safe_load((REPO / "configs" / "config.yaml").read_text()), **cluster_config()}
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert cfg["launcher"] == "slurm" and cfg["scale"] == "paper"
    bad = {**cfg, "slurm": {**cfg["slurm"], "resources": {"paper": {"gpus": 1}}}}
    with pytest.raises(Exception, match="gpus"):
        validate(bad, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def test_resources_merge_default_scale_task():
    cfg = {"slurm": {"partition": "gpu", "setup": ["a", "b"], "resources": {
        "default": {"gpu": 1, "mem_mb": 100, "runtime": 5},
        "paper": {"mem_mb": 200, "tasks": {"arc1": {"gpu": 4}}}}}}
    paper_arc = resources.run_resources(cfg, "paper", "arc1")
    assert (paper_arc["gpu"], paper_arc["mem_mb"], paper_arc["runtime"]) == (4, 200, 5)
    assert paper_arc["slurm_partition"] == "gpu" and paper_arc["slurm_setup"] == "a\nb"
    assert resources.run_resources(cfg, "paper", "sudoku")["gpu"] == 1
    assert resources.run_resources(cfg, "smoke", "sudoku")["mem_mb"] == 100
    assert resources.run_resources({}, "tiny", "sudoku")["cpus_per_task"] == 1  # no slurm block at all
    shipped = cluster_config()
    assert resources.run_resources(shipped, "smoke", "sudoku")["gpu"] == 0
    assert resources.run_resources(shipped, "paper", "sudoku")["gpu"] >= 1


@pytest.mark.parametrize("value", ["", "gpu", "a100|h100", "yes", "1", "--exclude=n[1-3] --x 'a b'",
                                   "module load cuda/12.4\nsource ~/venv/bin/activate # note: x",
                                   'say "hi": {a: [b]}'])
def test_string_resources_survive_shell_and_yaml(value):
    key = "slurm_setup"
    v = resources.snakemake_value({"slurm": {"setup": [value] if value else []}}, "smoke", "sudoku", key)
    argv = shlex.split(f"--resource {key}={shlex.quote(str(v))}")  # what Snakemake's :q gives
    parsed = dict([C.parse_override(argv[1])])
    assert resources.parse_resources(parsed).slurm_setup == value


def test_launch_args_cover_every_key():
    args = resources.launch_args()
    assert all(f"--resource {k}={{resources.{k}:q}}" in args for k in resources.KEYS)


# ----------------------------------------------------------------- the profile
def test_profile_keys_do_not_collide_with_the_workflow_profile():
    prof = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert not set(prof) & set(default)
    assert "config" not in prof  # a CLI --config would replace it whole, dropping launcher=slurm
    assert prof["configfile"] == "cluster.yaml" and prof["resources"]["train_jobs"] >= 1
    for key in ("max-jobs-per-timespan", "keep-going", "rerun-incomplete", "latency-wait"):
        assert key in prof


def test_profile_dry_run_plans_slurm_jobs(repo_copy):
    r = snakemake(repo_copy, "-n", "-p", "--profile", "slurm", "--config", "scale=smoke",
                  "studies=depth_scaling")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    from trm import studies as St

    _, runs = St.manifest("depth_scaling", "smoke")
    shells = [line for line in out.splitlines() if "python -m trm launch" in line]
    assert len(shells) == len({r.run_dir for r in runs})
    # --config scale=smoke keeps launcher=slurm from cluster.yaml; resources follow the scale
    assert all("--launcher slurm" in s and "--resource runtime=10 " in s for s in shells)
    assert "threads: 0" in out


def test_paper_plan_of_all_studies_is_fast(repo_copy):
    t0 = time.time()
    r = snakemake(repo_copy, "-n", "--profile", "slurm", "--quiet", "rules", "--config", "studies=all")
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    from trm import studies as St

    _, runs = St.manifest("all", "paper", repo_copy / "configs")
    # the job stats table (printed once per summary): "train   <count>"
    n_train = next(int(line.split()[1]) for line in r.stdout.splitlines() if line.split()[:1] == ["train"])
    assert n_train == len({r.run_dir for r in runs})
    assert elapsed < 120, f"planning {n_train} paper runs took {elapsed:.0f} s"
    print(f"paper plan: {n_train} runs in {elapsed:.1f} s")


# ----------------------------------------------------------------- re-attachment, faked SLURM
class FakeSlurm:
    """Stands in for squeue/sacct: {job id: state}; missing ids are unknown to squeue."""

    def __init__(self, states, names=None, sacct=None, down=False):
        self.states, self.names, self.sacct, self.down = states, names or {}, sacct or {}, down
        self.calls = []

    def __call__(self, cmd, timeout=60):
        self.calls.append(cmd)
        if self.down:
            return subprocess.CompletedProcess(cmd, 1, "", "slurm_load_jobs error: Unable to contact slurm controller")
        if cmd[0] == "squeue" and "-j" in cmd:
            jid = cmd[cmd.index("-j") + 1]
            if jid in self.states:
                return subprocess.CompletedProcess(cmd, 0, self.states[jid] + "\n", "")
            return subprocess.CompletedProcess(cmd, 1, "", "slurm_load_jobs error: Invalid job id specified")
        if cmd[0] == "squeue" and "-n" in cmd:
            name = cmd[cmd.index("-n") + 1]
            rows = [f"{j}|{self.states[j]}" for j, n in self.names.items() if n == name]
            return subprocess.CompletedProcess(cmd, 0, "\n".join(rows), "")
        if cmd[0] == "sacct":
            jid = cmd[cmd.index("-j") + 1]
            return subprocess.CompletedProcess(cmd, 0, self.sacct.get(jid, ""), "")
        raise AssertionError(cmd)


def test_job_state_squeue_then_sacct(monkeypatch):
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({"7": "RUNNING"}, sacct={"8": "CANCELLED by 0\n"}))
    assert slurm_jobs.job_state("7") == "RUNNING"
    assert slurm_jobs.job_state("8") == "CANCELLED"
    assert slurm_jobs.job_state("9") is None
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({}, down=True))
    assert slurm_jobs.job_state("7") == slurm_jobs.UNKNOWN


def test_find_live_job_by_id_file_then_by_name(tmp_path, monkeypatch):
    folder = tmp_path / "submitit"
    folder.mkdir()
    fake = FakeSlurm({"11": "COMPLETED", "12": "PENDING"}, names={"12": "trm-a"})
    monkeypatch.setattr(slurm_jobs, "_run", fake)
    assert slurm_jobs.find_live_job(tmp_path, "trm-b") is None
    (folder / "job_id").write_text("11\n")
    assert slurm_jobs.find_live_job(tmp_path, "trm-b") is None  # finished: submit again
    assert slurm_jobs.find_live_job(tmp_path, "trm-a") == ("12", "PENDING")  # killed before job_id was written
    fake.states["11"] = "REQUEUED"
    assert slurm_jobs.find_live_job(tmp_path, "trm-b") == ("11", "REQUEUED")
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({}, down=True))
    assert slurm_jobs.find_live_job(tmp_path, "trm-b") == ("11", slurm_jobs.UNKNOWN)  # never guess "gone"


def test_restarted_launcher_reattaches_instead_of_submitting(tmp_path, monkeypatch):
    spec_path = smoke_spec(tmp_path)
    run_dir = tmp_path / "run"
    (run_dir / "submitit").mkdir(parents=True)
    (run_dir / "submitit" / "job_id").write_text("42\n")
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({"42": "RUNNING"}))
    monkeypatch.setattr(slurm_jobs.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(slurm_jobs, "submit_slurm", lambda *a, **k: pytest.fail("submitted a second job"))
    seen = {}

    def fake_wait(sub, run_dir, cluster, poll_s, deadline, held_grace_s=0):
        seen["job"] = sub.job_id
        return {"status": "ok", "steps": 1}

    monkeypatch.setattr(slurm_jobs, "wait", fake_wait)
    assert launch(spec_path, run_dir, "slurm", resources={"poll_s": 0.1}) == 0
    assert seen["job"] == "42"
    assert "attached 42 RUNNING" in (run_dir / "submitit" / "submissions.log").read_text()
    assert slurm_jobs.submitted_ids(run_dir) == []


class FakeJob:
    def __init__(self, folder):
        self.job_id, self.num_tasks = "5", 1
        self.paths = type("P", (), {"result_pickle": folder / "5_0_result.pkl",
                                    "stdout": folder / "5_0_log.out", "stderr": folder / "5_0_log.err"})()

    def task(self, i):
        return self

    def done(self):
        return False


def test_wait_returns_metrics_or_gives_up(tmp_path, monkeypatch):
    job = FakeJob(tmp_path)
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({"5": "RUNNING"}))
    with pytest.raises(TimeoutError, match="deadline passed.*not cancelled"):
        slurm_jobs.wait(job, tmp_path, "slurm", 0.05, time.time() + 0.3)
    (tmp_path / "metrics.json").write_text('{"status": "ok"}')
    assert slurm_jobs.wait(job, tmp_path, "slurm", 0.05, time.time() + 5) == {"status": "ok"}


def test_wait_notices_a_job_that_left_the_queue(tmp_path, monkeypatch):
    job = FakeJob(tmp_path)
    job.paths.stderr.write_text("slurmstepd: error: *** JOB 5 CANCELLED ***\n")
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({"5": "CANCELLED"}))
    monkeypatch.setattr(slurm_jobs, "MIN_GRACE_S", 0.2)
    t0 = time.time()
    with pytest.raises(slurm_jobs.JobLost, match="(?s)CANCELLED.*resume.*JOB 5 CANCELLED"):
        slurm_jobs.wait(job, tmp_path, "slurm", 0.05, time.time() + 60)
    assert time.time() - t0 < 10
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({}, down=True))  # controller down: keep waiting
    with pytest.raises(TimeoutError):
        slurm_jobs.wait(job, tmp_path, "slurm", 0.05, time.time() + 0.5)


# ----------------------------------------------------------------- the job object
def test_train_job_pickles_and_requeues_itself(tmp_path):
    job = TrainJob(str(tmp_path / "spec.yaml"), str(tmp_path / "run"), None)
    again = pickle.loads(pickle.dumps(job))
    delayed = again.checkpoint()
    assert isinstance(delayed.function, TrainJob)
    assert vars(delayed.function) == vars(job) and delayed.args == ()


@pytest.mark.slow
def test_local_launcher_matches_inline(tmp_path):
    over = {"train.steps": 30, "train.checkpoint_interval": 10}
    spec = smoke_spec(tmp_path, **over)
    data = tmp_path / "data"
    from trm.data.build import build_dataset

    build_dataset(C.load_spec(spec).data, data)
    assert launch(spec, tmp_path / "inline", "inline", data_dir=str(data)) == 0
    rc = launch(spec, tmp_path / "local", "local", data_dir=str(data),
                resources={"runtime": 5, "poll_s": 0.2})
    assert rc == 0
    assert (tmp_path / "local" / "metrics.json").read_bytes() == (tmp_path / "inline" / "metrics.json").read_bytes()
    assert "local" in (tmp_path / "local" / "submitit" / "submissions.log").read_text()
    info = json.loads((tmp_path / "local" / "run_info.json").read_text())
    assert info["resumed_from_step"] == 0


def test_result_of_an_unwatched_finished_job_is_recovered(tmp_path, monkeypatch):
    """Snakemake was killed, the job finished meanwhile, --rerun-incomplete removed
    metrics.json: the launcher rewrites it from the job's JSON record (submitit/outcome.json),
    submitting nothing, and never unpickles submitit's result pickle."""
    spec_path = smoke_spec(tmp_path)
    spec = C.load_spec(spec_path)
    run_dir = tmp_path / "run"
    folder = run_dir / "submitit"
    (folder / "77").mkdir(parents=True)
    (folder / "job_id").write_text("77\n")
    (folder / "submissions.log").write_text("2026-01-01T00:00:00+00:00 submitted 77 trm-x\n"
                                            "2026-01-01T00:00:09+00:00 finished-undelivered 77 ok\n")
    metrics = {"status": "ok", "sig": C.signature(spec), "seed": 0, "exact_accuracy": 0.5}
    rundir.write_outcome(run_dir, "77", metrics)
    # A pickle that would leave a file behind if anything unpickled it.
    (folder / "77" / "77_0_result.pkl").write_bytes(pickle.dumps(Tripwire(tmp_path / "unpickled")))
    monkeypatch.setattr(slurm_jobs, "_run", FakeSlurm({}))  # SLURM has forgotten the job
    monkeypatch.setattr(slurm_jobs.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(slurm_jobs, "submit_slurm", lambda *a, **k: pytest.fail("submitted a second job"))
    assert launch(spec_path, run_dir, "slurm") == 0
    assert json.loads((run_dir / "metrics.json").read_text()) == metrics
    assert "recovered 77" in (folder / "submissions.log").read_text()
    assert not (tmp_path / "unpickled").exists()
    # A launcher that delivered the result to a live Snakemake makes a deliberate re-run
    # (-f) submit again.
    (run_dir / "metrics.json").unlink()
    with open(folder / "submissions.log", "a") as f:
        f.write("2026-01-01T00:00:10+00:00 finished 77 ok\n")
    assert slurm_jobs.recover_result(spec, run_dir) is None
    # ... and so does a failed result, one of another run, or another job's record.
    (folder / "submissions.log").write_text("2026-01-01T00:00:00+00:00 submitted 77 trm-x\n")
    for bad, jid in (({**metrics, "status": "failed"}, "77"), ({**metrics, "seed": 1}, "77"),
                     (metrics, "76")):
        rundir.write_outcome(run_dir, jid, bad)
        assert slurm_jobs.recover_result(spec, run_dir) is None
    assert not (tmp_path / "unpickled").exists()


class Tripwire:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))
