"""Fault injection: every fault below must be refused clearly or survived, never turn into a
wrong number, a lost run, a second submission of a finished run, or a half-written file read
as complete. `pytest -m faults` (the SLURM ones are also marked `slurm`: they need a live
cluster, see tests/test_slurm.py).

Each test adds to the tally printed at the end of the module (run with -rA or -s to see
it): faults injected, runs lost, duplicate submissions, half-written files read as complete.
The last three are asserted 0 where they are counted, so a regression fails the test that
caused it.
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from trm import config as C
from trm import rundir
from trm import slurm as slurm_jobs
from trm import resources
from trm.data import identity
from trm.data.build import build_dataset
from trm.files import atomic_save_npz, atomic_write_json, clean_temp_files
from trm.launch import finished, launch
from trm.train import checkpoint as ckpt

pytestmark = pytest.mark.faults

TALLY = {"faults_injected": 0, "runs_lost": 0, "duplicate_submissions": 0,
         "half_written_read_as_complete": 0}
BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"]}


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    yield TALLY
    line = "faults: " + ", ".join(f"{k} {v}" for k, v in TALLY.items())
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    out = os.environ.get("TRM_FAULTS_TALLY")
    if out:
        Path(out).write_text(json.dumps(TALLY, indent=1) + "\n")


def inject(n: int = 1) -> None:
    TALLY["faults_injected"] += n


def spec_of(**over) -> C.RunSpec:
    return C.resolve("trm_mlp", "sudoku", "smoke", {"train.steps": 20, "train.checkpoint_interval": 10,
                                                    "eval.extra_n_supervision": [], **over})


def spec_file(path: Path, **over) -> Path:
    C.dump_spec(spec_of(**over), path)
    return path


def copy_data(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / identity.CACHE).unlink(missing_ok=True)
    return dst


def temp_files(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob(".*.tmp*")]


def read_as_complete(path: Path) -> bool:
    """What a reader would do: metrics.json counts as complete when it parses."""
    return finished(path.parent) is not None if path.name == "metrics.json" else path.exists()


def train(spec_path: Path, run_dir: Path, data: Path | None, *extra) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "trm", "train", "--spec", str(spec_path), "--out", str(run_dir)]
    cmd += ["--data", str(data)] if data else []
    return subprocess.run(cmd + list(extra), capture_output=True, text=True, env=ENV, timeout=300)


# ----------------------------------------------------------------- identity: datasets
def test_corrupted_dataset_array_is_refused(smoke_data, tmp_path):
    from trm.train.loop import run

    spec = spec_of()
    # A flipped byte in the middle of an array (same size): caught by the content hash.
    data = copy_data(smoke_data, tmp_path / "flipped")
    arr = data / "train" / "all__inputs.npy"
    raw = bytearray(arr.read_bytes())
    raw[-5] ^= 0x01
    arr.write_bytes(bytes(raw))
    inject()
    with pytest.raises(identity.DatasetMismatch, match="do not match the content hash"):
        run(spec, tmp_path / "run1", data)
    assert not (tmp_path / "run1" / "metrics.json").exists()
    # A truncated array: cannot even be loaded, still one clear refusal.
    data = copy_data(smoke_data, tmp_path / "truncated")
    lab = data / "test" / "all__labels.npy"
    lab.write_bytes(lab.read_bytes()[:-40])
    inject()
    with pytest.raises((identity.DatasetMismatch, ValueError)):
        run(spec, tmp_path / "run2", data)
    # The verification cache never vouches for a changed file: verify good data (cached),
    # then corrupt it again.
    data = copy_data(smoke_data, tmp_path / "cached")
    assert identity.verify_content(data)["ours"]
    assert (data / identity.CACHE).is_file()
    ids = data / "test" / "all__puzzle_identifiers.npy"
    a = np.load(ids)
    a[0] += 1
    np.save(ids, a)
    inject()
    with pytest.raises(identity.DatasetMismatch, match="content hash"):
        identity.verify_content(data)
    # Train and test dataset.json from two different builds.
    data = copy_data(smoke_data, tmp_path / "mixed")
    meta = json.loads((data / "test" / "dataset.json").read_text())
    meta["provenance"]["content_hash"] = "sha256:" + "0" * 64
    (data / "test" / "dataset.json").write_text(json.dumps(meta))
    inject()
    with pytest.raises(identity.DatasetMismatch, match="different content hashes"):
        identity.verify_content(data)


def test_missing_or_foreign_data_dir_is_refused(smoke_data, tmp_path):
    spec_path = spec_file(tmp_path / "spec.yaml")
    # --data naming a directory that does not exist: an error, not a new build.
    missing = tmp_path / "no_such_data"
    inject()
    r = train(spec_path, tmp_path / "run", missing)
    assert r.returncode == 2 and "no such directory" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not missing.exists() and not (tmp_path / "run" / "metrics.json").exists()
    inject()
    with pytest.raises(C.SpecError, match="no such directory"):
        launch(spec_path, tmp_path / "run", "slurm", data_dir=str(missing))  # before any sbatch
    # --data naming an empty or half-built directory.
    (tmp_path / "empty").mkdir()
    inject()
    r = train(spec_path, tmp_path / "run", tmp_path / "empty")
    assert r.returncode == 2 and "not a complete built dataset" in r.stderr
    # --data pointing at a dataset built for another data spec.
    other = spec_file(tmp_path / "other.yaml", **{"data.n_train": 48})
    inject()
    r = train(other, tmp_path / "run", smoke_data)
    assert r.returncode == 2 and "built for another data spec" in r.stderr and "n_train" in r.stderr
    # data.path naming a built dataset (it holds no raw files): refused, not a generator run.
    inject()
    with pytest.raises(C.SpecError, match="is a built dataset"):
        build_dataset(C.DataSpec(task="sudoku", source="auto", path=str(smoke_data), grid=4,
                                 blanks=6, n_train=8, n_test=8), tmp_path / "built_from_built")
    assert not (tmp_path / "built_from_built").exists()


def test_external_dataset_is_recorded_with_its_real_shape(smoke_data, tmp_path):
    """A dataset without our provenance (the official builders) is used, and the run records
    what it really holds, not what the spec's data section says."""
    from trm.train.loop import run

    data = copy_data(smoke_data, tmp_path / "official")
    for split in ("train", "test"):
        meta = json.loads((data / split / "dataset.json").read_text())
        meta.pop("provenance")
        (data / split / "dataset.json").write_text(json.dumps(meta))
    spec = spec_of(**{"data.n_train": 999, "train.steps": 4})
    m = run(spec, tmp_path / "run", data)
    prov = m["data_provenance"]
    assert prov["kind"] == "external" and prov["content_hash"].startswith("sha256-files:")
    n_groups = len(np.load(data / "train" / "all__group_indices.npy")) - 1
    assert prov["shape"]["train"]["groups"] == n_groups != 999
    assert prov["shape"]["train"]["seq_len"] == 16
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["data_provenance"] == prov


