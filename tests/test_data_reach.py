"""The reach control task: labels and recorded difficulty against an independent solver,
splits without duplicate instances, one-line refusals of bad sizes."""

import numpy as np
import pytest

from conftest import split_keys
from trm.config import DataSpec
from trm.data import reach as R
from trm.data.reach_build import build_reach


def components(free: np.ndarray) -> np.ndarray:
    """Union-find component id of every free cell (-1 on walls): no search order involved."""
    h, w = free.shape
    parent = list(range(h * w))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i in range(h):
        for j in range(w):
            if not free[i, j]:
                continue
            for a, b in ((i + 1, j), (i, j + 1)):
                if a < h and b < w and free[a, b]:
                    parent[find(i * w + j)] = find(a * w + b)
    return np.array([find(k) if free.flat[k] else -1 for k in range(h * w)]).reshape(h, w)


def relaxed_distance(free: np.ndarray, source) -> np.ndarray:
    """Shortest distances by Bellman-Ford relaxation until nothing changes."""
    inf = 10**6
    d = np.full(free.shape, inf)
    d[source] = 0
    changed = True
    while changed:
        changed = False
        for i, j in np.argwhere(free):
            best = min([d[a, b] + 1 for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1))
                        if 0 <= a < free.shape[0] and 0 <= b < free.shape[1] and free[a, b]]
                       + [d[i, j]])
            if best < d[i, j]:
                d[i, j], changed = best, True
    return np.where(d < inf, d, -1)


@pytest.mark.parametrize("grid", [5, 7, 9])
def test_labels_and_difficulty_match_an_independent_solver(grid):
    rng = np.random.default_rng(grid)
    for _ in range(25):
        inputs, labels, cell_dist, rounds = R.draw(grid, rng)
        free = inputs != R.WALL
        (source,) = map(tuple, np.argwhere(inputs == R.SOURCE))
        comp = components(free)
        expected = np.where(free, np.where(comp == comp[source], R.REACHED, R.CUT_OFF), R.IGNORE)
        assert np.array_equal(labels, expected)
        # The uncut maze is the free cells plus the one walled-up passage: the odd-parity wall
        # cell whose removal joins the two components.
        joins = [tuple(c) for c in np.argwhere(~free & (np.indices(free.shape).sum(0) % 2 == 1))
                 if len({comp[a, b] for a, b in _nbrs(c, free)} - {-1}) == 2]
        assert any(_rejoins(free, j, cell_dist) for j in joins), \
            "no walled passage restores the recorded corridor distances"
        assert rounds == cell_dist.max()
        assert np.all((cell_dist >= 0) == free)


def _nbrs(c, free):
    i, j = c
    return [(a, b) for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1))
            if 0 <= a < free.shape[0] and 0 <= b < free.shape[1]]


def _rejoins(free, cell, cut_dist):
    uncut = free.copy()
    uncut[cell] = True
    (source,) = map(tuple, np.argwhere(cut_dist == 0))
    d = relaxed_distance(uncut, source)
    d[cell] = -1
    return np.array_equal(np.where(free, d, -1), cut_dist)


def test_the_maze_is_a_tree_before_the_cut():
    rng = np.random.default_rng(3)
    for rooms in (2, 3, 4):
        free = R.perfect_maze(rooms, rng)
        cells = int(free.sum())
        edges = int((free[1:] & free[:-1]).sum() + (free[:, 1:] & free[:, :-1]).sum())
        assert cells == 2 * rooms * rooms - 1 and edges == cells - 1
        assert len(set(components(free)[free].tolist())) == 1


def test_built_splits_have_no_duplicate_and_record_difficulty():
    spec = DataSpec(task="reach", grid=7, n_train=120, n_test=60, n_aug=2, min_path=12, seed=4)
    built = build_reach(spec)
    tr, te = built.train, built.test
    keys_train, keys_test = split_keys(built)
    assert len(keys_train) == 120 and len(keys_test) == 60 and not keys_train & keys_test
    for split, arrays in (("train", tr), ("test", te)):
        diff = built.difficulty[split]
        assert diff["example"].shape == (len(arrays.inputs),)
        assert diff["cell"].shape == arrays.inputs.shape
        assert diff["example"].min() >= 12
        for k in range(0, len(arrays.inputs), 17):
            grid = arrays.inputs[k].reshape(7, 7)
            (source,) = map(tuple, np.argwhere(grid == R.SOURCE))
            cells = diff["cell"][k].reshape(7, 7)
            # Reached cells: their corridor distance is their distance in the cut maze.
            d = relaxed_distance(grid != R.WALL, source)
            reached = arrays.labels[k].reshape(7, 7) == R.REACHED
            assert np.array_equal(cells[reached], d[reached])
            assert diff["example"][k] == cells.max()


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = build_reach(DataSpec(task="reach", grid=5, n_train=40, n_test=20, seed=1))
    b = build_reach(DataSpec(task="reach", grid=5, n_train=40, n_test=20, seed=1))
    c = build_reach(DataSpec(task="reach", grid=5, n_train=40, n_test=20, seed=2))
    assert np.array_equal(a.train.inputs, b.train.inputs)
    assert not np.array_equal(a.train.inputs, c.train.inputs)


@pytest.mark.parametrize("grid", [4, 1])
def test_even_or_tiny_grids_are_refused(grid):
    with pytest.raises(ValueError, match="odd"):
        R.rooms_for(grid)


def test_impossible_round_count_is_refused_in_one_line():
    with pytest.raises(ValueError, match="lower data.min_path"):
        R.generate(5, 10, 40, np.random.default_rng(0), set())


def test_written_dataset_holds_the_difficulty_a_solver_recomputes(tmp_path):
    """Through build_dataset and back: the stored rounds and corridor distances equal a
    recomputation from the stored grids (reached cells: their distance in the cut maze)."""
    from trm.data.build import build_dataset
    from trm.data.dataset import load_split

    spec = DataSpec(task="reach", grid=7, n_train=30, n_test=20, seed=5)
    build_dataset(spec, tmp_path / "reach")
    for split in ("train", "test"):
        s = load_split(tmp_path / "reach", split)
        assert s.difficulty_names == {"example": "flood_fill_rounds", "cell": "corridor_distance"}
        for k in range(len(s.inputs)):
            grid = np.asarray(s.inputs[k]).reshape(7, 7)
            labels = np.asarray(s.labels[k]).reshape(7, 7)
            cells = np.asarray(s.cell_difficulty[k]).reshape(7, 7)
            (source,) = map(tuple, np.argwhere(grid == R.SOURCE))
            reached = labels == R.REACHED
            assert np.array_equal(cells[reached], relaxed_distance(grid != R.WALL, source)[reached])
            assert np.all((cells >= 0) == (grid != R.WALL))
            assert s.difficulty[k] == cells.max()
