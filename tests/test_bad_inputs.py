"""Bad inputs, each of which must be refused before anything runs, with one clear line.

Every case below feeds one kind of bad input (a spec value, a config/study/profile file, a
SLURM setting, a command line) to the code that reads it, and passes only if it is refused
with a SpecError whose message is a single line naming the key (and the file, when there is
one). A case fails if the input is accepted, or refused with any other exception (a Python
traceback for the user). Count: `python -m pytest -q -m faults tests/test_bad_inputs.py`
(each passing test is one bad input refused clearly; test_good_* are the inputs that must
keep working, and test_every_numeric_field_has_a_range keeps the table complete).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from trm import config as C
from trm import slurm as slurm_jobs
from trm import resources
from trm import studies as S

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parent.parent


def refused_clearly(fn, *must_name: str) -> str:
    """fn() must raise SpecError with a one-line message naming every string in must_name."""
    with pytest.raises(C.SpecError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg.strip(), f"not one line: {msg!r}"
    assert "Traceback" not in msg
    for name in must_name:
        assert name in msg, f"{name!r} is not named in: {msg}"
    return msg


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> Path:
    """A scratch configs/ folder; each case writes files of its own name into it."""
    dst = tmp_path_factory.mktemp("bad") / "configs"
    shutil.copytree(C.CONFIG_DIR, dst)
    return dst


# --------------------------------------------------------------------------------------
# Spec values: every field out of its range, and non-finite floats
# --------------------------------------------------------------------------------------

def _violations() -> list[tuple[str, object]]:
    """For every entry of FIELD_RANGES, values just outside its interval."""
    out = []
    for key, allowed in C.FIELD_RANGES.items():
        bad = []
        if allowed.low is not None:
            bad.append(allowed.low if allowed.low_open else allowed.low - 1)
        if allowed.high is not None:
            bad.append(allowed.high if allowed.high_open else allowed.high + (1 if allowed.high > 1 else 0.5))
        for v in bad:
            out.append((key, [int(v)] if key == "eval.extra_n_supervision" else v))
    return out


def _float_fields() -> list[str]:
    return [k for k in C.FIELD_RANGES if _field_type(k) in (float, float | None)]


def _field_type(dotted: str):
    section, name = dotted.split(".")
    cls = typing.get_type_hints(C.RunSpec)[section]
    return typing.get_type_hints(cls)[name]


def _int_fields() -> set[str]:
    return {k for k in C.FIELD_RANGES if _field_type(k) is int}


@pytest.mark.parametrize("key,value", _violations(), ids=lambda v: str(v))
def test_bad_value_out_of_range(key, value):
    # Integers for int fields (a float there is a type error, tested apart).
    if key in _int_fields() and isinstance(value, float):
        value = int(math.floor(value)) if value < 0 else int(math.ceil(value))
    refused_clearly(lambda: C.resolve("trm_mlp", "sudoku", "smoke", {key: value}), key, "override")


@pytest.mark.parametrize("key", _float_fields())
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_bad_value_not_finite(key, value):
    k, v = C.parse_override(f"{key}={value}")
    refused_clearly(lambda: C.resolve("trm_mlp", "sudoku", "smoke", {k: v}), key)


CROSS_FIELD = [
    ("train.steps=0", "train.steps"),  # with epochs 0 the budget would be empty
    ("model.hidden_size=30", "model.hidden_size"),  # not divisible by 8 heads (attention)
    ("data.blanks=36", "data.blanks"),  # a 6x6 sudoku has 36 cells
    ("data.grid=5", "data.grid"),
    ("data.path=", "data.path"),
    ("name=a b", "name"),
    ("name=x\x1b[2J", "name"),
    ("train.seed=4294967296", "train.seed"),
]


@pytest.mark.parametrize("override,key", CROSS_FIELD)
def test_bad_value_related_fields(override, key):
    k, v = override.split("=", 1)  # as given: some of these would not even parse as YAML
    v = C.parse_override(override)[1] if v.strip().isdigit() else v
    if override == "data.path=":
        v = "  "  # an empty override is null: give a blank path instead
    model = "trm_att" if key == "model.hidden_size" else "trm_mlp"
    refused_clearly(lambda: C.resolve(model, "sudoku", "tiny", {k: v}), key)


BAD_OVERRIDES = [
    ("model.layerz=2", "model.layerz"),  # unknown key
    ("modle.layers=2", "modle"),
    ("model.layers=two", "model.layers"),  # wrong types
    ("model.layers=1.5", "model.layers"),
    ("model.layers=true", "model.layers"),
    ("model.mixer=conv", "model.mixer"),
    ("optim.grad_clip=abc", "optim.grad_clip"),
    ("optim.lr=[1, 2]", "optim.lr"),
    ("optim.lr=" + "9" * 400, "optim.lr"),  # an integer too large for a float
    ("optim.lr=1e400", "optim.lr"),  # a float that overflows to inf
    ("optim=3", "optim"),
    ("model.n_cycles={a: 1, a: 2}", "duplicate key 'a'"),
    ("model.n_cycles=[1,", "invalid YAML"),
    ("=3", "key before '=' is empty"),
    ("model.n_cycles", "key=value"),
    ("model..n_cycles=3", "empty part"),
    ("__use_yte__=1", "__use_yte__"),
]


@pytest.mark.parametrize("text,name", BAD_OVERRIDES)
def test_bad_override(text, name):
    def go():
        k, v = C.parse_override(text)
        C.resolve("trm_mlp", "sudoku", "smoke", {k: v})

    refused_clearly(go, name)


def test_bad_override_given_dotted_and_nested():
    refused_clearly(lambda: C.resolve("trm_mlp", "sudoku", "smoke", {"optim.lr": 0.1, "optim": {"lr": 0.2}}),
                    "duplicate key 'optim.lr'")


def test_bad_cli_value_exits_with_one_line(capsys):
    from trm.cli import main

    assert main(["spec", "--scale", "smoke", "--model", "trm_mlp", "--task", "sudoku", "optim.beta2=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "optim.beta2" in err and "Traceback" not in err


def test_bad_write_spec_json_exits_with_one_line(capsys, tmp_path):
    from trm.cli import main

    rc = main(["write-spec", "--json", json.dumps({"train": {"ema_rate": 1.0}}), "--out", str(tmp_path / "s.yaml")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "train.ema_rate" in err
    assert not (tmp_path / "s.yaml").exists()


def test_bad_spec_file_names_file_and_key(tmp_path):
    spec = C.resolve("trm_mlp", "sudoku", "smoke")
    path = tmp_path / "spec.yaml"
    C.dump_spec(spec, path)
    path.write_text(path.read_text().replace("halt_exploration_prob: 0.1", "halt_exploration_prob: 1.5"))
    refused_clearly(lambda: C.load_spec(path), str(path), "model.halt_exploration_prob")


# --------------------------------------------------------------------------------------
# Config files: empty, duplicate keys, YTE, bad YAML, bad values, named files
# --------------------------------------------------------------------------------------

BAD_MODEL_FILES = {
    "empty": ("", ["empty"]),
    "comment_only": ("# nothing here\n", ["empty"]),
    "dup_top": ("inherit: trm_mlp\ninherit: hrm\n", ["duplicate key 'inherit'", "line 2"]),
    "dup_nested": ("inherit: trm_mlp\noptim:\n  lr: 0.1\n  lr: 0.2\n", ["duplicate key 'optim.lr'"]),
    "dup_deep": ("inherit: trm_mlp\na:\n  b:\n    c: 1\n    c: 2\n", ["duplicate key 'a.b.c'"]),
    "dup_dotted_nested": ("inherit: trm_mlp\noptim.lr: 0.1\noptim:\n  lr: 0.2\n", ["duplicate key 'optim.lr'"]),
    "yte": ("__use_yte__: true\ninherit: trm_mlp\n", ["__use_yte__"]),
    "yte_quoted": ("'__use_yte__': true\ninherit: trm_mlp\n", ["__use_yte__"]),
    "top_list": ("- a\n- b\n", ["expected a mapping at the top level"]),
    "top_scalar": ("just text\n", ["expected a mapping at the top level"]),
    "bad_yaml": ("inherit: trm_mlp\noptim: {lr: [\n", ["invalid YAML", "line"]),
    "tab_indent": ("optim:\n\tlr: 1\n", ["invalid YAML"]),
    "section_not_mapping": ("inherit: trm_mlp\noptim: [1, 2]\n", ["optim"]),
    "string_lr": ("inherit: trm_mlp\noptim: {lr: abc}\n", ["'optim.lr'"]),
    "unknown_key": ("inherit: trm_mlp\nmodel: {layerz: 2}\n", ["model.layerz"]),
    "negative_lr": ("inherit: trm_mlp\noptim: {lr: -1e-3}\n", ["optim.lr"]),
    "ema_rate_above_one": ("inherit: trm_mlp\ntrain: {ema: true, ema_rate: 1.5}\n", ["train.ema_rate"]),
    "exploration_negative": ("inherit: trm_mlp\nmodel.halt_exploration_prob: -0.1\n", ["model.halt_exploration_prob"]),
    "inherit_missing": ("inherit: no_such_model\n", ["no_such_model"]),
}


@pytest.mark.parametrize("case", sorted(BAD_MODEL_FILES))
def test_bad_model_file(cfg, case):
    text, names = BAD_MODEL_FILES[case]
    name = f"bad_{case}"
    path = cfg / "models" / f"{name}.yaml"
    path.write_text(text)
    refused_clearly(lambda: C.resolve(name, "sudoku", "smoke", config_dir=cfg), str(path), *names)


def test_bad_model_file_not_utf8(cfg):
    path = cfg / "models" / "bad_binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    refused_clearly(lambda: C.resolve("bad_binary", "sudoku", "smoke", config_dir=cfg), str(path))


def test_bad_inherit_cycle(cfg):
    (cfg / "models" / "bad_cycle_a.yaml").write_text("inherit: bad_cycle_b\n")
    (cfg / "models" / "bad_cycle_b.yaml").write_text("inherit: bad_cycle_a\n")
    refused_clearly(lambda: C.resolve("bad_cycle_a", "sudoku", "smoke", config_dir=cfg), "inherit cycle")


@pytest.mark.parametrize("name", ["bad name", "../trm_mlp", "x;rm", "tab\tname"])
def test_bad_model_name(cfg, name):
    refused_clearly(lambda: C.resolve(name, "sudoku", "smoke", config_dir=cfg), "letters, digits")


BAD_SCALE_FILES = {
    "empty": ("", ["empty"]),
    "unknown_top": ("basee: {optim: {lr: 0.1}}\n", ["basee"]),
    "base_lr_zero": ("inherit: smoke\nbase: {optim: {lr: 0}}\n", ["optim.lr", "base"]),
    "task_batch_zero": ("inherit: smoke\ntasks: {sudoku: {train: {global_batch_size: 0}}}\n",
                        ["train.global_batch_size", "tasks.sudoku"]),
    "dup_base": ("inherit: smoke\nbase: {}\nbase: {}\n", ["duplicate key 'base'"]),
    "yte": ("__use_yte__: true\ninherit: smoke\n", ["__use_yte__"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SCALE_FILES))
def test_bad_scale_file(cfg, case):
    text, names = BAD_SCALE_FILES[case]
    name = f"bad_{case}"
    path = cfg / "scales" / f"{name}.yaml"
    path.write_text(text)
    refused_clearly(lambda: C.resolve("trm_mlp", "sudoku", name, config_dir=cfg), str(path), *names)


@pytest.mark.parametrize("bad", ["-3", "1.5", "4294967296"])
def test_bad_scale_seeds(cfg, bad):
    """A scale's seeds list, checked when the scale is read (before any cell resolves)."""
    scale = cfg / "scales" / "bad_seeds.yaml"
    scale.write_text(f"inherit: smoke\nseeds: [0, {bad}]\n")
    path = _study(cfg, "uses_bad_seeds", "")
    refused_clearly(lambda: S.expand(S.load_study(path), "bad_seeds", cfg), str(scale), "seeds:",
                    "train.seed", bad)


