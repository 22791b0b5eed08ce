"""Official-format reading/writing, independent of any task builder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trm.config import DataSpec
from trm.data import official_format as fmt
from trm.data.build import build_dataset, data_spec_for, main
from trm.data.dataset import load_split

REPO = Path(__file__).resolve().parent.parent


def write_hrm_style(root: Path) -> None:
    """A dataset laid out exactly as HRM's builder writes it (no total_puzzles, no provenance),
    written by hand with numpy, not by our builder."""
    for split, n_groups in (("train", 2), ("test", 1)):
        d = root / split
        d.mkdir(parents=True)
        # group 0: puzzles 0,1 (2 and 1 examples); group 1: puzzle 2 (1 example)
        puzzle_indices = np.array([0, 2, 3, 4][: n_groups + 2] if split == "train" else [0, 1],
                                  np.int32)
        group_indices = np.array([0, 2, 3] if split == "train" else [0, 1], np.int32)
        n_ex = int(puzzle_indices[-1])
        inputs = (np.arange(n_ex * 4).reshape(n_ex, 4) % 5 + 1).astype(np.uint8)
        np.save(d / "all__inputs.npy", inputs)
        np.save(d / "all__labels.npy", inputs[:, ::-1].copy())
        np.save(d / "all__puzzle_identifiers.npy", np.zeros(len(puzzle_indices) - 1, np.int32))
        np.save(d / "all__puzzle_indices.npy", puzzle_indices)
        np.save(d / "all__group_indices.npy", group_indices)
        (d / "dataset.json").write_text(json.dumps({
            "pad_id": 0, "ignore_label_id": 0, "blank_identifier_id": 0, "vocab_size": 6,
            "seq_len": 4, "num_puzzle_identifiers": 1, "total_groups": n_groups,
            "mean_puzzle_examples": 1.33, "sets": ["all"],
        }))
    (root / "identifiers.json").write_text('["<blank>"]')


def test_reads_hand_written_official_dir(tmp_path):
    write_hrm_style(tmp_path)
    tr = load_split(tmp_path, "train")
    assert tr.inputs.shape == (4, 4) and tr.num_puzzles == 3 and tr.num_groups == 2
    assert tr.meta["total_puzzles"] == 3  # filled in: HRM does not write it
    assert tr.meta["provenance"] == {"kind": "unknown"}
    te = load_split(tmp_path, "test")
    assert te.num_examples == 1 and te.meta["vocab_size"] == 6
    # build_dataset treats a complete foreign dir as built and returns its meta untouched.
    meta = build_dataset(DataSpec(grid=4, blanks=8, n_train=2, n_test=2), tmp_path)
    assert meta["provenance"] == {"kind": "unknown"} and meta["seq_len"] == 4


def test_reads_multiple_sets_by_concatenation(tmp_path):
    write_hrm_style(tmp_path)
    d = tmp_path / "train"
    for name in fmt.ARRAY_NAMES:
        (d / f"all__{name}.npy").rename(d / f"a__{name}.npy")
        np.save(d / f"b__{name}.npy", np.load(d / f"a__{name}.npy"))
    meta = json.loads((d / "dataset.json").read_text())
    (d / "dataset.json").write_text(json.dumps(meta | {"sets": ["a", "b"]}))
    tr = load_split(tmp_path, "train")
    assert tr.num_examples == 8 and tr.num_puzzles == 6 and tr.num_groups == 4
    assert list(tr.puzzle_indices) == [0, 2, 3, 4, 6, 7, 8]
    assert list(tr.group_indices) == [0, 2, 3, 5, 6]


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the dataset"):
        load_split(tmp_path, "train")
    with pytest.raises(ValueError):
        load_split(tmp_path, "valid")


def test_incomplete_out_dir_is_refused(tmp_path):
    (tmp_path / "ds" / "train").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        build_dataset(DataSpec(grid=4, blanks=8, n_train=2, n_test=2), tmp_path / "ds")


def test_rebuild_returns_existing_without_work(tmp_path):
    spec = DataSpec(grid=4, blanks=8, n_train=3, n_test=2, n_aug=1)
    first = build_dataset(spec, tmp_path / "ds")
    stamp = (tmp_path / "ds" / "train" / "all__inputs.npy").stat().st_mtime_ns
    again = build_dataset(spec, tmp_path / "ds")
    assert again == first
    assert (tmp_path / "ds" / "train" / "all__inputs.npy").stat().st_mtime_ns == stamp


def test_cli_main_builds(tmp_path, capsys):
    assert main(["--task", "sudoku", "--out", str(tmp_path / "ds"), "data.grid=4", "blanks=8",
                 "n_train=3", "n_test=2", "source=generate"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["train"]["groups"] == 3
    assert fmt.is_complete(tmp_path / "ds")


@pytest.mark.skipif(not (REPO / "configs" / "tasks" / "sudoku.yaml").exists(),
                    reason="no configs/tasks/sudoku.yaml yet")
def test_data_spec_for_task_config():
    assert data_spec_for("sudoku", None).task == "sudoku"


def test_pure_python_fallback_gives_identical_data(tmp_path):
    """The no-numba path (TRM_NO_NUMBA=1) must produce byte-identical datasets."""
    spec = dict(task="sudoku", grid=4, blanks=9, n_train=6, n_test=4, n_aug=2, seed=3)
    code = ("import sys; from pathlib import Path; from trm.config import DataSpec;"
            "from trm.data.build import build_dataset;"
            f"print(build_dataset(DataSpec(**{spec!r}), Path(sys.argv[1]))"
            "['provenance']['content_hash'])")
    env = os.environ | {"TRM_NO_NUMBA": "1"}
    slow = subprocess.run([sys.executable, "-c", code, str(tmp_path / "py")], env=env, cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.strip()
    fast = build_dataset(DataSpec(**spec), tmp_path / "nb")["provenance"]["content_hash"]
    assert slow == fast


def test_existing_dataset_from_another_spec_is_an_error(tmp_path):
    build_dataset(DataSpec(grid=4, blanks=8, n_train=3, n_test=2), tmp_path / "ds")
    with pytest.raises(ValueError, match="different DataSpec"):
        build_dataset(DataSpec(grid=4, blanks=8, n_train=4, n_test=2), tmp_path / "ds")
