"""The command line (trm/cli.py): every refusal is one `error:` line on stderr with a non-zero
exit and no traceback (unless --debug or TRM_DEBUG=1 asks for it), and the commands say what
they do (--help, --version, the studies summary, the default dataset folder).

Most cases call cli.main(argv) in this process (a subprocess costs a torch import each);
one dataset and one short run are built per module and copied where a case damages them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trm import cli
from trm import config as C
from trm.cli import main

SMOKE = ["--task", "sudoku", "--scale", "smoke"]
GOOD_ANSWER, GOOD_QUESTION = "1234341221434321", "12..34..21..43.."  # a 4x4 sudoku
CSV_HEADER = "source,question,answer,rating"


def error_line(err: str, *words: str) -> str:
    """stderr holds exactly one `error:` line, last, with every word in it; no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def refused(capsys, argv: list[str], *words: str) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    return error_line(err, *words)


def usage_error(capsys, argv: list[str], *words: str) -> str:
    """An argparse refusal: exit 2, its message on the last line."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    for word in words:
        assert word in err.splitlines()[-1], (word, err)
    return err


def smoke_spec(path: Path, scale: str = "smoke") -> Path:
    """A 4-step run spec (smoke scale), or a scale's own spec as resolved."""
    short = {"train.steps": 4, "train.checkpoint_interval": 2, "eval.extra_n_supervision": []}
    C.dump_spec(C.resolve("trm_mlp", "sudoku", scale, short if scale == "smoke" else None), path)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A working folder whose results/data holds the smoke Sudoku dataset, built by
    `data build` without --out (so in its default place)."""
    import os

    root = tmp_path_factory.mktemp("cli")
    here = Path.cwd()
    os.chdir(root)
    try:
        assert main(["data", "build", *SMOKE]) == 0
    finally:
        os.chdir(here)
    return root


@pytest.fixture(scope="module")
def dataset(home) -> Path:
    want = C.data_signature(C.resolve("trm_mlp", "sudoku", "smoke"))
    return home / "results" / "data" / "sudoku" / want


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A finished 4-step smoke run (with its checkpoint), trained from a copy of the dataset."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    shutil.copytree(dataset, data)
    spec = smoke_spec(root / "spec.yaml")
    assert main(["train", "--spec", str(spec), "--out", str(root / "run"), "--data", str(data)]) == 0
    return root / "run"


# ---------------------------------------------------------------- help and version
def test_help_lists_the_commands_but_no_hidden_one(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert "SUPPRESS" not in out and "write-spec" not in out
    for command in ("spec", "describe", "data", "train", "eval", "launch", "studies", "plan-seeds"):
        assert f"\n    {command} " in out or f"\n    {command}\n" in out, command


def test_every_option_has_help(capsys):
    import argparse

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [(name, action.dest) for name, sub in [("", parser), *commands.choices.items()]
               for action in sub._actions if not action.help]
    assert missing == []
    with pytest.raises(SystemExit):  # the data command's own parser
        main(["data", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--out OUT output dataset directory (default results/data/<task>/<data sig>" in out


def test_version_is_the_installed_one(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"trm-bench {metadata.version('trm-bench')}"


# ---------------------------------------------------------------- plan-seeds and studies
def test_plan_seeds_without_finished_runs_says_train_first(capsys, tmp_path):
    refused(capsys, ["plan-seeds", "--study", "weight_sharing", "--scale", "smoke", "--root", tmp_path],
            "no finished runs of study weight_sharing at scale smoke", "train the study first",
            "snakemake --config studies=weight_sharing scale=smoke")


@pytest.mark.parametrize("effect", ["0", "-3", "nan", "ten"])
def test_plan_seeds_refuses_an_effect_that_is_not_positive(capsys, effect):
    usage_error(capsys, ["plan-seeds", "--study", "weight_sharing", f"--effect={effect}"], "--effect")


def test_studies_refuses_a_missing_seed_plan(capsys, tmp_path):
    refused(capsys, ["studies", "--seed-plan", tmp_path / "missing.yaml"],
            "missing.yaml", "no such seed-plan file", "plan-seeds")


def test_studies_summarises_cells_with_the_question(capsys):
    from trm.studies import manifest

    studies, runs = manifest(["weight_sharing", "depth_scaling"], "tiny")
    assert main(["studies", "weight_sharing", "depth_scaling"]) == 0
    out = capsys.readouterr().out
    for name, study in studies.items():
        question = " ".join(study["question"].split())
        assert f"{name}: {question}" in out
    cells = {(r.study, r.task, r.model, r.sig) for r in runs}
    cell_lines = [line for line in out.splitlines() if " sig " in line]
    assert len(cell_lines) == len(cells) < len(runs)
    deepest = max(r.knobs.get("model.n_latent_steps") or 0 for r in runs if r.task == "sudoku")
    deep = next(r for r in runs if r.knobs.get("model.n_latent_steps") == deepest and r.task == "sudoku")
    n_seeds = len({r.seed for r in runs if r.sig == deep.sig and r.study == deep.study})
    assert any(f"model.n_latent_steps={deepest}" in line and f"{n_seeds} seeds" in line and deep.sig in line
               for line in cell_lines)
    assert out.startswith(f"{len(runs)} runs, {len({r.run_dir for r in runs})} unique")


def test_studies_lists_every_run_with_runs_or_json(capsys):
    from trm.studies import manifest

    _, runs = manifest("weight_sharing", "tiny")
    assert main(["studies", "--runs", "weight_sharing"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[1] for line in listed[1:]) == sorted(r.run_dir for r in runs)
    assert main(["studies", "--json", "weight_sharing"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["run_dir"] for row in rows] == [r.run_dir for r in runs]
    assert {row["scale"] for row in rows} == {"tiny"}


# ---------------------------------------------------------------- data build
def test_data_build_without_out_builds_where_runs_look(dataset):
    from trm.data import official_format as fmt
    from trm.data.resolve import default_data_dir

    assert fmt.is_complete(dataset)
    assert dataset.parts[-4:] == default_data_dir(C.resolve("trm_mlp", "sudoku", "smoke")).parts


def _csv_folder(root: Path, train_text: str) -> Path:
    root.mkdir()
    (root / "train.csv").write_text(train_text)
    (root / "test.csv").write_text(f"{CSV_HEADER}\ngen,{GOOD_QUESTION},{GOOD_ANSWER},0\n")
    return root


BAD_CSVS = {
    "field count": (f"{CSV_HEADER}\ngen,{GOOD_QUESTION},{GOOD_ANSWER},0,extra\n", "line 2"),
    "header": (f"src,q,a,r\ngen,{GOOD_QUESTION},{GOOD_ANSWER},0\n", "expected CSV header"),
    "non-digit": (f"{CSV_HEADER}\ngen,{GOOD_QUESTION[:-1]}x,{GOOD_ANSWER},0\n", "characters 'x'"),
    "grid length": (f"{CSV_HEADER}\ngen,{GOOD_QUESTION[:-1]},{GOOD_ANSWER},0\n", "15 cells"),
    "contradiction": (f"{CSV_HEADER}\ngen,2{GOOD_QUESTION[1:]},{GOOD_ANSWER},0\n",
                      "contradicts the givens"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_data_build_refuses_a_malformed_csv_in_one_line(capsys, tmp_path, case):
    text, words = BAD_CSVS[case]
    raw = _csv_folder(tmp_path / "raw", text)
    refused(capsys, ["data", "build", *SMOKE, "--out", tmp_path / "out", "data.source=path",
                     f"data.path={raw}", "data.n_train=1", "data.n_test=1"], "train.csv", words)
    assert not (tmp_path / "out").exists()


BAD_ARC = {
    "ragged": ('{"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}', "ragged grid"),
    "not json": ("{not json", "not valid JSON"),
    "colour 12": ('{"train": [{"input": [[1, 12]], "output": [[1]]}], "test": []}', "colours 0..9"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARC))
def test_data_build_refuses_a_malformed_arc_task_in_one_line(capsys, tmp_path, case):
    text, words = BAD_ARC[case]
    for split in ("training", "evaluation"):
        (tmp_path / "arc" / split).mkdir(parents=True)
    (tmp_path / "arc" / "training" / "a.json").write_text(text)
    refused(capsys, ["data", "build", "--task", "arc1", "--scale", "smoke", "--out", tmp_path / "out",
                     "data.source=path", f"data.path={tmp_path / 'arc'}"], "a.json", words)


@pytest.mark.parametrize("override, words", [
    ("data.blanks=99", ("data.blanks", "99")),
    ("data.n_aug=-3", ("data.n_aug", ">= 0")),
])
def test_data_build_refuses_impossible_data_values(capsys, tmp_path, override, words):
    refused(capsys, ["data", "build", *SMOKE, "--out", tmp_path / "out", override], *words)


def test_data_build_refuses_a_missing_data_path(capsys, tmp_path):
    refused(capsys, ["data", "build", *SMOKE, "--out", tmp_path / "out", "data.source=path",
                     f"data.path={tmp_path / 'nowhere'}"], "nowhere", "train.csv")


def test_data_build_refuses_an_out_folder_that_is_not_this_dataset(capsys, tmp_path, dataset):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a dataset")
    refused(capsys, ["data", "build", *SMOKE, "--out", other], "not a complete dataset")
    refused(capsys, ["data", "build", *SMOKE, "--out", dataset, "data.n_train=7"],
            "different DataSpec", "n_train")


# ---------------------------------------------------------------- train and eval
def test_train_on_a_missing_cuda_device_is_one_line(capsys, tmp_path, dataset):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    refused(capsys, ["train", "--spec", smoke_spec(tmp_path / "spec.yaml"), "--out", tmp_path / "run",
                     "--data", dataset, "train.device=cuda"], "train.device=cuda", "no CUDA device")


def test_train_on_a_truncated_array_is_one_line(capsys, tmp_path, dataset):
    from trm.data import identity

    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    (data / identity.CACHE).unlink(missing_ok=True)
    array = data / "train" / "all__inputs.npy"
    array.write_bytes(array.read_bytes()[:100])
    refused(capsys, ["train", "--spec", smoke_spec(tmp_path / "spec.yaml"), "--out", tmp_path / "run",
                     "--data", data], "array")


def test_eval_without_a_checkpoint_is_one_line(capsys, tmp_path):
    run = tmp_path / "run"
    smoke_spec(run / "spec.yaml")
    refused(capsys, ["eval", "--run", run], "latest.pt", "no checkpoint")


@pytest.mark.parametrize("flag,value,words", [
    ("--n-supervision", "0", ("n_supervision", "> 0")),
    ("--n-cycles", "-1", ("n_cycles", "> 0")),
    ("--arc-votes", "0", ("--arc-votes", ">= 1")),
])
def test_eval_with_a_count_below_one_is_one_line(capsys, tmp_path, trained, flag, value, words):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    refused(capsys, ["eval", "--run", run, flag, value], *words)
    assert not (run / "test_time").exists()  # refused before anything is evaluated or written


def test_eval_whose_dataset_was_deleted_names_the_data_option(capsys, tmp_path, trained, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    info = json.loads((run / "run_info.json").read_text())
    info["data_dir"] = str(tmp_path / "deleted")
    (run / "run_info.json").write_text(json.dumps(info))
    monkeypatch.chdir(tmp_path)  # nor is there one in the default place
    refused(capsys, ["eval", "--run", run], "cannot find the run's dataset", "--data DIR")


def test_an_empty_checkpoint_is_refused_in_one_line(capsys, tmp_path, trained, dataset):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "checkpoints" / "latest.pt").write_bytes(b"")
    refused(capsys, ["eval", "--run", run, "--data", dataset], "latest.pt", "the file is empty")
    (run / "metrics.json").unlink()  # unfinished: train resumes from the checkpoint
    refused(capsys, ["train", "--spec", run / "spec.yaml", "--out", run, "--data", dataset],
            "latest.pt", "cannot be read", "delete it")


# ---------------------------------------------------------------- GPU-sized scales on a CPU
@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(cli, "_gpu_visible", lambda: False)
    monkeypatch.delenv(cli.ALLOW_CPU_ENV, raising=False)


@pytest.mark.parametrize("scale, launcher, refused_here", [
    ("small", "inline", True), ("paper", "local", True), ("paper_text", "inline", True),
    ("paper", "slurm", False), ("tiny", "inline", False), ("smoke", "local", False),
])
def test_cpu_scale_refusal(no_gpu, scale, launcher, refused_here):
    reason = cli.cpu_scale_refusal(scale, launcher)
    assert (reason is not None) == refused_here
    if refused_here:
        assert "\n" not in reason and f"scale {scale}" in reason and "--allow-cpu" in reason


def test_cpu_scale_refusal_lifted_by_the_variable_or_a_gpu(no_gpu, monkeypatch):
    monkeypatch.setenv(cli.ALLOW_CPU_ENV, "1")
    assert cli.cpu_scale_refusal("paper", "inline") is None
    monkeypatch.delenv(cli.ALLOW_CPU_ENV)
    monkeypatch.setattr(cli, "_gpu_visible", lambda: True)
    assert cli.cpu_scale_refusal("paper", "inline") is None


def test_a_spec_knows_its_gpu_sized_scale():
    assert cli.spec_scale(C.resolve("hrm", "maze", "small")) == "small"
    assert cli.spec_scale(C.resolve("trm_att", "arc1", "paper")) in ("paper", "paper_text")
    assert cli.spec_scale(C.resolve("trm_mlp", "sudoku", "tiny")) is None


@pytest.mark.parametrize("command", ["train", "launch"])
def test_small_scale_on_a_cpu_asks_for_allow_cpu(capsys, tmp_path, no_gpu, command):
    spec = smoke_spec(tmp_path / "small.yaml", scale="small")
    refused(capsys, [command, "--spec", spec, "--out", tmp_path / "run"],
            "scale small is sized for a GPU", "--allow-cpu", "TRM_ALLOW_CPU=1")
    assert not (tmp_path / "run").exists() and not (Path.cwd() / "results" / "data" / "sudoku"
                                                    / C.data_signature(C.load_spec(spec))).exists()


def test_allow_cpu_and_an_explicit_cpu_device_pass_the_check(no_gpu, tmp_path):
    spec = C.resolve("trm_mlp", "sudoku", "small")
    with pytest.raises(cli.CommandError):
        cli._refuse_gpu_sized_on_cpu(spec, "inline", allow_cpu=False)
    cli._refuse_gpu_sized_on_cpu(spec, "inline", allow_cpu=True)
    cpu = C.resolve("trm_mlp", "sudoku", "small", {"train.device": "cpu", "train.precision": "fp32"})
    cli._refuse_gpu_sized_on_cpu(cpu, "inline", allow_cpu=False)


# ---------------------------------------------------------------- the traceback on request
def test_debug_flag_or_variable_shows_the_traceback(monkeypatch, tmp_path):
    argv = ["studies", "--seed-plan", str(tmp_path / "missing.yaml")]
    with pytest.raises(cli.CommandError):
        main(["--debug", *argv])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(cli.CommandError):
        main(argv)


def test_the_program_itself_prints_one_line(tmp_path):
    """Through `python -m trm` (the __main__ path), a bad raw CSV: no traceback either."""
    raw = _csv_folder(tmp_path / "raw", BAD_CSVS["contradiction"][0])
    out = subprocess.run([sys.executable, "-m", "trm", "data", "build", *SMOKE, "--out",
                          str(tmp_path / "out"), "data.source=path", f"data.path={raw}",
                          "data.n_train=1", "data.n_test=1"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2
    error_line(out.stderr, "line 2", "contradicts the givens at row 1, column 1")


def test_a_tiny_spec_whose_data_equals_the_task_file_is_not_taken_for_paper():
    """reach's tiny data is its task file's own (the paper scale's), so the data alone cannot
    tell the two apart: the width can, and a CPU-sized scale that fits wins."""
    from trm.cli import spec_scale

    tiny = C.resolve("trm_mlp", "reach", "tiny", {})
    paper = C.resolve("trm_mlp", "reach", "paper", {})
    assert tiny.data == paper.data
    assert spec_scale(tiny) is None
    assert spec_scale(paper) == "paper"