# ----------------------------------------------------------------- raw data
def test_every_malformed_csv_row_is_reported(tmp_path):
    from trm.data.raw_csv import RawDataError

    good = ("1234341221434321", "12..34..21..43..")  # answer, question (4x4)
    rows = [
        ("gen", good[1], good[0], "0"),                     # line 2: fine
        ("gen", good[1], "1234341221434322", "0"),          # 3: not a solved grid
        ("gen", "2" + good[1][1:], good[0], "0"),           # 4: answer contradicts a given
        ("gen", good[1][:-1], good[0], "0"),                # 5: 15 cells
        ("gen", good[1].replace(".", "x", 1), good[0], "0"),  # 6: bad character
        ("gen", good[1], good[0], "many"),                  # 7: rating not a number
        ("gen", good[1], "", "0"),                          # 8: empty answer
    ]
    root = tmp_path / "raw"
    root.mkdir()
    text = "source,question,answer,rating\n" + "".join(",".join(r) + "\n" for r in rows)
    (root / "train.csv").write_text(text + "gen,a,b,1,extra\n")  # 9: five fields
    (root / "test.csv").write_text("source,question,answer,rating\n" + ",".join(rows[0]) + "\n")
    spec = C.DataSpec(task="sudoku", source="path", path=str(root), grid=4, blanks=6, n_train=50,
                      n_test=1, n_aug=0)
    inject(8)
    with pytest.raises(RawDataError) as e:
        build_dataset(spec, tmp_path / "out")
    msg = str(e.value)
    for line, why in ((3, "answer is not a solved grid: row 4"),
                      (4, "answer contradicts the givens at row 1, column 1"),
                      (5, "question has 15 cells"), (6, "question has characters 'x'"),
                      (7, "rating 'many'"), (8, "empty answer"), (9, "5 fields")):
        assert f"train.csv: line {line}: {why}" in msg, (line, msg)
    assert "line 2:" not in msg and not (tmp_path / "out").exists()


