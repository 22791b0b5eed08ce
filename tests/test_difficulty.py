"""Instance difficulty: recorded by the builders (checked against recomputations), optional on
disk (datasets without it load and hash as before), binned by the evaluation, and drawn by
trm/results/difficulty.py."""

import hashlib
import json
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trm.config import DataSpec
from trm.data import identity
from trm.data import official_format as fmt
from trm.data import sudoku_solver as solver
from trm.data.build import build_dataset
from trm.data.dataset import PuzzleSplit, load_split
from trm.results import difficulty as D
from trm.train.evaluate import difficulty_bins, difficulty_record, evaluate


@pytest.fixture(scope="module")
def sudoku6(tmp_path_factory):
    spec = DataSpec(task="sudoku", source="generate", grid=6, blanks=24, n_train=6, n_test=8,
                    n_aug=3, seed=5)
    root = tmp_path_factory.mktemp("d") / "sudoku6"
    build_dataset(spec, root)
    return root


@pytest.fixture(scope="module")
def maze5(tmp_path_factory):
    spec = DataSpec(task="maze", source="generate", grid=5, min_path=6, n_train=6, n_test=8,
                    n_aug=3, seed=2)
    root = tmp_path_factory.mktemp("d") / "maze5"
    build_dataset(spec, root)
    return root


# --------------------------------------------------------------------------------------
# Recorded difficulty = a recomputation
# --------------------------------------------------------------------------------------


def _singles_rounds(grid: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """Synchronous naked + hidden singles written with sets, independent of the kernel."""
    geo = solver.geometry(n)
    units = [list(u) for u in geo.units]
    cand = [{int(v)} if v else set(range(1, n + 1)) for v in grid]
    solved_at = np.where(np.asarray(grid) > 0, 0, -1)
    rounds = 0
    while True:
        new = [set(c) for c in cand]
        for c, digits in enumerate(cand):
            if len(digits) == 1:
                for p in geo.peers[c]:
                    new[p] -= digits
        for unit in units:
            for d in range(1, n + 1):
                where = [c for c in unit if d in cand[c]]
                if len(where) == 1:
                    new[where[0]] &= {d}
        if new == cand:
            return rounds, solved_at
        rounds += 1
        for c in range(len(new)):
            if solved_at[c] < 0 and len(new[c]) == 1:
                solved_at[c] = rounds
        cand = new


def _grids(split: PuzzleSplit) -> np.ndarray:
    return split.inputs.astype(np.int64) - 1  # token d + 1 -> digit d, blank 1 -> 0


def test_sudoku_difficulty_equals_recomputation(sudoku6):
    meta = json.loads((sudoku6 / "test" / "dataset.json").read_text())
    assert meta["difficulty"] == {"example": "deduction_rounds", "cell": "deduction_round"}
    test = load_split(sudoku6, "test")
    assert test.difficulty.dtype == np.int32 and test.cell_difficulty.dtype == np.int16
    for grid, ex, cell in zip(_grids(test), test.difficulty, test.cell_difficulty):
        rounds, solved_at = _singles_rounds(grid, 6)
        assert ex == rounds and np.array_equal(cell, solved_at)
    # Augmented variants carry their group's value; the cell values move with the cells,
    # so each variant's cells equal a recomputation on the variant itself.
    train = load_split(sudoku6, "train")
    starts = train.puzzle_indices[train.group_indices[:-1]]
    ends = train.puzzle_indices[train.group_indices[1:]]
    for a, b in zip(starts, ends):
        original = _singles_rounds(_grids(train)[a], 6)[0]
        assert (train.difficulty[a:b] == original).all()
        for i in range(a, b):
            assert np.array_equal(train.cell_difficulty[i], _singles_rounds(_grids(train)[i], 6)[1])
    prov = meta["provenance"]["instance_difficulty"]
    _, _, guesses = solver.solve(_grids(test), 6, cap=1)
    assert prov["per_original_puzzle"]["test"]["guesses"]["max"] == int(guesses.max())


def _bfs(question: np.ndarray, side: int) -> np.ndarray:
    """Plain BFS from S over non-wall cells (tokens: wall 1, start 3), -1 elsewhere."""
    q = question.reshape(side, side)
    dist = -np.ones((side, side), np.int64)
    start = tuple(np.argwhere(q == 3)[0])
    dist[start] = 0
    todo = deque([start])
    while todo:
        r, c = todo.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < side and 0 <= cc < side and q[rr, cc] != 1 and dist[rr, cc] < 0:
                dist[rr, cc] = dist[r, c] + 1
                todo.append((rr, cc))
    return dist.reshape(-1)


def test_maze_difficulty_equals_bfs(maze5):
    for split in ("train", "test"):
        s = load_split(maze5, split)
        assert s.difficulty_names == {"example": "shortest_path_moves",
                                      "cell": "bfs_distance_from_start"}
        for q, a, ex, cell in zip(s.inputs, s.labels, s.difficulty, s.cell_difficulty):
            dist = _bfs(q, 5)
            assert np.array_equal(cell, dist)
            assert ex == dist[np.flatnonzero(q == 4)[0]]  # the goal's distance
            assert ex == (a == 5).sum() + 1  # the label path: moves = path cells + 1
    raw = pd.read_csv(maze5 / "raw" / "test.csv")
    rating = [c for c in raw.columns if "rating" in c.lower()][0]
    assert list(raw[rating]) == list(load_split(maze5, "test").difficulty)


# --------------------------------------------------------------------------------------
# Optional on disk: datasets without difficulty load and hash as before
# --------------------------------------------------------------------------------------


def _hash_without_difficulty(root: Path) -> str:
    """content_hash as it was before difficulty existed: the five required arrays only."""
    h = hashlib.sha256()
    for split in sorted(fmt.SPLITS):
        for name in fmt.ARRAY_NAMES:
            arr = np.ascontiguousarray(np.load(fmt.array_path(root / split, name)))
            h.update(f"{split}/{name}/{arr.dtype.str}/{arr.shape}".encode())
            h.update(arr.reshape(-1).view(np.uint8).data)
    return "sha256:" + h.hexdigest()


def test_dataset_without_difficulty_loads_and_hashes_as_before(sudoku6, tmp_path):
    plain = tmp_path / "plain"
    for split in fmt.SPLITS:
        (plain / split).mkdir(parents=True)
        arrays = {n: np.load(fmt.array_path(sudoku6 / split, n)) for n in fmt.ARRAY_NAMES}
        fmt.write_arrays(plain / split, arrays)
        meta = json.loads((sudoku6 / split / "dataset.json").read_text())
        meta.pop("difficulty")
        meta["provenance"]["content_hash"] = _hash_without_difficulty(sudoku6)
        fmt.write_json(plain / split / "dataset.json", meta)
    (plain / "identifiers.json").write_text('["<blank>"]')
    assert fmt.is_complete(plain)
    s = load_split(plain, "test")
    assert s.difficulty is None and s.cell_difficulty is None and s.difficulty_names == {}
    arrays = {sp: {n: np.load(fmt.array_path(plain / sp, n)) for n in fmt.ARRAY_NAMES}
              for sp in fmt.SPLITS}
    assert fmt.content_hash(arrays) == _hash_without_difficulty(sudoku6)
    assert identity.verify_content(plain)["content_hash"] == _hash_without_difficulty(sudoku6)
    # With difficulty the hash covers it too.
    recorded = json.loads((sudoku6 / "train" / "dataset.json").read_text())["provenance"]
    assert recorded["content_hash"] != _hash_without_difficulty(sudoku6)
    assert identity.verify_content(sudoku6)["content_hash"] == recorded["content_hash"]


def test_missing_or_changed_difficulty_is_refused(sudoku6, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sudoku6, copy)
    path = fmt.array_path(copy / "test", "difficulty")
    changed = np.load(path)
    changed[0] += 1
    np.save(path, changed)
    with pytest.raises(identity.DatasetMismatch, match="content hash"):
        identity.verify_content(copy)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="deduction_rounds"):
        load_split(copy, "test")