def test_good_later_seeds_equal_a_fresh_resolve(cfg):
    path = _study(cfg, "good_seeds", "seeds: [3, 1, 2]\ngrid: {model.n_cycles: [1, 2]}\n")
    for run in S.expand(S.load_study(path), "smoke", cfg):
        fresh = C.resolve(run.model, run.task, "smoke", run.knobs, seed=run.seed, config_dir=cfg)
        assert run.spec == fresh and run.spec is not fresh
        assert run.sig == C.signature(fresh) and run.data_sig == C.data_signature(fresh)


def test_bad_task_file_names_its_task(cfg):
    path = cfg / "tasks" / "bad_task.yaml"
    path.write_text("data: {task: maze, n_aug: -1}\n")
    refused_clearly(lambda: C.resolve("trm_mlp", "bad_task", "smoke", config_dir=cfg), "data.")


# --------------------------------------------------------------------------------------
# Studies: checked at planning, before any run
# --------------------------------------------------------------------------------------

STUDY_HEAD = "tasks: [sudoku]\nmodels: [trm_mlp]\n"
BAD_STUDIES = {
    "unknown_key": ("modles: [trm_mlp]\n", ["modles"]),
    "unknown_scale": ("scales: {papr: {seeds: [0]}}\n", ["scales.papr", "no scale named"]),
    "unknown_scale_key": ("scales: {smoke: {gird: {model.n_cycles: [1]}}}\n", ["scales.smoke.gird"]),
    "scale_renames": ("scales: {smoke: {name: other}}\n", ["scales.smoke.name"]),
    "scale_not_mapping": ("scales: {smoke: [1]}\n", ["scales.smoke"]),
    "scale_bad_figure": ("scales: {smoke: {figure: {x: model, y: acc}}}\n", ["scales.smoke.figure.y", "acc"]),
    "unknown_note_scale": ("notes: {tiiny: text}\n", ["notes.tiiny"]),
    "figure_bad_y": ("figure: {x: model, y: exact_acuracy}\n", ["figure.y", "exact_acuracy"]),
    "figure_bad_x": ("figure: {x: modle, y: exact_accuracy}\n", ["figure.x", "modle"]),
    "figure_bad_hue": ("figure: {x: model, y: exact_accuracy, hue: mdl}\n", ["figure.hue", "mdl"]),
    "figure_bad_kind": ("figure: {kind: depth_scalin}\n", ["figure.kind", "depth_scalin"]),
    "figure_no_y": ("figure: {x: model}\n", ["figure.y"]),
    "figure_not_string": ("figure: {x: model, y: exact_accuracy, hue: 3}\n", ["figure.hue"]),
    "figure_unknown_key": ("figure: {x: model, y: exact_accuracy, colour: model}\n", ["figure.colour"]),
    "figure_cell_in_view": ("figure: {x: cell, y: exact_accuracy}\n", ["figure.x", "cell"]),
    "extra_bad_y": ("extra_figures: {mem: {x: model, y: peak_rss}}\n", ["extra_figures.mem.y", "peak_rss"]),
    "extra_unknown_key": ("extra_figures: {mem: {x: model, yy: exact_accuracy}}\n", ["extra_figures.mem.yy"]),
    "extra_bad_kind": ("extra_figures: {mem: {kind: bars}}\n", ["extra_figures.mem.kind"]),
    "extra_not_mapping": ("extra_figures: {mem: [1]}\n", ["extra_figures.mem"]),
    "extra_bad_name": ("extra_figures: {'mem/../x': {x: model, y: exact_accuracy}}\n", ["extra_figures"]),
    "seed_negative": ("seeds: [-1]\n", ["seeds"]),
    "seed_twice": ("seeds: [0, 0]\n", ["seeds", "twice"]),
    "seed_float": ("seeds: [0.5]\n", ["seeds"]),
    "seed_bool": ("seeds: [true]\n", ["seeds"]),
    "exclude_typo": ("exclude: [{model.n_cyles: 1}]\n", ["exclude", "model.n_cyles"]),
    "grid_empty_axis": ("grid: {model.n_cycles: []}\n", ["grid axis 'model.n_cycles'"]),
    "zip_unequal": ("zip: {model.n_cycles: [1, 2], model.n_latent_steps: [1]}\n", ["zip"]),
    "grid_bad_value": ("grid: {model.n_cycles: [0, 1]}\n", ["model.n_cycles", "cell"]),
    "grid_unknown_key": ("grid: {model.n_cyclez: [1]}\n", ["model.n_cyclez"]),
    "base_bad_value": ("base: {optim.lr: -1}\n", ["optim.lr"]),
    "dup_key": ("grid: {model.n_cycles: [1]}\ngrid: {model.n_cycles: [2]}\n", ["duplicate key 'grid'"]),
    "yte": ("__use_yte__: true\n", ["__use_yte__"]),
}


