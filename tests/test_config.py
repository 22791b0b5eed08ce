"""The run spec: layering, validation that names the bad key, signatures."""

import pytest

from trm import config as C
from trm.cli import main


def test_resolve_layers_model_task_scale_override():
    spec = C.resolve("trm_mlp", "sudoku", "tiny", {"model.n_cycles": 5}, seed=3)
    assert spec.model.mixer == "mlp"  # model file
    assert spec.data.grid == 6  # tiny scale task section over the task file's 9
    assert spec.model.hidden_size == 32  # scale base
    assert spec.model.n_latent_steps == 2  # scale models section
    assert spec.model.n_cycles == 5  # override wins
    assert spec.train.seed == 3


def test_inherit_makes_small_diffs():
    att = C.resolve("trm_att", "sudoku", "paper")
    mlp = C.resolve("trm_mlp", "sudoku", "paper")
    da, dm = C.flatten(C.to_dict(att)), C.flatten(C.to_dict(mlp))
    diff = {k for k in da if da[k] != dm[k]}
    assert diff == {"model.mixer", "model.pos_encoding", "name"}


def test_paper_scale_per_model_epochs():
    assert C.resolve("hrm", "sudoku", "paper").train.epochs == 20000
    assert C.resolve("trm_mlp", "sudoku", "paper").train.epochs == 50000
    assert C.resolve("trm_att", "maze", "paper").model.n_latent_steps == 4


@pytest.mark.parametrize(
    "override, key",
    [
        ({"model.n_cycle": 3}, "model.n_cycle"),
        ({"optim": {"lrr": 1.0}}, "optim.lrr"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_unknown_key_rejected_naming_it(override, key):
    with pytest.raises(C.SpecError, match=f"unknown key '{key}'"):
        C.resolve("trm_mlp", "sudoku", "tiny", override)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"model.n_cycles": "3"}, "model.n_cycles"),
        ({"model.mixer": "conv"}, "model.mixer"),
        ({"train.ema": 1}, "train.ema"),
        ({"optim.grad_clip": "big"}, "optim.grad_clip"),
    ],
)
def test_bad_type_rejected_naming_key(override, key):
    with pytest.raises(C.SpecError, match=f"'{key}' must be"):
        C.resolve("trm_mlp", "sudoku", "tiny", override)


def test_range_checks():
    with pytest.raises(C.SpecError, match="model.n_cycles"):
        C.resolve("trm_mlp", "sudoku", "tiny", {"model.n_cycles": 0})
    with pytest.raises(C.SpecError, match="num_heads"):
        C.resolve("trm_att", "sudoku", "tiny", {"model.num_heads": 5})


def test_bad_key_in_a_file_names_the_file(tmp_path):
    import shutil

    cfg = tmp_path / "configs"
    shutil.copytree(C.CONFIG_DIR, cfg)
    (cfg / "models" / "broken.yaml").write_text("model:\n  n_cyclez: 2\n")
    with pytest.raises(C.SpecError) as e:
        C.resolve("broken", "sudoku", "tiny", config_dir=cfg)
    assert "broken.yaml" in str(e.value) and "model.n_cyclez" in str(e.value)


def test_unknown_model_lists_available():
    with pytest.raises(C.SpecError, match="available: .*trm_mlp"):
        C.resolve("nope", "sudoku", "tiny")


def test_signature_ignores_non_semantic_and_seed():
    a = C.resolve("trm_mlp", "sudoku", "tiny", seed=0)
    b = C.resolve("trm_mlp", "sudoku", "tiny", {"train.log_interval": 7, "eval.batch_size": 3}, seed=1)
    c = C.resolve("trm_mlp", "sudoku", "tiny", {"model.n_cycles": 3})
    assert C.signature(a) == C.signature(b)
    assert C.signature(a) != C.signature(c)
    assert C.data_signature(a) == C.data_signature(c)


def test_spec_roundtrip(tmp_path):
    spec = C.resolve("hrm", "sudoku", "smoke", seed=2)
    C.dump_spec(spec, tmp_path / "s.yaml")
    assert C.load_spec(tmp_path / "s.yaml") == spec


def test_cli_spec_and_error_exit(capsys):
    assert main(["spec", "--scale", "smoke", "--model", "hrm", "--task", "sudoku", "model.n_cycles=2"]) == 0
    out = capsys.readouterr().out
    assert "n_cycles: 2" in out and "# sig:" in out
    assert main(["spec", "--scale", "smoke", "--model", "hrm", "--task", "sudoku", "model.bad=2"]) == 2
    assert "model.bad" in capsys.readouterr().err


def test_describe_paper_counts(capsys):
    import json

    assert main(["describe", "--model", "trm_mlp", "--task", "sudoku", "--scale", "paper"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"] == 5_028_866
    assert d["effective_depth"] == 42
    assert d["forward_calls_per_step"] == 21 and d["grad_calls_per_step"] == 7