# --------------------------------------------------------------------------------------
# Binning and per-bin accuracy
# --------------------------------------------------------------------------------------


def test_per_bin_accuracy_on_a_constructed_array():
    values = np.array([2, 2, 3, 3, 3, 7, -1])
    correct = np.array([[1, 0, 0, 0, 1, 1, 1],
                        [1, 1, 1, 0, 1, 0, 0]], bool)
    rec = difficulty_record(values, correct, "moves")
    assert rec["binning"] == "distinct" and rec["bins"] == [[2, 2], [3, 3], [7, 7]]
    assert rec["count"] == [2, 3, 1]  # the undefined (-1) example is left out
    assert rec["exact_accuracy"] == [[0.5, 1 / 3, 1.0], [1.0, 2 / 3, 0.0]]


def test_many_values_get_quantile_bins_covering_every_item():
    values = np.repeat(np.arange(40), np.arange(40) % 5 + 1)
    bins, binning = difficulty_bins(np.bincount(values))
    assert binning == "quantile" and 2 <= len(bins) <= 8
    assert bins[0][0] == 0 and bins[-1][1] == 39
    assert all(b[0] == a[1] + 1 for a, b in zip(bins, bins[1:]))  # contiguous, no overlap
    rec = difficulty_record(values, np.ones((1, len(values)), bool), "x")
    assert sum(rec["count"]) == len(values) and rec["exact_accuracy"] == [[1.0] * len(bins)]
    shares = np.array(rec["count"]) / len(values)
    assert shares.max() < 0.3  # quantile bins: no bin holds most of the items


class _Fixed(torch.nn.Module):
    """Predicts preds[step] for every example (matched by the example's first input token)."""

    def __init__(self, preds):
        super().__init__()
        self.preds = torch.as_tensor(preds)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def initial_latents(self, b, device=None):
        return (torch.zeros(b, dtype=torch.long),)

    def forward(self, latents, inputs, pids):
        (step,) = latents
        tokens = self.preds[step[0], inputs[:, 0]]
        return (step + 1,), torch.nn.functional.one_hot(tokens, 4).float(), torch.zeros(len(inputs)), None