def _study(cfg: Path, name: str, body: str, head: str = STUDY_HEAD) -> Path:
    path = cfg / "studies" / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + head + body)
    return path


@pytest.mark.parametrize("case", sorted(BAD_STUDIES))
def test_bad_study(cfg, case):
    body, names = BAD_STUDIES[case]
    name = f"bad_{case}"
    path = _study(cfg, name, body)
    refused_clearly(lambda: S.expand(S.load_study(path), "smoke", cfg), str(path), *names)


BAD_STUDY_HEADS = {
    "model_name_space": "tasks: [sudoku]\nmodels: ['trm mlp']\n",
    "model_name_path": "tasks: [sudoku]\nmodels: ['../trm_mlp']\n",
    "task_name_slash": "tasks: [sudoku, 'a/b']\nmodels: [trm_mlp]\n",
    "model_not_string": "tasks: [sudoku]\nmodels: [3]\n",
}


@pytest.mark.parametrize("case", sorted(BAD_STUDY_HEADS))
def test_bad_study_names(cfg, case):
    path = _study(cfg, f"bad_{case}", "", head=BAD_STUDY_HEADS[case])
    refused_clearly(lambda: S.load_study(path), str(path), "letters, digits")


def test_bad_study_file_name(cfg):
    path = cfg / "studies" / "bad.name.yaml"
    path.write_text("name: bad.name\n" + STUDY_HEAD)
    refused_clearly(lambda: S.load_study(path), "study name", "letters, digits")


