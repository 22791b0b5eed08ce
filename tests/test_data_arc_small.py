"""ARC on a canvas smaller than 30 (data.grid): encoding, builds, filtering, toy tasks, scoring."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from test_data_arc import check_test_split_decodes_to_solutions

from trm import config as C
from trm.config import DataSpec
from trm.data import arc_augment as A
from trm.data import arc_toy
from trm.data.build import build_dataset
from trm.data.dataset import load_split
from trm.data.dihedral import dihedral
from trm.data.sources import SourceError
from trm.describe import task_shapes
from trm.train import arc_eval


def test_small_canvas_encoding_and_crop():
    g = np.array([[0, 9, 4], [3, 4, 1]], np.uint8)
    c = A.encode_grid(g, canvas=5).reshape(5, 5)
    assert np.array_equal(c[:2, :3], g + 2)
    assert list(c[2, :3]) == [A.EOS] * 3 and list(c[:2, 3]) == [A.EOS] * 2
    assert c[2, 3] == A.PAD and c[3:].sum() == 0 and c[:, 4:].sum() == 0
    assert np.array_equal(A.crop(A.encode_grid(g, canvas=5)), g)
    assert np.array_equal(arc_eval.crop(A.encode_grid(g, canvas=5)), g)
    # Shifted to the edge: the EOS column falls off, the crop (after the shift) still decodes.
    moved = A.encode_grid(g, dr=3, dc=2, canvas=5).reshape(5, 5)
    assert np.array_equal(moved[3:, 2:], g + 2) and (moved == A.EOS).sum() == 0
    # A grid as large as the canvas has no EOS and decodes whole.
    full = np.full((5, 5), 7, np.uint8)
    assert np.all(A.encode_grid(full, canvas=5) == 9)
    assert np.array_equal(A.crop(A.encode_grid(full, canvas=5)), full)
    with pytest.raises(ValueError, match="does not fit"):
        A.base_canvas(np.zeros((6, 2), np.uint8), canvas=5)
    with pytest.raises(ValueError, match="square"):
        A.crop(np.zeros(24, np.uint8))


def test_canvas_default_is_official_and_range_is_checked():
    assert DataSpec(task="arc1").grid == 30 and DataSpec(task="arc2").grid == 30
    assert DataSpec().grid == 6 and DataSpec(task="maze").grid == 6  # unchanged defaults
    assert task_shapes(DataSpec(task="arc1"))["seq_len"] == 900
    assert task_shapes(DataSpec(task="arc1", grid=8))["seq_len"] == 64
    assert C.resolve("trm_mlp", "arc1", "smoke").data.grid == 30  # the task file's canvas (smoke keeps it)
    assert C.resolve("trm_mlp", "arc1", "tiny", {"data.grid": 8}).data.grid == 8
    for bad in (1, 31):
        with pytest.raises(C.SpecError, match="canvas side"):
            C.resolve("trm_mlp", "arc1", "tiny", {"data.grid": bad})


# --------------------------------------------------------------------------------------
# Toy generator
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("canvas", [3, 6, 8, 30])
def test_toy_tasks_fit_the_canvas_and_are_arc_shaped(canvas):
    tasks = arc_toy.toy_tasks(40, 10, seed=1, canvas=canvas)
    assert [t.is_eval for t in tasks] == [False] * 40 + [True] * 10
    sides = []
    for t in tasks:
        assert len(t.train) == 3 and len(t.test) == 1
        grids = [g for pair in t.train + t.test for g in pair]
        sides += [s for g in grids for s in g.shape]
        # Room for the EOS border, so every toy grid has an explicit end in the canvas.
        assert all(2 <= s <= canvas - 1 for g in grids for s in g.shape)
        assert all(g.dtype == np.uint8 and g.max() <= 9 for g in grids)
        # The demos show every colour the test pair uses, and no pair is left unchanged.
        demo_colours = set(np.unique(np.concatenate([g.ravel() for p in t.train for g in p])))
        assert set(np.unique(t.test[0][0])) <= demo_colours
        assert not any(a.shape == b.shape and np.array_equal(a, b) for a, b in t.train + t.test)
        assert all(b.any() for _, b in t.train + t.test)  # no blank output to guess
        assert len({a.shape for a, _ in t.train + t.test}) == 1  # one input shape per task
    assert max(sides) == canvas - 1  # sized by the canvas, not by a fixed constant
    assert len({t.train[0][0].shape for t in tasks}) > 1 or canvas == 3  # shapes vary by task
    assert {t.raw["rule"] for t in tasks} == set(arc_toy.RULES)
    with pytest.raises(ValueError, match="at least 3"):
        arc_toy.toy_tasks(1, 1, seed=0, canvas=2)


def test_toy_tasks_are_seeded():
    a = arc_toy.toy_tasks(5, 2, seed=3, canvas=8)
    b = arc_toy.toy_tasks(5, 2, seed=3, canvas=8)
    c = arc_toy.toy_tasks(5, 2, seed=4, canvas=8)
    assert [t.raw for t in a] == [t.raw for t in b]
    assert [t.raw for t in a] != [t.raw for t in c]


def test_toy_rules_do_what_they_say():
    g = np.array([[1, 0, 0],
                  [0, 2, 0],
                  [1, 0, 0],
                  [0, 0, 0]], np.uint8)
    down = arc_toy._gravity(g, (1, 0))
    assert np.array_equal(down, [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 2, 0]])
    right = arc_toy._gravity(g, (0, 1))
    assert np.array_equal(right, [[0, 0, 1], [0, 0, 2], [0, 0, 1], [0, 0, 0]])
    up = arc_toy._gravity(np.array([[0], [3], [0], [4]], np.uint8), (-1, 0))
    assert np.array_equal(up, [[3], [4], [0], [0]])  # order along the line kept
    assert np.array_equal(arc_toy._shift(g, (0, 1)), [[0, 1, 0], [0, 0, 2], [0, 1, 0], [0, 0, 0]])
    assert np.array_equal(arc_toy._shift(g, (-1, 0)), [[0, 2, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    framed = arc_toy._outline(g, 5)
    assert np.array_equal(framed, [[5, 5, 5], [5, 2, 5], [5, 0, 5], [5, 5, 5]])  # inside kept


def test_toy_pairs_follow_one_rule_per_task():
    """Every pair of a task is its rule applied to its input (checked by re-deriving the rule
    from the first demo among the candidates of its kind)."""
    for t in arc_toy.toy_tasks(30, 0, seed=5, canvas=7):
        pairs, kind = t.train + t.test, t.raw["rule"]
        if kind == "dihedral":
            cands = [lambda g, k=k: dihedral(g, k) for k in range(1, 8)]
        elif kind in ("gravity", "shift"):
            f = arc_toy._gravity if kind == "gravity" else arc_toy._shift
            cands = [lambda g, d=d, f=f: f(g, d) for d in arc_toy.DIRECTIONS]
        elif kind == "outline":
            cands = [lambda g, c=c: arc_toy._outline(g, c) for c in range(1, 10)]
        else:  # recolour: one colour table consistent over all pairs
            lut = {}
            for a, b in pairs:
                assert a.shape == b.shape
                for x, y in zip(a.ravel(), b.ravel()):
                    assert lut.setdefault(int(x), int(y)) == y
            assert lut.get(0, 0) == 0 and len(set(lut.values())) == len(lut)
            continue
        assert any(all(np.array_equal(f(a), b) for a, b in pairs) for f in cands), t.task_id


# --------------------------------------------------------------------------------------
# Builds on a small canvas
# --------------------------------------------------------------------------------------


def _decode_train_split(root, canvas):
    """Every train example, shifted back to (0, 0), cropped and inverted, is a pair of its task."""
    names = json.loads((root / "identifiers.json").read_text())
    tr = load_split(root, "train")
    assert tr.inputs.shape[1] == canvas * canvas
    n_translated = 0
    for p, ident in enumerate(tr.puzzle_identifiers):
        _, tid, mapping = A.parse_variant_name(names[ident])
        for k in range(tr.puzzle_indices[p], tr.puzzle_indices[p + 1]):
            pair = []
            for row in (tr.inputs[k], tr.labels[k]):
                c = row.reshape(canvas, canvas)
                r0, c0 = np.argwhere(c >= A.COLOUR_OFFSET).min(0)
                n_translated += bool(r0 or c0)
                back = np.zeros_like(c)
                back[: canvas - r0, : canvas - c0] = c[r0:, c0:]
                pair.append(A.inverse_transform_grid(A.crop(back), tid, mapping))
            yield names[ident], pair
    assert n_translated > 0  # there was room to translate, and it was used


def test_small_canvas_toy_build_round_trips(tmp_path):
    spec = DataSpec(task="arc1", source="generate", grid=6, n_train=8, n_test=4, n_aug=3, seed=1)
    meta = build_dataset(spec, tmp_path / "ds")
    assert meta["seq_len"] == 36 and meta["vocab_size"] == 12
    prov = meta["provenance"]
    assert prov["kind"] == "generated" and prov["generator"] == "trm.data.arc_toy"
    assert prov["canvas"] == {"side": 6, "kept": {"train_only": 8, "evaluation": 4},
                              "dropped": {"train_only": 0, "evaluation": 0}}
    te = check_test_split_decodes_to_solutions(tmp_path / "ds")
    assert te.inputs.shape[1] == 36 and te.num_groups == 4
    tasks = {t.task_id: t for t in arc_toy.toy_tasks(8, 4, seed=1, canvas=6)}
    for name, (x, y) in _decode_train_split(tmp_path / "ds", 6):
        task = tasks[A.parse_variant_name(name)[0]]
        pairs = task.train if task.is_eval else task.train + task.test  # eval tests held out
        assert any(np.array_equal(x, a) and np.array_equal(y, b) for a, b in pairs)


def test_small_canvas_scoring_inverts_and_votes(tmp_path):
    """The test split of a small-canvas build, scored by the ARC scorer: perfect predictions
    pass every task, predictions with one wrong cell in some variants are out-voted, and
    predictions wrong everywhere pass nothing."""
    spec = DataSpec(task="arc1", source="generate", grid=5, n_train=2, n_test=6, n_aug=4, seed=0)
    build_dataset(spec, tmp_path / "ds")
    names = json.loads((tmp_path / "ds" / "identifiers.json").read_text())
    te = load_split(tmp_path / "ds", "test")
    idx = np.arange(te.num_examples)

    def run(preds):
        scorer = arc_eval.ArcScorer(names, te, steps=[1])
        ctx = scorer.begin(idx, te.inputs, te.labels)
        scorer.step(ctx, 1, preds, np.zeros(len(preds)))
        return scorer.finalize([scorer.end(ctx)])[1]

    perfect = run(te.labels)
    assert perfect["n_tasks"] == 6 and perfect["truth_conflicts"] == 0
    assert perfect["task_all_or_nothing"]["pass@1"] == 1.0
    assert perfect["augmentations_voted"]["min"] == 5  # original + 4 variants per test input
    noisy = te.labels.copy()
    ex_pid = np.repeat(np.arange(len(te.puzzle_identifiers)), np.diff(te.puzzle_indices))
    wrong = np.isin(ex_pid, te.group_indices[:-1])  # each task's first variant (the original)
    noisy[wrong, 0] = np.where(noisy[wrong, 0] == 2, 3, 2)  # its top-left cell miscoloured
    assert run(noisy)["per_test_input"]["pass@1"] == 1.0  # out-voted 4 to 1
    noisy[:, 0] = np.where(te.labels[:, 0] == 2, 3, 2)  # now every variant has it wrong
    assert run(noisy)["per_test_input"]["pass@1"] == 0.0
    assert run(np.zeros_like(te.labels))["per_test_input"]["pass@2"] == 0.0


def write_task(path, in_shape, out_shape, n_demo=2):
    """A task JSON of random grids (distinct pairs, so that no test pair is also a demo and the
    contamination check has nothing to refuse); every input in_shape, every output out_shape."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))  # str hash() is salted
    pairs = [{"input": rng.integers(0, 10, in_shape).tolist(),
              "output": rng.integers(0, 10, out_shape).tolist()} for _ in range(n_demo + 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train": pairs[:n_demo], "test": pairs[n_demo:]}))


def test_real_tasks_that_do_not_fit_are_filtered_and_counted(tmp_path):
    root = tmp_path / "d"
    small, big = (2, 6), (3, 7)  # 2x6 fits a 6x6 canvas (no room for EOS); 3x7 does not
    write_task(root / "training" / "t_small.json", small, small)
    write_task(root / "training" / "t_big_in.json", big, small)
    write_task(root / "training" / "t_big_out.json", small, big)
    write_task(root / "evaluation" / "e_small.json", small, (1, 1))
    write_task(root / "evaluation" / "e_big.json", big, big)
    spec = DataSpec(task="arc1", source="path", path=str(root), grid=6, n_aug=2, seed=0)
    meta = build_dataset(spec, tmp_path / "ds")
    prov = meta["provenance"]
    assert prov["canvas"] == {"side": 6, "kept": {"train_only": 1, "evaluation": 1},
                              "dropped": {"train_only": 2, "evaluation": 1}}
    assert prov["tasks"] == {"train_only": 1, "evaluation": 1} and meta["seq_len"] == 36
    names = json.loads((tmp_path / "ds" / "identifiers.json").read_text())
    assert {A.parse_variant_name(n)[0] for n in names[1:]} == {"t_small", "e_small"}
    assert set(json.loads((tmp_path / "ds" / "test_puzzles.json").read_text())) == {"e_small"}
    check_test_split_decodes_to_solutions(tmp_path / "ds")
    # The same files on the official canvas: nothing dropped.
    full = build_dataset(DataSpec(task="arc1", source="path", path=str(root), n_aug=2),
                         tmp_path / "ds30")
    assert full["provenance"]["canvas"]["dropped"] == {"train_only": 0, "evaluation": 0}
    assert full["seq_len"] == 900


def test_refuses_a_canvas_no_task_fits(tmp_path):
    big = (3, 7)
    write_task(tmp_path / "d" / "training" / "a.json", big, big)
    write_task(tmp_path / "d" / "evaluation" / "b.json", (2, 2), big)
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "d"), grid=6, n_aug=0)
    with pytest.raises(SourceError, match="no ARC task fits a 6x6 canvas"):
        build_dataset(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Training tasks fit but no evaluation task does: an empty test split is refused too.
    write_task(tmp_path / "d" / "training" / "c.json", (1, 1), (1, 1))
    with pytest.raises(SourceError, match="evaluation tasks fits"):
        build_dataset(spec, tmp_path / "out")
