"""Sudoku: solver, generator, symmetry, official-format build."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import group_originals
from trm.config import DataSpec
from trm.data import sudoku_solver as solver
from trm.data.build import build_dataset
from trm.data.dataset import load_split
from trm.data.sudoku_gen import make_puzzle
from trm.data.sudoku_symmetry import (
    apply_transform,
    canonical_key,
    equivalence_key,
    random_transform,
)

# A known 9x9 puzzle with a unique solution (classic example) and its solution.
P9 = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
A9 = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def digits(text: str) -> np.ndarray:
    return np.array([0 if ch == "." else int(ch) for ch in text], np.int8)


def test_solver_solves_known_9x9():
    sol, nsol, rating = solver.solve(digits(P9)[None], 9)
    assert nsol[0] == 1 and rating[0] == 0
    assert "".join(map(str, sol[0])) == A9


def test_solver_counts_multiple_solutions_capped():
    empty = np.zeros((1, 16), np.int8)
    _, nsol, _ = solver.solve(empty, 4, cap=2)
    assert nsol[0] == 2
    bad = digits(P9)
    bad[2] = 5  # duplicate 5 in row 0: no solution
    _, nsol, _ = solver.solve(bad[None], 9)
    assert nsol[0] == 0


@pytest.mark.parametrize("n,blanks", [(4, 10), (6, 24), (6, 26), (9, 50)])
def test_generated_puzzles_exact_blanks_unique_and_labelled(n, blanks):
    rng = np.random.default_rng(123)
    for _ in range(5):
        p = make_puzzle(n, blanks, rng)
        assert int((p.puzzle == 0).sum()) == blanks
        assert solver.is_valid_solution(p.solution, n)
        givens = p.puzzle != 0
        assert np.array_equal(p.puzzle[givens], p.solution[givens])
        sol, nsol, _ = solver.solve(p.puzzle[None], n, cap=2)
        assert nsol[0] == 1 and np.array_equal(sol[0], p.solution)


def test_minimal_puzzle_is_minimal():
    rng = np.random.default_rng(5)
    p = make_puzzle(6, 0, rng)
    for c in np.flatnonzero(p.puzzle):
        q = p.puzzle.copy()
        q[c] = 0
        assert solver.solve(q[None], 6)[1][0] == 2  # removing any given breaks uniqueness


def test_impossible_blank_count_is_a_clear_error():
    with pytest.raises(ValueError, match="at most 12"):
        make_puzzle(4, 13, np.random.default_rng(0))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([4, 6, 9]))
def test_augmentation_preserves_validity_and_equivalence(seed, n):
    rng = np.random.default_rng(seed)
    grid = solver.random_full_grid(n, rng)
    t = random_transform(n, rng)
    assert solver.is_valid_solution(apply_transform(grid, n, t), n)
    puzzle = grid.copy()
    puzzle[rng.permutation(n * n)[: n * n // 2]] = 0
    moved = apply_transform(puzzle, n, t)
    assert (moved == 0).sum() == (puzzle == 0).sum()
    assert equivalence_key(moved, n) == equivalence_key(puzzle, n)


def test_no_transpose_for_rectangular_boxes():
    rng = np.random.default_rng(0)
    assert not any(random_transform(6, rng).transpose for _ in range(50))
    assert any(random_transform(4, rng).transpose for _ in range(50))


def test_canonical_key_separates_inequivalent_puzzles():
    a = np.zeros(16, np.int8)
    a[0] = 1
    b = np.zeros(16, np.int8)
    b[[0, 1]] = [1, 2]
    c = np.zeros(16, np.int8)
    c[[0, 5]] = [1, 2]  # same box, different row/col: not equivalent to b
    keys = {canonical_key(x, 4) for x in (a, b, c)}
    assert len(keys) == 3


def small_spec(**kw) -> DataSpec:
    base = dict(task="sudoku", source="generate", grid=6, blanks=24, n_train=30, n_test=20,
                n_aug=3, seed=7)
    return DataSpec(**(base | kw))


def test_build_official_format_and_token_map(tmp_path):
    meta = build_dataset(small_spec(), tmp_path / "ds")
    assert meta["vocab_size"] == 8 and meta["seq_len"] == 36
    assert meta["num_puzzle_identifiers"] == 1
    tr, te = load_split(tmp_path / "ds", "train"), load_split(tmp_path / "ds", "test")
    assert tr.num_groups == 30 and tr.num_puzzles == 30 * 4 and tr.num_examples == 120
    assert te.num_groups == 20 and te.num_puzzles == 20
    assert np.all(tr.puzzle_identifiers == 0) and np.all(te.puzzle_identifiers == 0)
    assert tr.meta["ignore_label_id"] == 0 and tr.meta["pad_id"] == 0
    for split in (tr, te):
        assert split.inputs.min() >= 1 and split.inputs.max() <= 7  # blank 1, digits 2..7
        assert split.labels.min() >= 2 and split.labels.max() <= 7  # labels: digits only
        assert np.all((split.inputs == 1).sum(1) == 24)  # exact blanks, augmented too
        givens = split.inputs > 1
        assert np.all(split.inputs[givens] == split.labels[givens])
        sol, nsol, _ = solver.solve(split.inputs.astype(np.int32) - 1, 6)
        assert np.all(nsol == 1) and np.array_equal(sol + 1, split.labels)
    prov = tr.meta["provenance"]
    assert prov["kind"] == "generated" and prov["seed"] == 7
    assert prov["content_hash"].startswith("sha256:")
    assert json.loads((tmp_path / "ds" / "identifiers.json").read_text()) == ["<blank>"]
    # Original puzzle first in each group, then its variants; variants share the blank count.
    group0 = tr.inputs[: tr.puzzle_indices[tr.group_indices[1]]]
    assert len({g.tobytes() for g in group0}) == 4


def test_test_split_not_equivalent_to_train(tmp_path):
    build_dataset(small_spec(grid=4, blanks=10, n_train=40, n_test=30), tmp_path / "ds")
    tr, te = load_split(tmp_path / "ds", "train"), load_split(tmp_path / "ds", "test")
    originals = group_originals(tr).astype(np.int32) - 1
    train_keys = {canonical_key(p, 4) for p in originals}
    test_keys = [canonical_key(p, 4) for p in te.inputs.astype(np.int32) - 1]
    assert len(set(test_keys)) == len(test_keys)
    assert not train_keys & set(test_keys)
    # ...and augmented variants are equivalent to their original.
    for g in range(3):
        lo, hi = tr.puzzle_indices[tr.group_indices[g]], tr.puzzle_indices[tr.group_indices[g + 1]]
        assert {canonical_key(p, 4) for p in tr.inputs[lo:hi].astype(np.int32) - 1} == {
            canonical_key(tr.inputs[lo].astype(np.int32) - 1, 4)}


def test_build_is_deterministic_by_seed(tmp_path):
    a = build_dataset(small_spec(), tmp_path / "a")["provenance"]["content_hash"]
    b = build_dataset(small_spec(), tmp_path / "b")["provenance"]["content_hash"]
    c = build_dataset(small_spec(seed=8), tmp_path / "c")["provenance"]["content_hash"]
    assert a == b != c
    for name in ("train/dataset.json", "raw/train.csv", "train/all__inputs.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_too_small_space_fails_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="equivalence classes"):
        build_dataset(small_spec(grid=4, blanks=12, n_train=200, n_test=10, n_aug=0),
                      tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    assert not list(tmp_path.glob(".ds.tmp-*"))  # temp dir cleaned up


def test_real_csv_drop_in(tmp_path):
    """sapientinc-style CSVs under data.path are read as the real source."""
    src = tmp_path / "raw"
    src.mkdir()
    header, row = "source,question,answer,rating\n", f"test_src,{P9},{A9},3\n"
    (src / "train.csv").write_text(header + row * 2)
    (src / "test.csv").write_text(header + row)
    spec = DataSpec(task="sudoku", source="path", path=str(src), grid=9, n_train=5, n_test=5,
                    n_aug=2)
    meta = build_dataset(spec, tmp_path / "ds")
    assert meta["provenance"]["kind"] == "real" and meta["vocab_size"] == 11
    tr = load_split(tmp_path / "ds", "train")
    assert tr.num_groups == 2 and tr.num_puzzles == 6
    assert "".join(str(v - 1) for v in tr.labels[0]) == A9


def test_vicinity_children_are_unique_puzzles():
    from trm.data.sudoku_hard import vicinity_children

    sol, _, _ = solver.solve(digits(P9)[None], 9)
    kids, ratings = vicinity_children(digits(P9), sol[0], np.random.default_rng(0), count=32)
    assert len(kids) == len(ratings)
    for kid in kids:
        got, nsol, _ = solver.solve(kid[None], 9)
        assert nsol[0] == 1 and np.array_equal(got[0], sol[0])


def test_extreme_mix_without_seeds(tmp_path):
    from trm.data.sudoku_hard import VICINITY_MIN_RATING

    spec = DataSpec(task="sudoku", grid=9, blanks=0, n_train=8, n_test=4, n_aug=1, seed=0)
    meta = build_dataset(spec, tmp_path / "ds")
    mix = meta["provenance"]["mix"]
    assert mix["n_seeds"] == 0 and sum(mix["sources"].values()) == 12
    tr = load_split(tmp_path / "ds", "train")
    originals = group_originals(tr).astype(np.int32) - 1
    sol, nsol, rating = solver.solve(originals, 9)
    assert np.all(nsol == 1)
    assert (rating >= VICINITY_MIN_RATING).sum() >= 8 - round(0.27 * 8)  # the searched share
    # The generator's difficulty is reported beside the real lists' (not called "hard").
    diff = meta["provenance"]["difficulty"]
    assert diff["vicinity_search"] >= VICINITY_MIN_RATING
    assert diff["real_lists"]["puzzles6_forum_hardest_1106"] > 10 * VICINITY_MIN_RATING
    assert meta["provenance"]["families"]["shared"] == 0


def test_extreme_mix_from_real_seed_lists(tmp_path):
    from conftest import need_shared

    src = need_shared("sudoku")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    # A few hundred lines of one real list keep this fast.
    lines = (src / "puzzles6_forum_hardest_1106.txt").read_text().splitlines()[:300]
    (seeds / "puzzles6_forum_hardest_1106.txt").write_text("\n".join(lines))
    spec = DataSpec(task="sudoku", grid=9, blanks=0, path=str(seeds), n_train=20, n_test=10,
                    n_aug=2, seed=1)
    meta = build_dataset(spec, tmp_path / "ds")
    sources = meta["provenance"]["mix"]["sources"]
    assert sources.get("puzzles6_forum_hardest_1106", 0) == 15 + 7
    te = load_split(tmp_path / "ds", "test")
    _, nsol, _ = solver.solve(te.inputs.astype(np.int32) - 1, 9)
    assert np.all(nsol == 1)


def test_offline_resolution_is_fast_and_logged(tmp_path, monkeypatch):
    import time

    from trm.data import sources

    t0 = time.time()
    assert not sources.host_reachable("no-such-host.invalid", timeout=0.5)
    assert time.time() - t0 < 5
    monkeypatch.setenv("TRM_OFFLINE", "1")
    spec = DataSpec(task="sudoku", source="auto", grid=9, blanks=40, n_train=3, n_test=2)
    meta = build_dataset(spec, tmp_path / "ds")
    steps = meta["provenance"]["resolution"]
    assert steps[0].startswith("path:") and "offline" in steps[1]
    assert steps[2].startswith("generator")


def test_offline_paper_sized_test_set_is_refused_fast():
    """Generating hundreds of thousands of vicinity-search 9x9 puzzles would take hours: refused
    at once."""
    import numpy as np
    import pytest

    from trm.data.sudoku_hard import extreme_mix

    rngs = {k: np.random.default_rng(i) for i, k in enumerate(("train", "test", "seeds"))}
    with pytest.raises(ValueError, match="data.path"):  # raised before any search starts
        extreme_mix(1000, 422_786, None, rngs)


# --------------------------------------------------------------------------------------
# Solution-grid families (split hygiene of the 9x9 mix)
# --------------------------------------------------------------------------------------


def test_family_key_is_an_exact_canonical_form():
    from trm.data.sudoku_symmetry import _grid_canonical_codes, _orientation_min, family_key

    rng = np.random.default_rng(3)
    for n in (4, 6, 9):
        grid = solver.random_full_grid(n, rng)
        key = family_key(grid, n)
        for _ in range(10):  # every symmetry (transpose included for square boxes) keeps it
            assert family_key(apply_transform(grid, n, random_transform(n, rng)), n) == key
        if n == 9:  # 9x9 has billions of families: random grids differ
            assert len({family_key(solver.random_full_grid(9, rng), 9) for _ in range(20)}) == 20
        # The compiled kernel and the numpy reference agree.
        g = grid.reshape(n, n).astype(np.int64)
        br = solver.BOX_SHAPES[n][0]
        assert np.array_equal(_orientation_min(g, n, br), _grid_canonical_codes(g, n, br))
    # 4x4 has exactly 2 families (a known count): the key neither merges nor splits them.
    assert len({family_key(solver.random_full_grid(4, rng), 4) for _ in range(300)}) == 2


def test_split_by_family_moves_a_straddling_family_whole():
    from trm.data.sudoku_hard import split_by_family

    fams = [b"a", b"b", b"a", None, b"c", b"b", b"a"]
    train, test = split_by_family(fams, 2)
    assert train == [0, 2, 6]  # all of family a, although 2 items were asked for
    assert test == [1, 4, 5] and 3 not in train + test  # unsolvable seed dropped
    assert not {fams[i] for i in train} & {fams[i] for i in test}


def test_a_test_puzzle_of_a_train_family_is_refused():
    from trm.data.sudoku_gen import Puzzle
    from trm.data.sudoku_hard import FamilyLeakError, check_family_split

    rng = np.random.default_rng(0)
    p = make_puzzle(9, 0, rng)
    t = random_transform(9, rng)
    twin = Puzzle(apply_transform(p.puzzle, 9, t), apply_transform(p.solution, 9, t), 0, "x")
    other = make_puzzle(9, 0, rng)
    assert check_family_split([p], [other]) == 1
    with pytest.raises(FamilyLeakError, match="1 of 2 test puzzles"):
        check_family_split([p], [other, twin])


def test_test_seeds_of_a_train_family_are_skipped():
    from trm.data.sudoku_hard import searched_puzzles
    from trm.data.sudoku_symmetry import family_key

    rng = np.random.default_rng(1)
    a, b = make_puzzle(9, 0, rng), make_puzzle(9, 0, rng)
    seeds = [("list", a.puzzle), ("list", b.puzzle)]
    fams: set = set()
    out, skipped = searched_puzzles(1, seeds, rng, set(), {family_key(a.solution, 9)}, fams)
    assert skipped == 1 and len(out) == 1
    assert fams == {family_key(b.solution, 9)}


def _family_seed_lists(folder, n_families: int, rng) -> list[bytes]:
    """A seed list of constructed families, shuffled: each base puzzle, a relabelled/permuted/
    transposed copy, and a sibling with one more given (same solution grid). Returns the
    family key of every line."""
    from trm.data.sudoku_symmetry import family_key

    lines, keys = [], []
    for _ in range(n_families):
        p = make_puzzle(9, 0, rng)
        t = random_transform(9, rng)
        sibling = p.puzzle.copy()
        cell = rng.choice(np.flatnonzero(sibling == 0))
        sibling[cell] = p.solution[cell]
        key = family_key(p.solution, 9)
        for q in (p.puzzle, apply_transform(p.puzzle, 9, t), sibling):
            lines.append("".join(str(int(v)) if v else "." for v in q))
            keys.append(key)
    order = rng.permutation(len(lines))
    folder.mkdir()
    (folder / "constructed_families.txt").write_text("\n".join(lines[i] for i in order))
    return [keys[i] for i in order]


def test_constructed_families_never_straddle_the_split(tmp_path):
    from trm.data.sudoku_symmetry import family_key

    keys = _family_seed_lists(tmp_path / "seeds", 10, np.random.default_rng(5))
    spec = DataSpec(task="sudoku", grid=9, blanks=0, path=str(tmp_path / "seeds"), n_train=12,
                    n_test=8, n_aug=1, seed=2)
    meta = build_dataset(spec, tmp_path / "ds")
    tr, te = load_split(tmp_path / "ds", "train"), load_split(tmp_path / "ds", "test")
    train_labels = tr.labels[tr.puzzle_indices[tr.group_indices[:-1]]].astype(np.int32) - 1
    train_f = {family_key(g, 9) for g in train_labels}
    test_f = {family_key(g, 9) for g in te.labels.astype(np.int32) - 1}
    assert not train_f & test_f
    constructed = set(keys)
    # Both sides drew constructed families (so the split was really exercised), whole.
    assert train_f & constructed and test_f & constructed
    assert meta["provenance"]["families"]["shared"] == 0
