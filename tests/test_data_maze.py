"""Maze: generator, A* labels, filter, augmentation, official-format build."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import group_originals
from trm.config import DataSpec
from trm.data import maze as M
from trm.data.build import build_dataset
from trm.data.dataset import load_split
from trm.data.dihedral import INVERSE, dihedral, inverse_dihedral
from trm.data.maze_build import text_to_tokens, tokens_to_text

GRID, MIN_MOVES = 10, 20


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("maze") / "ds"
    spec = DataSpec(task="maze", source="generate", grid=GRID, min_path=MIN_MOVES, n_train=25,
                    n_test=15, n_aug=3, seed=1)
    meta = build_dataset(spec, root)
    return root, meta


def test_token_map_and_meta(built):
    root, meta = built
    assert meta["vocab_size"] == 6 and meta["seq_len"] == GRID * GRID
    assert meta["num_puzzle_identifiers"] == 1
    assert [M.WALL, M.FREE, M.START, M.GOAL, M.PATH] == [1, 2, 3, 4, 5]
    assert list(text_to_tokens("# SGo")) == [1, 2, 3, 4, 5]
    assert tokens_to_text(np.array([5, 4, 3, 2, 1])) == "oGS #"
    te = load_split(root, "test")
    assert set(np.unique(te.inputs)) <= {1, 2, 3, 4}
    assert set(np.unique(te.labels)) <= {1, 2, 3, 4, 5}
    assert np.all((te.inputs == 3).sum(1) == 1) and np.all((te.inputs == 4).sum(1) == 1)


def test_every_label_is_an_optimal_path_over_the_filter(built):
    root, _ = built
    for split in ("train", "test"):
        s = load_split(root, split)
        for q, a in zip(s.inputs, s.labels):
            q, a = q.reshape(GRID, GRID), a.reshape(GRID, GRID)
            assert M.path_is_optimal(a, q)
            assert (a == M.PATH).sum() + 1 >= MIN_MOVES  # path cells + 1 = moves


def test_test_labels_are_the_deterministic_astar_plan(built):
    root, _ = built
    te = load_split(root, "test")
    for q, a in zip(te.inputs, te.labels):
        q = q.reshape(GRID, GRID)
        start = int(np.flatnonzero(q.reshape(-1) == M.START)[0])
        goal = int(np.flatnonzero(q.reshape(-1) == M.GOAL)[0])
        path = M.astar_path(q != M.WALL, start, goal)
        expect = q.copy().reshape(-1)
        expect[path[1:-1]] = M.PATH
        assert np.array_equal(expect, a)


def test_layouts_disjoint_across_splits_and_groups(built):
    root, _ = built
    tr, te = load_split(root, "train"), load_split(root, "test")
    originals = group_originals(tr)
    walls = lambda x: (x == M.WALL).tobytes()  # noqa: E731
    train_layouts = {walls(x) for x in originals}
    assert len(train_layouts) == len(originals)
    assert not train_layouts & {walls(x) for x in te.inputs}
    assert tr.num_puzzles == 25 * 4 and te.num_puzzles == 15


def test_astar_matches_bfs_distance():
    rng = np.random.default_rng(0)
    for _ in range(20):
        free = rng.random((8, 8)) > 0.3
        cells = np.flatnonzero(free)
        s, g = rng.choice(cells, 2, replace=False)
        path = M.astar_path(free, int(s), int(g))
        d = M.bfs_distances(free, int(s))[g]
        assert (len(path) - 1 == d) if d >= 0 else len(path) == 0


def test_path_checker_rejects_bad_paths():
    free = np.ones((3, 4), bool)
    m = M.Maze(free, 0, 11, M.astar_path(free, 0, 11))
    q, a = m.question(), m.answer()
    assert M.path_is_optimal(a, q)
    longer = a.copy()
    off_path = next(c for c in range(12) if c not in set(m.path.tolist()))
    longer.flat[off_path] = M.PATH  # an extra cell: no longer optimal
    assert not M.path_is_optimal(longer, q)
    broken = a.copy()
    broken.flat[m.path[1]] = M.FREE
    assert not M.path_is_optimal(broken, q)


def test_generation_is_deterministic():
    a = M.generate_mazes(8, 3, 12, np.random.default_rng(5), batch=256)
    b = M.generate_mazes(8, 3, 12, np.random.default_rng(5), batch=256)
    assert all(np.array_equal(x.answer(), y.answer()) for x, y in zip(a, b))


def test_proportional_min_path():
    assert M.proportional_min_path(30) == 110
    assert M.proportional_min_path(15) == 55
    assert M.wall_count_range(30, 30) == (270, 450)


@settings(max_examples=40, deadline=None)
@given(grid=arrays(np.uint8, st.tuples(st.integers(1, 7), st.integers(1, 7)),
                   elements=st.integers(0, 9)),
       tid=st.integers(0, 7))
def test_dihedral_inverse_is_identity(grid, tid):
    assert np.array_equal(inverse_dihedral(dihedral(grid, tid), tid), grid)
    assert dihedral(dihedral(grid, tid), INVERSE[tid]).shape == grid.shape


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), tid=st.integers(0, 7))
def test_augmented_maze_label_stays_optimal(seed, tid):
    free = np.random.default_rng(seed).random((6, 7)) > 0.25
    cells = np.flatnonzero(free)
    if len(cells) < 2:
        return
    s, g = cells[0], cells[-1]
    path = M.astar_path(free, int(s), int(g))
    if len(path) == 0:
        return
    m = M.Maze(free, int(s), int(g), path)
    assert M.path_is_optimal(dihedral(m.answer(), tid), dihedral(m.question(), tid))


def test_raw_csv_round_trip(built, tmp_path):
    """The generator's raw CSVs (sapientinc schema) read back as a real source give the same
    examples: real maze CSVs drop in through the same path."""
    root, _ = built
    spec = DataSpec(task="maze", source="path", path=str(root / "raw"), grid=GRID, n_train=25,
                    n_test=15, n_aug=0)
    meta = build_dataset(spec, tmp_path / "again")
    assert meta["provenance"]["kind"] == "real"
    a, b = load_split(root, "test"), load_split(tmp_path / "again", "test")
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.labels, b.labels)
    header = (root / "raw" / "train.csv").read_text().splitlines()[0]
    assert header == "source,question,answer,rating"
