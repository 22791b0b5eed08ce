"""The SLURM launcher and the `slurm` profile against a real SLURM cluster.

Locally: `bash ../shared/tools/start-local-slurm.sh` (SLURM_LOCAL_CPUS=4 lets four one-CPU
jobs run at once), then `pytest -m slurm`. Without a cluster these tests are skipped; under
CI=true a missing cluster fails them. Runs are tiny (smoke scale) and poll fast.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from trm import config as C
from trm import slurm as slurm_jobs
from trm import studies as St

from conftest import IN_CI

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}


def cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH"
    try:
        r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"scontrol ping failed: {e}"
    if "UP" not in r.stdout:
        return f"scontrol ping: {(r.stdout + r.stderr).strip()}"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI needs a live SLURM cluster ({problem}); .ci/run starts one")
        pytest.skip(f"no SLURM cluster: {problem}")
    gres = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout
    return {"gres": gres}


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    from trm.data.build import build_dataset

    out = tmp_path_factory.mktemp("slurm-data") / "sudoku4"
    build_dataset(C.resolve("trm_mlp", "sudoku", "smoke").data, out)
    return out


@pytest.fixture
def slurm_repo(repo_copy):
    """The repo copy with the shipped slurm/cluster.yaml, polling fast."""
    path = repo_copy / "slurm" / "cluster.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["slurm"]["poll_s"] = 0.5
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return repo_copy


def snakemake(cwd, *args, timeout=900, **kw):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout, **kw)


def spec_file(tmp_path, name="spec.yaml", **over) -> Path:
    path = tmp_path / name
    C.dump_spec(C.resolve("trm_mlp", "sudoku", "smoke", over), path)
    return path


def launcher(spec, run_dir, data, **resources):
    """`python -m trm launch --launcher slurm` in the background, output to RUN_DIR.log."""
    res = {"poll_s": 0.5, "runtime": 10, "mem_mb": 1000, **resources}
    cmd = [sys.executable, "-m", "trm", "launch", "--spec", str(spec), "--out", str(run_dir),
           "--data", str(data), "--launcher", "slurm"]
    for k, v in res.items():
        cmd += ["--resource", f"{k}={v}"]
    log = open(f"{run_dir}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)


def log_of(run_dir) -> str:
    return Path(f"{run_dir}.log").read_text()


def wait_for(cond, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def job_id(run_dir) -> str | None:
    path = Path(run_dir) / "submitit" / "job_id"
    return path.read_text().strip() if path.exists() else None


def jobs_named(name: str) -> list[str]:
    """Every job (finished or not) SLURM accounting has under this name."""
    r = subprocess.run(["sacct", "-X", "-n", "-P", "--name", name, "-S", "2000-01-01", "-o", "JobID"],
                       capture_output=True, text=True, check=True)
    return [line for line in r.stdout.split() if line]


def info(run_dir) -> dict:
    return json.loads((Path(run_dir) / "run_info.json").read_text())


# ----------------------------------------------------------------- a. a study through the profile
def test_profile_runs_a_study(cluster, slurm_repo):
    r = snakemake(slurm_repo, "--profile", "slurm", "--config", "scale=smoke", "studies=depth_scaling")
    assert r.returncode == 0, r.stderr[-4000:]
    assert (slurm_repo / "results/tables/depth_scaling.csv").exists()
    assert (slurm_repo / "results/figures/depth_scaling.pdf").read_bytes()[:5] == b"%PDF-"
    _, runs = St.manifest("depth_scaling", "smoke", slurm_repo / "configs")
    run_dirs = sorted({slurm_repo / r.run_dir for r in runs})
    for d in run_dirs:
        assert json.loads((d / "metrics.json").read_text())["status"] == "ok"
        ids = slurm_jobs.submitted_ids(d)
        assert len(ids) == 1, (d, ids)  # trained on SLURM, exactly once
        assert info(d)["slurm"]["SLURM_JOB_ID"] == ids[0]
        spec = C.load_spec(d / "spec.yaml")
        assert jobs_named(slurm_jobs.job_name(spec, d)) == ids
    # Nothing left to do, also after a site setting changes (resources never trigger reruns).
    path = slurm_repo / "slurm" / "cluster.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["slurm"]["resources"]["smoke"]["runtime"] = 11
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    again = snakemake(slurm_repo, "-n", "--profile", "slurm", "--config", "scale=smoke", "studies=depth_scaling")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


# ----------------------------------------------------------------- b. requeue mid-training
def ckpt_step(run_dir) -> int:
    import torch

    try:
        return int(torch.load(Path(run_dir) / "checkpoints" / "latest.pt", weights_only=True)["step"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def test_requeued_job_resumes_from_its_checkpoint(cluster, smoke_data, tmp_path):
    """Preempted (USR2: submitit's Checkpointable requeues itself), then `scontrol requeue`d:
    both times the same job comes back, resumes from the checkpoint, and the metrics are
    the bytes of a run that was never interrupted."""
    steps = 1500
    over = {"train.steps": steps, "train.checkpoint_interval": 20, "train.log_interval": 10}
    spec = spec_file(tmp_path, **over)
    reference = subprocess.Popen([sys.executable, "-m", "trm", "train", "--spec", str(spec), "--out",
                                  str(tmp_path / "uninterrupted"), "--data", str(smoke_data)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    run_dir = tmp_path / "requeued"
    proc = launcher(spec, run_dir, smoke_data)
    jid = wait_for(lambda: job_id(run_dir), 120, "the job id")
    wait_for(lambda: ckpt_step(run_dir) > 0 and slurm_jobs.job_state(jid) == "RUNNING", 180, "a first checkpoint")
    # 1. preemption / time-limit warning: USR2 -> TrainJob.checkpoint -> submitit requeues
    subprocess.run(["scancel", "--signal=USR2", jid], check=True, capture_output=True)
    wait_for(lambda: (run_dir / "run_info.json").exists() and info(run_dir)["requeue_count"] == 1,
             180, "the job to come back after USR2")
    first_resume = info(run_dir)["resumed_from_step"]
    assert 0 < first_resume < steps
    wait_for(lambda: ckpt_step(run_dir) > first_resume, 120, "a checkpoint after the first resume")
    assert not (run_dir / "metrics.json").exists(), "finished before the requeue: make it longer"
    # 2. an administrator's requeue: SIGTERM (ignored by submitit), SIGKILL, back to the queue
    subprocess.run(["scontrol", "requeue", jid], check=True, capture_output=True)
    assert proc.wait(timeout=400) == 0, log_of(run_dir)
    assert reference.wait(timeout=300) == 0
    ri = info(run_dir)
    assert ri["requeue_count"] == 2 and ri["slurm"]["SLURM_JOB_ID"] == jid
    # Counted apart: the USR2 is a time-out by submitit's rule (a 10-minute limit leaves no
    # guaranteed time: min(80 %, limit - 10 min) = 0), the admin's requeue is "other".
    assert ri["interruptions"] == {"preemption": 0, "timeout": 1, "other_requeue": 1}
    assert first_resume < ri["resumed_from_step"] < steps
    states = subprocess.run(["sacct", "-X", "-D", "-n", "-P", "-j", jid, "-o", "State"],
                            capture_output=True, text=True).stdout.split()
    assert states.count("REQUEUED") == 2, states
    out = "".join(p.read_text() for p in (run_dir / "submitit" / jid).glob("*_0_log.*"))
    assert "Caught signal SIGUSR2" in out and "Requeued job" in out  # submitit's Checkpointable path
    assert (run_dir / "metrics.json").read_bytes() == (tmp_path / "uninterrupted" / "metrics.json").read_bytes()
    assert (run_dir / "train.jsonl").read_text() == (tmp_path / "uninterrupted" / "train.jsonl").read_text()
    assert slurm_jobs.submitted_ids(run_dir) == [jid]


# ----------------------------------------------------------------- c. Snakemake killed and restarted
PROBE_STUDY = """\
name: slurm_probe
description: two longer smoke runs for the SLURM restart test
tasks: [sudoku]
models: [trm_mlp]
seeds: [0, 1]
base: {train.steps: 1500, train.checkpoint_interval: 50}
figure: {x: effective_depth, y: exact_accuracy, hue: model}
"""


def test_killed_snakemake_reattaches_without_resubmitting(cluster, slurm_repo):
    (slurm_repo / "configs/studies/slurm_probe.yaml").write_text(PROBE_STUDY)
    args = ["--profile", "slurm", "--config", "scale=smoke", "studies=slurm_probe"]
    _, runs = St.manifest("slurm_probe", "smoke", slurm_repo / "configs")
    run_dirs = sorted({slurm_repo / r.run_dir for r in runs})
    assert len(run_dirs) == 2
    with open(slurm_repo / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=slurm_repo, env=ENV,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ids = wait_for(lambda: all(job_id(d) for d in run_dirs) and [job_id(d) for d in run_dirs],
                       240, "both jobs to be submitted")
        wait_for(lambda: all(slurm_jobs.job_state(j) == "RUNNING" for j in ids), 120, "both jobs to run")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # Snakemake and its launchers, as a lost login shell
        first.wait()
    assert all(slurm_jobs.job_state(j) in slurm_jobs.LIVE_STATES for j in ids), "jobs must outlive Snakemake"
    assert not any((d / "metrics.json").exists() for d in run_dirs), "finished too soon: make it longer"
    snakemake(slurm_repo, "--unlock", *args)
    second = snakemake(slurm_repo, *args)
    assert second.returncode == 0, second.stderr[-4000:]
    for d, jid in zip(run_dirs, ids):
        assert json.loads((d / "metrics.json").read_text())["status"] == "ok"
        assert f"re-attaching to SLURM job {jid}" in (d / "launcher.log").read_text()
        assert slurm_jobs.submitted_ids(d) == [jid]
        assert jobs_named(slurm_jobs.job_name(C.load_spec(d / "spec.yaml"), d)) == [jid]  # one sbatch per run
        assert info(d)["slurm"]["SLURM_JOB_ID"] == jid


# ----------------------------------------------------------------- d. GPUs
def test_gpu_jobs_get_cuda_visible_devices(cluster, smoke_data, tmp_path):
    if "gpu:" not in cluster["gres"]:
        if IN_CI:
            pytest.fail(f"CI's cluster needs GPU GRES, sinfo says {cluster['gres']!r}")
        pytest.skip("no GPU GRES on this cluster")
    spec = spec_file(tmp_path)
    one, two = tmp_path / "gpu1", tmp_path / "gpu2"
    procs = [launcher(spec, one, smoke_data, gpu=1), launcher(spec, two, smoke_data, gpu=2)]
    for p, d in zip(procs, (one, two)):
        assert p.wait(timeout=300) == 0, log_of(d)
    first, second = info(one), info(two)
    assert first["slurm"]["CUDA_VISIBLE_DEVICES"] != ""
    assert len(first["slurm"]["CUDA_VISIBLE_DEVICES"].split(",")) == 1
    assert len(second["slurm"]["CUDA_VISIBLE_DEVICES"].split(",")) == 2
    assert first["device"] == "cpu"  # fake GPUs: train.device auto falls back to the CPU
    assert second["distributed"]["world_size"] == 2  # one task per GPU, one process group
    jid = job_id(two)
    script = (two / "submitit" / jid / f"{jid}_submission.sh").read_text()
    assert "--gpus-per-node=2" in script and "--ntasks-per-node=2" in script  # one task per GPU
    assert json.loads((two / "metrics.json").read_text())["status"] == "ok"


# ----------------------------------------------------------------- waiting: deadline, lost jobs, bad input
def test_deadline_then_reattach_then_lost_job(cluster, smoke_data, tmp_path):
    spec = spec_file(tmp_path, **{"train.steps": 5000, "train.checkpoint_interval": 50})
    run_dir = tmp_path / "run"
    # 1. The waiter gives up at its deadline; the job is left running.
    proc = launcher(spec, run_dir, smoke_data, wait_deadline_min=0.1)
    assert proc.wait(timeout=120) == 1
    assert "deadline passed" in log_of(run_dir)
    jid = job_id(run_dir)
    assert slurm_jobs.job_state(jid) in slurm_jobs.LIVE_STATES
    # 2. A new waiter re-attaches to it; 3. the job is cancelled: the waiter records the run
    # failed, with the reason, like any other failure (exit 0: the tables show it).
    proc = launcher(spec, run_dir, smoke_data)
    wait_for(lambda: "re-attaching" in log_of(run_dir), 60, "re-attachment")
    subprocess.run(["scancel", jid], check=True)
    assert proc.wait(timeout=120) == 0
    out = log_of(run_dir)
    assert f"SLURM job {jid} ended (CANCELLED" in out and "resume from the checkpoint" in out
    assert slurm_jobs.submitted_ids(run_dir) == [jid]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "CANCELLED" in metrics["error"]


def test_sbatch_errors_are_reported(cluster, smoke_data, tmp_path):
    spec = spec_file(tmp_path)
    run_dir = tmp_path / "run"
    proc = launcher(spec, run_dir, smoke_data, slurm_partition="no_such_partition")
    assert proc.wait(timeout=120) == 1
    out = log_of(run_dir)
    assert "sbatch failed" in out and "partition" in out.lower()
    assert job_id(run_dir) is None and slurm_jobs.submitted_ids(run_dir) == []