def test_maze_answer_must_keep_the_question():
    from trm.data.maze_build import row_problem
    from trm.data.raw_csv import RawRow

    q = "S  #" + " ## " + "   G" + "####"
    a = "Soo#" + " ##o" + "   G" + "####"
    assert row_problem(RawRow("x", q, a, 0), 4) is None
    bad = {"wall removed": a[:3] + "o" + a[4:], "wall added": "S#o#" + a[4:],
           "no goal": q.replace("G", " "), "alphabet": a.replace("o", "*", 1)}
    inject(len(bad))
    problems = {k: row_problem(RawRow("x", q if k != "no goal" else v, a if k == "no goal" else v, 0), 4)
                for k, v in bad.items()}
    assert "row 1, column 4" in problems["wall removed"]
    assert "row 1, column 2" in problems["wall added"]
    assert "one start S and one goal G" in problems["no goal"]
    assert "characters '*'" in problems["alphabet"]


def test_every_malformed_arc_grid_is_reported(tmp_path):
    from trm.data.arc_tasks import ArcDataError, read_dataset_dir

    ok = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": []}
    bad = {
        "ragged": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}]},
        "colour": {"train": [{"input": [[1, 12]], "output": [[1]]}]},
        "float": {"train": [{"input": [[1.5]], "output": [[1]]}]},
        "nooutput": {"train": [{"input": [[1]]}]},
        "huge": {"train": [{"input": [[0] * 31], "output": [[1]]}]},
    }
    d = tmp_path / "arc" / "training"
    d.mkdir(parents=True)
    (d / "ok.json").write_text(json.dumps(ok))
    for tid, obj in bad.items():
        (d / f"{tid}.json").write_text(json.dumps(obj))
    (d / "broken.json").write_text("{not json")
    inject(len(bad) + 1)
    with pytest.raises(ArcDataError) as e:
        read_dataset_dir(tmp_path / "arc")
    msg = str(e.value)
    for tid, why in (("ragged", "ragged grid"), ("colour", "colours 0..9"), ("float", "1.5"),
                     ("nooutput", "train[0].output: missing"), ("huge", "1..30 per side")):
        assert f"{tid}.json: task {tid}: train[0]" in msg and why in msg, (tid, msg)
    assert "broken.json: not valid JSON" in msg and "task ok" not in msg