def test_bad_study_empty_file(cfg):
    path = cfg / "studies" / "bad_empty.yaml"
    path.write_text("")
    refused_clearly(lambda: S.load_study(path), str(path), "empty")


def test_bad_study_name_mismatch(cfg):
    path = cfg / "studies" / "bad_mismatch.yaml"
    path.write_text("name: other\n" + STUDY_HEAD)
    refused_clearly(lambda: S.load_study(path), str(path), "'name'")


def test_bad_study_selection_unknown():
    refused_clearly(lambda: S.select_studies("depth_scaling,no_such_study"), "no_such_study")


def test_good_cell_overrides_the_base_key(cfg):
    """Not a duplicate: a cell's dotted key overrides the study base's nested one."""
    path = _study(cfg, "good_base_cell", "base: {train: {steps: 5}}\ngrid: {train.steps: [10]}\n")
    runs = S.expand(S.load_study(path), "smoke", cfg)
    assert {r.spec.train.steps for r in runs} == {10}


def test_good_study_selected_twice_counts_once():
    _, once = S.manifest("depth_scaling", "smoke")
    _, twice = S.manifest("depth_scaling,depth_scaling", "smoke")
    _, listed = S.manifest(["depth_scaling", "depth_scaling"], "smoke")
    assert len(once) == len(twice) == len(listed) > 0


