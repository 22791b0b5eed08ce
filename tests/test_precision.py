"""train.precision: resolved before anything runs, recorded, in the signature, refused where
the hardware has no native bf16."""

import json

import pytest
import torch

from trm import config as C
from trm.train import loop, precision


@pytest.fixture
def native(monkeypatch):
    """Pin the hardware probe: native(True) / native(False)."""

    def set_native(value: bool):
        monkeypatch.setenv("TRM_NATIVE_BF16", "1" if value else "0")
        precision.native_bf16.cache_clear()

    yield set_native
    precision.native_bf16.cache_clear()


def test_auto_resolves_from_the_hardware(native):
    native(True)
    assert C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "auto"}).train.precision == "bf16"
    native(False)
    assert C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "auto"}).train.precision == "fp32"


def test_precision_is_in_the_signature(native):
    native(True)
    fp32 = C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "fp32"})
    bf16 = C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "bf16"})
    auto = C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "auto"})
    assert C.signature(fp32) != C.signature(bf16)
    # auto is stored as what it resolved to, so it shares bf16's run directory here.
    assert C.signature(auto) == C.signature(bf16)


def test_bf16_refused_on_a_cpu_without_it(native, tmp_path):
    native(False)
    with pytest.raises(C.SpecError, match="train.precision.*bf16.*AVX512-BF16"):
        C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "bf16", "train.device": "cpu"})
    with pytest.raises(C.SpecError, match="train.precision"):
        C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "half"})
    # A spec file naming bf16 (written on another machine) is refused when loaded here.
    native(True)
    spec = C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "bf16", "train.device": "cpu"})
    C.dump_spec(spec, tmp_path / "spec.yaml")
    native(False)
    with pytest.raises(C.SpecError, match="bf16"):
        C.load_spec(tmp_path / "spec.yaml")


def test_training_refuses_bf16_on_a_device_without_it(native, smoke_data, tmp_path):
    native(True)
    spec = C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "bf16", "train.steps": 2})
    native(False)
    with pytest.raises(precision.PrecisionError):
        loop.Trainer(spec, tmp_path / "run", smoke_data)


def test_precision_is_recorded_and_used(native, smoke_data, tmp_path):
    native(True)
    spec = C.resolve("trm_mlp", "sudoku", "smoke", {"train.precision": "bf16", "train.steps": 4,
                                                    "train.checkpoint_interval": 4})
    out = loop.run(spec, tmp_path / "run", smoke_data, progress=False)
    assert out["status"] == "ok"
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["precision"] == "bf16"
    tr = loop.Trainer(spec, tmp_path / "probe", smoke_data)
    assert tr.bf16
    # Under the trainer's autocast the network's matmuls run in bf16.
    from trm.train.evaluate import autocast

    with autocast(tr.device, tr.bf16):
        assert tr.model.lm_head(torch.randn(2, spec.model.hidden_size)).dtype == torch.bfloat16