# ----------------------------------------------------------------- identity: checkpoints
def test_mismatched_checkpoint_is_refused(smoke_data, tmp_path):
    from trm.train.loop import run

    run_dir = tmp_path / "run"
    first = run(spec_of(), run_dir, smoke_data)
    assert first["status"] == "ok"
    # The same run directory, another step budget (so another signature): refused.
    inject()
    with pytest.raises(ckpt.CheckpointMismatch, match="another run.*total_steps 20"):
        run(spec_of(**{"train.steps": 30}), run_dir, smoke_data)
    # Another seed's checkpoint copied in: refused (the signature alone would not see it).
    other = tmp_path / "seed1"
    (other / "checkpoints").mkdir(parents=True)
    shutil.copy(run_dir / "checkpoints" / ckpt.LATEST, other / "checkpoints" / ckpt.LATEST)
    inject()
    with pytest.raises(ckpt.CheckpointMismatch, match="seed 0 .this run: 1"):
        run(spec_of(**{"train.seed": 1}), other, smoke_data)
    # A checkpoint without identity (an older or foreign file), and a truncated one.
    import torch

    state = torch.load(run_dir / "checkpoints" / ckpt.LATEST, weights_only=True)
    state.pop("identity")
    torch.save(state, other / "checkpoints" / ckpt.LATEST)
    inject()
    with pytest.raises(ckpt.CheckpointMismatch, match="no run identity"):
        run(spec_of(**{"train.seed": 1}), other, smoke_data)
    blob = (run_dir / "checkpoints" / ckpt.LATEST).read_bytes()
    (other / "checkpoints" / ckpt.LATEST).write_bytes(blob[: len(blob) // 2])
    inject()
    with pytest.raises(ckpt.CheckpointMismatch, match="cannot be read"):
        run(spec_of(**{"train.seed": 1}), other, smoke_data)
    # The command line says it in one line.
    r = train(spec_file(tmp_path / "s30.yaml", **{"train.steps": 30}), run_dir, smoke_data)
    assert r.returncode == 2 and "checkpoint was written for another run" in r.stderr
    assert "Traceback" not in r.stderr
    # ... and the run's own checkpoint still resumes (nothing was damaged by the refusals).
    assert json.loads((run_dir / "metrics.json").read_text()) == first


# ----------------------------------------------------------------- files
def test_half_written_files_are_never_read_as_complete(tmp_path, monkeypatch):
    # 1. A writer killed mid-write leaves only a temp file: the reader sees no result.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".metrics.json.tmp99999").write_text('{"status": "o')
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / ".latest.pt.tmp99999").write_bytes(b"PK\x03\x04 half")
    inject(2)
    TALLY["half_written_read_as_complete"] += read_as_complete(run_dir / "metrics.json")
    # 2. A metrics.json truncated by a non-atomic writer is not taken as a finished run.
    (run_dir / "metrics.json").write_text('{"status": "ok", "exact_acc')
    inject()
    TALLY["half_written_read_as_complete"] += read_as_complete(run_dir / "metrics.json")
    (run_dir / "metrics.json").unlink()
    # 3. The next attempt removes what the killed writer left.
    removed = clean_temp_files(run_dir) + clean_temp_files(run_dir / "checkpoints")
    assert len(removed) == 2 and temp_files(run_dir) == []
    # 4. A write that fails half-way (disk full mid-file) leaves the old file and no temp.
    atomic_write_json(run_dir / "metrics.json", {"status": "ok", "v": 1})

    def half_then_full(f):
        f.write(b'{"status": "ok", "v"')
        raise OSError(errno.ENOSPC, "No space left on device")

    from trm import files

    inject()
    with pytest.raises(OSError):
        files.atomic_write(run_dir / "metrics.json", half_then_full)
    assert json.loads((run_dir / "metrics.json").read_text()) == {"status": "ok", "v": 1}
    assert temp_files(run_dir) == []
    # 5. predictions.npz too: a failing save leaves no predictions.npz, never half of one.
    real = np.savez_compressed

    def broken_savez(f, **arrays):
        real(f, **arrays)
        f.truncate(20)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", broken_savez)
    inject()
    with pytest.raises(OSError):
        atomic_save_npz(run_dir / "predictions.npz", correct=np.ones(8, bool))
    TALLY["half_written_read_as_complete"] += read_as_complete(run_dir / "predictions.npz")
    assert temp_files(run_dir) == []
    monkeypatch.setattr(np, "savez_compressed", real)
    # 6. A checkpoint save that fails leaves the previous checkpoint and no temp file.
    import torch

    ckpt.save({"step": 1}, run_dir / "checkpoints")

    def full_disk_save(obj, f):
        f.write(b"PK half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed "
                           "writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", full_disk_save)
    inject()
    with pytest.raises(RuntimeError):
        ckpt.save({"step": 2}, run_dir / "checkpoints")
    monkeypatch.undo()
    assert torch.load(run_dir / "checkpoints" / ckpt.LATEST, weights_only=True) == {"step": 1}
    assert temp_files(run_dir) == []
    assert TALLY["half_written_read_as_complete"] == 0


def test_killed_dataset_build_leaves_nothing_behind(smoke_data, tmp_path):
    """A build killed mid-way leaves only its hidden temp dir (never a half dataset under the
    real name); the next build removes it and publishes a complete one."""
    from trm.data import official_format as fmt

    out = tmp_path / "data" / "sudoku4"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    leftover = out.parent / f".{out.name}.tmp-{fmt._host()}-{dead}-deadbeef"
    (leftover / "train").mkdir(parents=True)
    (leftover / "train" / "all__inputs.npy").write_bytes(b"\x93NUMPY half")
    inject()
    TALLY["half_written_read_as_complete"] += fmt.is_complete(out)
    build_dataset(spec_of().data, out)
    assert fmt.is_complete(out) and not leftover.exists()
    assert not list(out.parent.glob(".*.tmp-*"))
    identity.verify_content(out)


@contextlib.contextmanager
def mounted(path: Path, kind: str, size_kb: int = 0):
    """A real read-only bind mount or a small tmpfs at `path` (root only), else skip."""
    path.mkdir(parents=True, exist_ok=True)
    if kind == "tmpfs":
        cmds = [["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)]]
    else:
        cmds = [["mount", "--bind", str(path), str(path)],
                ["mount", "-o", "remount,ro,bind", str(path)]]
    for cmd in cmds:
        r = subprocess.run(cmd, capture_output=True, text=True) if shutil.which("mount") else None
        if r is None or r.returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True)
            pytest.skip(f"cannot {' '.join(cmd)}: {(r.stderr if r else 'no mount').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_run_dir_gives_one_line(smoke_data, tmp_path):
    spec_path = spec_file(tmp_path / "spec.yaml")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(spec_path, run_dir / "spec.yaml")
    with mounted(run_dir, "ro"):
        inject()
        r = subprocess.run([sys.executable, "-m", "trm", "launch", "--spec", str(spec_path), "--out",
                            str(run_dir), "--data", str(smoke_data), "--launcher", "inline"],
                           capture_output=True, text=True, env=ENV, timeout=300)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out
        assert "read-only file system" in out and "Traceback" not in out, out[-3000:]
        assert len([x for x in r.stderr.splitlines() if x.startswith("error:")]) == 1, r.stderr
    # The cause removed, the plain command runs it.
    assert launch(spec_path, run_dir, "inline", data_dir=str(smoke_data)) == 0
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"


def test_full_disk_is_recorded_failed_then_retried(smoke_data, tmp_path):
    spec_path = spec_file(tmp_path / "spec.yaml")
    run_dir = tmp_path / "run"
    with mounted(run_dir, "tmpfs", size_kb=48):  # room for the records, not a checkpoint
        inject()
        r = subprocess.run([sys.executable, "-m", "trm", "launch", "--spec", str(spec_path), "--out",
                            str(run_dir), "--data", str(smoke_data), "--launcher", "inline"],
                           capture_output=True, text=True, env=ENV, timeout=300)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "Traceback" not in out, out[-3000:]
        m = json.loads((run_dir / "metrics.json").read_text())
        assert m["status"] == "failed" and "disk full" in m["error"], m["error"]
        assert temp_files(run_dir) == []  # the half checkpoint was removed
        # Noted for the train rule's retry param (retried by the plain command).
        assert len((run_dir / "failures.log").read_text().splitlines()) == 1
        # The cause removed (the disk grown), the same command runs it to the end.
        subprocess.run(["mount", "-o", "remount,size=64m", str(run_dir)], check=True)
        assert launch(spec_path, run_dir, "inline", data_dir=str(smoke_data)) == 0
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
        TALLY["runs_lost"] += finished(run_dir) is None


# ----------------------------------------------------------------- cluster, faked SLURM
class HeldSlurm:
    def __init__(self, state: str, reason: str):
        self.line = f"{state}|{reason}\n"

    def __call__(self, cmd, timeout=60):
        if cmd[0] == "squeue":
            return subprocess.CompletedProcess(cmd, 0, self.line, "")
        raise AssertionError(cmd)


class FakeJob:
    def __init__(self, folder, job_id="5"):
        self.job_id, self.num_tasks = job_id, 1
        self.paths = type("P", (), {"result_pickle": folder / f"{job_id}_0_result.pkl",
                                    "stdout": folder / "log.out", "stderr": folder / "log.err"})()

    def task(self, i):
        return self


@pytest.mark.parametrize("state, reason", [("PENDING", "launch failed requeued held"),
                                           ("PENDING", "JobHeldAdmin"), ("REQUEUE_HOLD", "")])
def test_held_job_is_reported_then_recorded_failed(tmp_path, monkeypatch, capsys, state, reason):
    monkeypatch.setattr(slurm_jobs, "_run", HeldSlurm(state, reason))
    inject()
    t0 = time.time()
    with pytest.raises(slurm_jobs.JobHeld, match="scontrol release 5"):
        slurm_jobs.wait(FakeJob(tmp_path), tmp_path, "slurm", 0.05, time.time() + 60, held_grace_s=0.5)
    assert time.time() - t0 < 10
    cap = capsys.readouterr()
    for stream in (cap.out, cap.err):  # launcher.log gets stdout; the terminal stderr
        assert "is held" in stream and "scontrol release 5" in stream
    # Not held: a plain pending job is waited on (until the deadline), never failed.
    monkeypatch.setattr(slurm_jobs, "_run", HeldSlurm("PENDING", "Resources"))
    with pytest.raises(TimeoutError):
        slurm_jobs.wait(FakeJob(tmp_path), tmp_path, "slurm", 0.05, time.time() + 0.4, held_grace_s=0.1)


def test_held_grace_is_a_validated_resource():
    assert resources.parse_resources({"held_grace_min": "2.5"}).held_grace_min == 2.5
    with pytest.raises(C.SpecError, match="held_grace_min"):
        resources.parse_resources({"held_grace_min": -1})


def test_preemption_and_timeout_are_counted_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    now = time.time()
    assert rundir.record_interruption(tmp_path, 60, now - 5) == "preemption"  # 5 s of 60 min
    assert rundir.record_interruption(tmp_path, 60, now - 55 * 60) == "timeout"  # past 50 min
    assert rundir.record_interruption(tmp_path, 60, now - 20) == "preemption"
    with open(tmp_path / rundir.INTERRUPTIONS, "a") as f:
        f.write('{"cause": "time')  # cut by a kill
    inject(3)
    assert rundir.interruption_counts(tmp_path, 4) == {"preemption": 2, "timeout": 1, "other_requeue": 1}


@pytest.mark.slow  # three Snakemake runs: about 3 minutes on a loaded 2-core machine
def test_failed_cell_is_retried_by_the_plain_command(repo_copy):
    """A recorded failure shows in the tables, and the next plain `snakemake` runs it again
    (here it succeeds, its cause having been removed)."""
    study = repo_copy / "configs" / "studies" / "faults_retry.yaml"
    study.write_text("name: faults_retry\ndescription: one run\ntasks: [sudoku]\nmodels: [trm_mlp]\n"
                     "seeds: [0]\nbase: {train.steps: 4}\n"
                     "figure: {x: effective_depth, y: exact_accuracy, hue: model}\n")
    args = ["-j1", "--config", "scale=smoke", "studies=faults_retry"]
    from trm import studies as St

    _, runs = St.manifest("faults_retry", "smoke", repo_copy / "configs")
    run_dir = repo_copy / runs[0].run_dir
    spec_path = run_dir / "spec.yaml"

    def smk(*extra):
        return subprocess.run([sys.executable, "-m", "snakemake", *args, *extra], cwd=repo_copy,
                              env=ENV, capture_output=True, text=True, timeout=600)

    r = smk()
    assert r.returncode == 0, r.stderr[-3000:]
    ok = json.loads((run_dir / "metrics.json").read_text())
    assert ok["status"] == "ok"
    # Inject a recorded failure (as a cancelled job leaves it).
    from trm.launch import record_failure

    record_failure(C.load_spec(spec_path), run_dir, "SLURM job 1 ended (CANCELLED by 0)")
    inject()
    r = smk()
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text()) == ok  # retried, same bytes
    assert "Nothing to be done" in smk("-n").stdout  # and once retried, never again
    TALLY["runs_lost"] += finished(run_dir) is None


# ----------------------------------------------------------------- cluster, real SLURM
def cluster_or_skip():
    from test_slurm import cluster_problem

    from conftest import IN_CI

    problem = cluster_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI needs a live SLURM cluster ({problem})")
        pytest.skip(f"no SLURM cluster: {problem}")


def launcher(spec, run_dir, data, **resources):
    res = {"poll_s": 0.5, "runtime": 10, "mem_mb": 1000, **resources}
    cmd = [sys.executable, "-m", "trm", "launch", "--spec", str(spec), "--out", str(run_dir),
           "--data", str(data), "--launcher", "slurm"]
    for k, v in res.items():
        cmd += ["--resource", f"{k}={v}"]
    log = open(f"{run_dir}.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)


def wait_for(cond, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def job_id(run_dir) -> str | None:
    p = Path(run_dir) / "submitit" / "job_id"
    return p.read_text().strip() if p.exists() else None


def sbatch_count(spec_path: Path, run_dir: Path) -> int:
    """Jobs SLURM accounting has under this run's job name (every sbatch, finished or not)."""
    name = slurm_jobs.job_name(C.load_spec(spec_path), run_dir)
    r = subprocess.run(["sacct", "-X", "-n", "-P", "--name", name, "-S", "2000-01-01", "-o", "JobID"],
                       capture_output=True, text=True, check=True)
    return len(r.stdout.split())


@pytest.mark.slurm
@pytest.mark.slow
def test_cancelled_and_held_jobs_are_recorded_failed_then_retried(smoke_data, tmp_path):
    cluster_or_skip()
    spec = spec_file(tmp_path / "spec.yaml", **{"train.steps": 3000, "train.checkpoint_interval": 50})
    # 1. Held from the start (as after a node failure): reported with the release command,
    #    then recorded failed after the grace; released, the plain re-run re-attaches.
    held = tmp_path / "held"
    short = spec_file(tmp_path / "short.yaml")
    proc = launcher(short, held, smoke_data, slurm_extra="--hold", held_grace_min=0.1)
    inject()
    assert proc.wait(timeout=120) == 0, Path(f"{held}.log").read_text()
    jid = job_id(held)
    log = Path(f"{held}.log").read_text()
    assert f"scontrol release {jid}" in log and "is held" in log
    m = json.loads((held / "metrics.json").read_text())
    assert m["status"] == "failed" and "held" in m["error"]
    subprocess.run(["scontrol", "release", jid], check=True, capture_output=True)
    proc = launcher(short, held, smoke_data)
    assert proc.wait(timeout=240) == 0, Path(f"{held}.log").read_text()
    assert json.loads((held / "metrics.json").read_text())["status"] == "ok"
    assert slurm_jobs.submitted_ids(held) == [jid] and sbatch_count(short, held) == 1
    # 2. Cancelled while running: recorded failed with the reason (the tables show it).
    run_dir = tmp_path / "cancelled"
    proc = launcher(spec, run_dir, smoke_data)
    jid = wait_for(lambda: job_id(run_dir), 120, "the job id")
    wait_for(lambda: slurm_jobs.job_state(jid) == "RUNNING" and (run_dir / "checkpoints" / ckpt.LATEST).exists(),
             180, "the job to run and checkpoint")
    subprocess.run(["scancel", jid], check=True)
    inject()
    assert proc.wait(timeout=120) == 0, Path(f"{run_dir}.log").read_text()
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "failed" and "CANCELLED" in m["error"]
    TALLY["runs_lost"] += finished(held) is None or finished(run_dir) is None


PROBE = """\
name: faults_probe
description: one smoke run long enough to outlive a killed Snakemake
tasks: [sudoku]
models: [trm_mlp]
seeds: [0]
base: {train.steps: 400, train.checkpoint_interval: 50}
figure: {x: effective_depth, y: exact_accuracy, hue: model}
"""


@pytest.mark.slurm
@pytest.mark.slow
def test_snakemake_killed_alone_then_restarted_submits_nothing_twice(repo_copy):
    """Snakemake alone is killed (not its process group): its launcher lives on, sees the job
    finish and records that no Snakemake got the result. The restart (--rerun-incomplete
    deletes metrics.json) recovers the result from the run's JSON record: no second sbatch."""
    cluster_or_skip()
    cfg_path = repo_copy / "slurm" / "cluster.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["slurm"]["poll_s"] = 0.5
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (repo_copy / "configs/studies/faults_probe.yaml").write_text(PROBE)
    args = ["--profile", "slurm", "--config", "scale=smoke", "studies=faults_probe"]
    from trm import studies as St

    _, runs = St.manifest("faults_probe", "smoke", repo_copy / "configs")
    run_dir = repo_copy / runs[0].run_dir
    with open(repo_copy / "first.log", "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=repo_copy, env=ENV,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        jid = wait_for(lambda: job_id(run_dir), 240, "the job to be submitted")
        wait_for(lambda: slurm_jobs.job_state(jid) == "RUNNING", 120, "the job to run")
    finally:
        first.send_signal(signal.SIGKILL)  # Snakemake only: its launcher is orphaned
        first.wait()
    inject()
    history = run_dir / rundir.SUBMISSIONS
    wait_for(lambda: "finished-undelivered" in history.read_text(), 300,
             "the orphaned launcher to see the job finish")
    assert (run_dir / "metrics.json").exists()
    subprocess.run([sys.executable, "-m", "snakemake", "--unlock", *args], cwd=repo_copy, env=ENV,
                   capture_output=True, timeout=300)
    second = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=repo_copy, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-4000:]
    assert f"recovered {jid}" in history.read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"
    n = sbatch_count(run_dir / "spec.yaml", run_dir)
    TALLY["duplicate_submissions"] += n - 1
    TALLY["runs_lost"] += finished(run_dir) is None
    assert slurm_jobs.submitted_ids(run_dir) == [jid] and n == 1
    assert TALLY["runs_lost"] == 0 and TALLY["duplicate_submissions"] == 0