def test_good_every_shipped_study_still_plans():
    for scale in C.available("scales"):
        studies, runs = S.manifest("all", scale)
        assert runs and set(studies) == set(S.study_paths())


# --------------------------------------------------------------------------------------
# Workflow config and profiles (read by Snakemake itself)
# --------------------------------------------------------------------------------------

BAD_WORKFLOW_FILES = {
    "profile_yte": ("profiles/bad/config.yaml", "__use_yte__: true\ncores: 2\n", ["__use_yte__"]),
    "cluster_dup": ("slurm/cluster.yaml", "slurm:\n  partition: a\n  partition: b\n", ["duplicate key 'slurm.partition'"]),
    "config_dup": ("configs/config.yaml", "scale: tiny\nscale: paper\n", ["duplicate key 'scale'"]),
    "config_empty": ("configs/config.yaml", "", ["empty"]),
    "profile_bad_yaml": ("slurm/config.yaml", "keep-going: [\n", ["invalid YAML"]),
    "model_yte": ("configs/models/bad_yte.yaml", "__use_yte__: true\n", ["__use_yte__"]),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKFLOW_FILES))
def test_bad_workflow_file(repo_copy, case):
    rel, text, names = BAD_WORKFLOW_FILES[case]
    path = repo_copy / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    refused_clearly(lambda: C.check_workflow_files(C.workflow_files(repo_copy), repo_copy / "configs"),
                    str(path), *names)


