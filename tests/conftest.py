import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

torch.set_num_threads(1)


def need_shared(sub: str = "") -> Path:
    """Real data from ../shared/data; skipped locally when absent, a failure under CI."""
    path = SHARED_DATA / sub
    if not path.exists():
        if IN_CI:
            pytest.fail(f"CI needs {path}")
        pytest.skip(f"{path} not present")
    return path


def group_originals(split):
    """The first puzzle of each group of a built split: the instance before augmentation."""
    return split.inputs[split.puzzle_indices[split.group_indices[:-1]]]


def split_keys(built) -> tuple[set, set]:
    """Row bytes of the training instances (before augmentation) and of the test puzzles,
    to check a generator's splits for duplicates."""
    return ({row.tobytes() for row in group_originals(built.train)},
            {row.tobytes() for row in built.test.inputs})


@pytest.fixture
def repo_copy(tmp_path):
    """A scratch copy of the workflow (Snakefile, workflow/, configs/, profiles/)."""
    dst = tmp_path / "repo"
    dst.mkdir()
    for name in ("Snakefile", "environment.yml"):
        shutil.copy(REPO / name, dst / name)
    for name in ("workflow", "configs", "profiles", "slurm"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dst / name)
    return dst


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """The smoke-scale Sudoku dataset, built once per test session."""
    from trm import config as C
    from trm.data.build import build_dataset

    spec = C.resolve("trm_mlp", "sudoku", "smoke")
    out = tmp_path_factory.mktemp("data") / "sudoku4"
    build_dataset(spec.data, out)
    return out