def test_evaluate_reports_accuracy_by_example_and_cell_difficulty():
    inputs = np.array([[0, 1, 1], [1, 1, 1], [2, 1, 1]], np.uint8)
    labels = np.array([[2, 2, 3], [2, 3, 3], [3, 3, 3]], np.uint8)
    preds = np.array([[[2, 2, 2], [2, 3, 3], [0, 0, 0]],    # step 1
                      [[2, 2, 3], [2, 3, 3], [3, 3, 0]]])   # step 2
    split = PuzzleSplit(inputs=inputs, labels=labels, puzzle_identifiers=np.zeros(3, np.int32),
                        puzzle_indices=np.arange(4, dtype=np.int32),
                        group_indices=np.arange(4, dtype=np.int32),
                        meta={"ignore_label_id": 0, "seq_len": 3,
                              "difficulty": {"example": "hops", "cell": "dist"}},
                        difficulty=np.array([1, 1, 4], np.int32),
                        cell_difficulty=np.array([[0, 1, 2], [0, 1, -1], [0, 1, 2]], np.int16))
    for batch in (1, 3):  # per-batch tallies add up to the same result
        ev = evaluate(_Fixed(preds), split, 2, batch, torch.device("cpu"))
        assert ev["by_difficulty"] == {"name": "hops", "binning": "distinct",
                                       "bins": [[1, 1], [4, 4]], "count": [2, 1],
                                       "exact_accuracy": [[0.5, 0.0], [1.0, 0.0]]}
        cell = ev["by_cell_difficulty"]
        assert cell["name"] == "dist" and cell["bins"] == [[0, 0], [1, 1], [2, 2]]
        assert cell["count"] == [3, 3, 2]
        assert cell["cell_accuracy"] == [[2 / 3, 2 / 3, 0.0], [1.0, 1.0, 0.5]]
    plain = PuzzleSplit(inputs=inputs, labels=labels, puzzle_identifiers=split.puzzle_identifiers,
                        puzzle_indices=split.puzzle_indices, group_indices=split.group_indices,
                        meta={"ignore_label_id": 0, "seq_len": 3})
    ev = evaluate(_Fixed(preds), plain, 2, 3, torch.device("cpu"))
    assert "by_difficulty" not in ev and "by_cell_difficulty" not in ev


# --------------------------------------------------------------------------------------
# Table and figure
# --------------------------------------------------------------------------------------


def _fake_runs(tmp_path: Path) -> pd.DataFrame:
    rows = []
    for model, depth in (("trm_a", 2), ("trm_b", 8)):
        for seed in (0, 1):
            run_dir = tmp_path / f"{model}_{seed}"
            run_dir.mkdir()
            hard = 0.1 * seed + (0.6 if depth == 8 else 0.2)
            metrics = {
                "status": "ok", "n_supervision_eval": 2,
                "by_difficulty": {"name": "moves", "binning": "distinct",
                                  "bins": [[6, 6], [8, 8], [10, 10]], "count": [5, 3, 2],
                                  "exact_accuracy": [[0.5, 0.2, 0.0], [0.9, 0.5, hard],
                                                     [0.9, 0.6, hard + 0.1]]},
                "by_cell_difficulty": {"name": "dist", "binning": "distinct",
                                       "bins": [[0, 0], [1, 1]], "count": [10, 20],
                                       "cell_accuracy": [[1.0, 0.4], [1.0, 0.7], [1.0, 0.8]]},
            }
            (run_dir / "metrics.json").write_text(json.dumps(metrics))
            rows.append({"study": "s", "task": "maze", "model": model, "sig": model,
                         "seed": seed, "run_dir": str(run_dir), "status": "ok",
                         "effective_depth": depth, "eval_n_supervision": 2})
    return pd.DataFrame(rows)


def test_long_table_reads_every_bin_and_step(tmp_path):
    runs = _fake_runs(tmp_path)
    frame = D.long_table({"name": "s"}, runs, root=Path("/"))
    # 4 runs x (3 steps x 3 example bins + 3 steps x 2 cell bins)
    assert len(frame) == 4 * (9 + 6)
    row = frame[(frame["model"] == "trm_b") & (frame["seed"] == 1) & (frame["level"] == "example")
                & (frame["bin"] == "10") & (frame["step"] == 2)]
    assert row["accuracy"].item() == pytest.approx(0.7) and row["trained_step"].item()
    assert set(frame["total_depth"]) == {4.0, 16.0}


def test_figure_is_written_from_constructed_runs(tmp_path):
    runs = _fake_runs(tmp_path)
    pdf, png = D.plot_difficulty({"name": "s"}, runs, tmp_path / "fig" / "s_difficulty.pdf",
                                 root=Path("/"))
    assert pdf.stat().st_size > 1000 and png.stat().st_size > 1000
    # A study without any recorded difficulty still gets its (explanatory) figure and table.
    pdf, _ = D.plot_difficulty({"name": "other"}, runs, tmp_path / "fig" / "other.pdf")
    assert pdf.is_file()
    csv = D.write_table({"name": "other"}, runs, tmp_path / "t" / "other_difficulty.csv")
    assert list(pd.read_csv(csv).columns) == D.COLUMNS