def test_bad_configfile_on_the_command_line(repo_copy, tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("__use_yte__: true\nscale: smoke\n")
    refused_clearly(lambda: C.check_workflow_files(C.workflow_files(repo_copy, [extra])), str(extra))


def test_good_shipped_workflow_files_pass():
    C.check_workflow_files(C.workflow_files(REPO), REPO / "configs")


def test_bad_yte_stops_snakemake(repo_copy):
    """End to end: the workflow refuses to plan with a template in its config file."""
    (repo_copy / "configs" / "config.yaml").write_text(
        "__use_yte__: true\nscale: smoke\nstudies: all\nlauncher: inline\n")
    env = {**os.environ, "TRM_CONFIG_DIR": str(repo_copy / "configs")}
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q"], cwd=repo_copy, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "YTE templating ('__use_yte__') is refused" in r.stdout + r.stderr


# --------------------------------------------------------------------------------------
# SLURM: nothing with control characters reaches an sbatch script
# --------------------------------------------------------------------------------------

SLURM_STRINGS = ["slurm_partition", "slurm_account", "qos", "constraint", "gpu_type", "slurm_extra",
                 "slurm_python"]


@pytest.mark.parametrize("key", SLURM_STRINGS)
@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1b"], ids=["LF", "CR", "NUL", "ESC"])
def test_bad_slurm_string(key, char):
    refused_clearly(lambda: resources.parse_resources({key: f"a{char}#SBATCH --wrap=evil"}), key, "control character")


@pytest.mark.parametrize("char", ["\r", "\x00", "\x0b"], ids=["CR", "NUL", "VT"])
def test_bad_slurm_setup_line(char):
    refused_clearly(lambda: resources.parse_resources({"slurm_setup": f"module load x{char}evil"}), "slurm_setup")


def test_bad_slurm_job_name():
    refused_clearly(lambda: slurm_jobs.slurm_parameters(resources.Resources(), "trm-x\n#SBATCH --wrap=evil"), "job name")


def test_bad_slurm_run_directory(tmp_path):
    refused_clearly(lambda: slurm_jobs.sbatch_script(resources.Resources(), "trm-x", tmp_path / "run\ndir"), "run directory")


def test_bad_slurm_resources_built_directly():
    res = dataclasses.replace(resources.Resources(), qos="normal\n#SBATCH --x")
    refused_clearly(lambda: slurm_jobs.slurm_parameters(res, "trm-x"), "qos")


# --------------------------------------------------------------------------------------
# Inputs that must keep working (so the checks above are not just "refuse everything")
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("optim.lr=1e-3", 1e-3), ("optim.lr=1E-4", 1e-4), ("optim.lr=3e2", 300.0),
    ("optim.lr=2.5e-3", 2.5e-3), ("optim.lr=1.0e-3", 1e-3), ("model.n_cycles=10", 10),
])
def test_good_yaml12_numbers_on_the_command_line(text, value):
    k, v = C.parse_override(text)
    assert v == value and type(v) is type(value)
    spec = C.resolve("trm_mlp", "sudoku", "smoke", {k: v})
    section, name = k.split(".")
    assert getattr(getattr(spec, section), name) == value


def test_good_yaml12_numbers_in_a_file(cfg):
    path = cfg / "models" / "good_exp.yaml"
    path.write_text("inherit: trm_mlp\noptim: {lr: 1e-3, puzzle_emb_lr: 5E-2}\nmodel: {norm_eps: 1e-6}\n")
    assert C.load_yaml(path)["optim"] == {"lr": 1e-3, "puzzle_emb_lr": 5e-2}
    # The smoke scale sets its own lr; norm_eps comes through from the model file.
    assert C.resolve("good_exp", "sudoku", "smoke", config_dir=cfg).model.norm_eps == 1e-6


def test_good_edge_values_accepted():
    spec = C.resolve("trm_mlp", "sudoku", "smoke", {
        "eval.n_supervision": 0, "optim.grad_clip": None, "optim.min_lr_ratio": 0.0,
        "optim.weight_decay": 0.0, "train.eval_interval": 0, "data.n_aug": 0, "train.seed": 0,
        "model.halt_exploration_prob": 1.0, "train.ema_rate": 0.0, "optim.beta1": 0.0,
    })
    assert spec.eval.n_supervision == 0 and spec.optim.grad_clip is None


def test_every_numeric_field_has_a_range():
    """A new numeric knob cannot skip its range check."""
    numeric = set()
    for section in ("model", "data", "optim", "train", "eval"):
        cls = typing.get_type_hints(C.RunSpec)[section]
        for name, tp in typing.get_type_hints(cls).items():
            args = set(typing.get_args(tp)) | {tp}
            if args & {int, float, list[int]} and bool not in args:
                numeric.add(f"{section}.{name}")
    assert numeric - set(C.FIELD_RANGES) == set()
