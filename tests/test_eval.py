"""Evaluation: ARC voting and both pass@K scorings, Maze valid-and-optimal paths, sharded
evaluation, the fixed periodic subsample, `trm eval` (the test-time evaluator), GPU speed
paths on CPU, optional logging extras."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from trm import config as C
from trm.cli import main as cli_main
from trm.data.build import build_dataset
from trm.data.dataset import PuzzleSplit
from trm.data.dihedral import dihedral
from trm.train import arc_eval, logging_extras, loop, maze_eval
from trm.train import checkpoint as ckpt
from trm.train.evaluate import eval_indices, evaluate, halting_stats
from trm.train.test_time import evaluate_run

SIDE = 6  # small ARC canvases: the code reads any square canvas


# --------------------------------------------------------------------------------------
# Fixtures: a fake model that "predicts" given token grids, and hand-made splits
# --------------------------------------------------------------------------------------


class TableModel(torch.nn.Module):
    """Predicts preds[step][example] (tokens) with halt logit q[step][example]; the example is
    recognised by its input row (inputs carry their example index in the last token)."""

    def __init__(self, preds: np.ndarray, q: np.ndarray, vocab: int):
        super().__init__()
        self.preds, self.q, self.vocab = torch.as_tensor(preds), torch.as_tensor(q), vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def initial_latents(self, b, device=None):
        return (torch.zeros(b, dtype=torch.long),)

    def forward(self, latents, inputs, puzzle_ids):
        (step,) = latents
        ex = inputs[:, -1].long() if self.preds.dim() == 3 else None
        tokens = self.preds[step, ex]
        logits = torch.nn.functional.one_hot(tokens.long(), self.vocab).float()
        return (step + 1,), logits, self.q[step, ex].float(), None


def _split(inputs, labels, puzzle_ids, puzzle_sizes, group_sizes, ignore=0) -> PuzzleSplit:
    return PuzzleSplit(
        inputs=np.asarray(inputs), labels=np.asarray(labels),
        puzzle_identifiers=np.asarray(puzzle_ids, np.int32),
        puzzle_indices=np.concatenate([[0], np.cumsum(puzzle_sizes)]).astype(np.int32),
        group_indices=np.concatenate([[0], np.cumsum(group_sizes)]).astype(np.int32),
        meta={"ignore_label_id": ignore, "seq_len": np.asarray(inputs).shape[1]})


def canvas(grid: np.ndarray, side: int = SIDE) -> np.ndarray:
    """ARC encoding: colour c -> c + 2, EOS (1) in the row below and the column right of it."""
    g = np.asarray(grid)
    out = np.zeros((side, side), np.int64)
    h, w = g.shape
    out[:h, :w] = g + 2
    if h < side:
        out[h, : min(w + 1, side)] = 1
    if w < side:
        out[: min(h + 1, side), w] = 1
    return out.reshape(-1)


def augment(grid, tid, perm):
    return dihedral(np.asarray(perm)[np.asarray(grid)], tid)


# --------------------------------------------------------------------------------------
# ARC
# --------------------------------------------------------------------------------------


def test_crop_takes_largest_top_left_colour_rectangle():
    g = np.array([[1, 2, 3], [4, 5, 6]])
    assert np.array_equal(arc_eval.crop(canvas(g)), g)
    assert arc_eval.crop(np.zeros(SIDE * SIDE)).shape == (0, 0)
    ragged = np.full((SIDE, SIDE), 5)
    ragged[3, 2] = 1  # row 4 stops at column 2: 3 rows x 6 (18) beats 6 rows x 2 (12)
    assert arc_eval.crop(ragged).shape == (3, 6)
    full = np.full((SIDE, SIDE), 11)  # colour 9 everywhere: the whole canvas
    assert arc_eval.crop(full).shape == (SIDE, SIDE)


@pytest.mark.parametrize("tid", range(8))
def test_inverse_augmentation_round_trips(tid):
    rng = np.random.default_rng(tid)
    grid = rng.integers(0, 10, size=(3, 5)).astype(np.uint8)
    perm = np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)
    name = f"task{arc_eval.SEPARATOR}t{tid}{arc_eval.SEPARATOR}{''.join(map(str, perm))}"
    task, t, p = arc_eval.parse_augmentation(name)
    assert task == "task" and t == tid and np.array_equal(p, perm)
    assert np.array_equal(arc_eval.invert(augment(grid, tid, perm), t, p), grid)
    assert arc_eval.parse_augmentation("plain") == ("plain", 0, None)


def _table(votes: dict, truth: dict) -> arc_eval.VoteTable:
    """votes: {(task, input): [(grid key, count, mean q), ...]}, truth: {(task, input): grid key}."""
    t = arc_eval.VoteTable()
    for (task, inp), cands in votes.items():
        key = f"{task}/{inp}"
        t.set_truth(key, task, truth[(task, inp)])
        for g, count, q in cands:
            t.add(key, g, count, q * count)
    return t


def test_voting_ranks_by_count_then_mean_q_and_both_scorings():
    # Task A has two test inputs, task B one. Grid keys stand for grids.
    votes = {
        ("A", 0): [("right", 5, 0.2), ("wrong", 3, 0.9)],                 # rank 1 by count
        ("A", 1): [("wrong", 4, 0.1), ("right", 4, 0.8), ("other", 1, 1.0)],  # count tie: q decides
        ("B", 0): [("w1", 6, 0.5), ("w2", 5, 0.5), ("right", 2, 0.9)],    # rank 3
    }
    truth = {("A", 0): "right", ("A", 1): "right", ("B", 0): "right"}
    t = _table(votes, truth)
    assert [g for g, _, _ in t.ranked("A/1")] == ["right", "wrong", "other"]
    s = arc_eval.score(t, ks=(1, 2, 5))
    all_or_nothing, per_input = s["task_all_or_nothing"], s["per_test_input"]
    assert all_or_nothing == {"pass@1": 0.5, "pass@2": 0.5, "pass@5": 1.0}  # A passes, B at 5
    assert per_input == {"pass@1": 0.5, "pass@2": 0.5, "pass@5": 1.0}
    # Make A/1 lose the q tie-break: A fails pass@1 all-or-nothing but keeps half a task.
    votes[("A", 1)] = [("wrong", 4, 0.9), ("right", 4, 0.8)]
    s = arc_eval.score(_table(votes, truth), ks=(1, 2))
    assert s["task_all_or_nothing"] == {"pass@1": 0.0, "pass@2": 0.5}
    assert s["per_test_input"] == {"pass@1": 0.25, "pass@2": 0.5}
    assert s["n_tasks"] == 2 and s["n_test_inputs"] == 3
    assert s["augmentations_voted"] == {"mean": pytest.approx(29 / 3), "min": 8, "max": 13}


def test_full_ties_break_on_grid_text_not_arrival_order():
    a = _table({("T", 0): [("2x1:11", 1, 0.5), ("1x1:0", 1, 0.5)]}, {("T", 0): "1x1:0"})
    b = _table({("T", 0): [("1x1:0", 1, 0.5), ("2x1:11", 1, 0.5)]}, {("T", 0): "1x1:0"})
    assert a.ranked("T/0") == b.ranked("T/0") and a.ranked("T/0")[0][0] == "1x1:0"


def test_aggregated_voting_adds_evaluations():
    first = _table({("T", 0): [("x", 3, 0.5), ("y", 2, 0.5)]}, {("T", 0): "y"})
    second = _table({("T", 0): [("y", 2, 0.5)]}, {("T", 0): "y"})
    first.evaluations = second.evaluations = 1
    assert arc_eval.score(first, ks=(1,))["per_test_input"]["pass@1"] == 0.0
    first.merge(second)
    s = arc_eval.score(first, ks=(1,))
    assert s["per_test_input"]["pass@1"] == 1.0 and s["evaluations_voted"] == 2
    again = arc_eval.VoteTable.from_state(first.state_dict())  # checkpoint round trip
    assert again.ranked("T/0") == first.ranked("T/0")


def _arc_fixture():
    """Two tasks in augmented variants; predictions chosen per variant. Task A (2 test inputs):
    input 0 solved by 2 of 3 variants, input 1 only by 1 of 3 (the wrong grid wins the vote).
    Task B (1 input): solved by every variant."""
    rng = np.random.default_rng(0)
    a_in = [rng.integers(0, 10, (2, 3)), rng.integers(0, 10, (3, 3))]
    a_out = [rng.integers(0, 10, (2, 2)), rng.integers(0, 10, (1, 3))]
    a_bad = [rng.integers(0, 10, (2, 2)), rng.integers(0, 10, (2, 3))]
    b_in, b_out = rng.integers(0, 10, (4, 4)), rng.integers(0, 10, (3, 2))
    names = ["<blank>"]
    inputs, labels, preds, pids, psizes, gsizes = [], [], [], [], [], []
    plan = {"A": [(0, None, [True, True]), (3, rng, [True, False]), (6, rng, [False, False])],
            "B": [(0, None, [True]), (5, rng, [True])]}
    for task, variants in plan.items():
        gsizes.append(len(variants))
        for tid, r, solved in variants:
            perm = np.arange(10) if r is None else np.concatenate([[0], r.permutation(np.arange(1, 10))])
            names.append(task if r is None and tid == 0 else
                         f"{task}|||t{tid}|||{''.join(map(str, perm))}")
            pids.append(len(names) - 1)
            pairs = (list(zip(a_in, a_out, a_bad)) if task == "A" else [(b_in, b_out, b_out)])
            psizes.append(len(pairs))
            for (x, y, bad), ok in zip(pairs, solved):
                inputs.append(canvas(augment(x, tid, perm)))
                labels.append(canvas(augment(y, tid, perm)))
                preds.append(canvas(augment(y if ok else bad, tid, perm)))
    inputs = np.array(inputs)
    inputs[:, -1] = np.arange(len(inputs))  # example index for TableModel (canvas corner is PAD)
    return names, _split(inputs, np.array(labels), pids, psizes, gsizes), np.array(preds)


def test_arc_scorer_inverts_crops_and_votes_end_to_end():
    names, split, preds = _arc_fixture()
    n = len(preds)
    q = np.zeros((2, n))
    model = TableModel(np.stack([preds, preds]), q, vocab=12)
    scorer = arc_eval.ArcScorer(names, split, steps=[2])
    ev = evaluate(model, split, 2, 4, torch.device("cpu"), scorers=[scorer])
    s = ev["scorers"]["arc"][2]
    assert s["n_tasks"] == 2 and s["n_test_inputs"] == 3 and s["truth_conflicts"] == 0
    assert s["augmentations_voted"] == {"mean": 8 / 3, "min": 2, "max": 3}
    # A/0 right by 2 votes to 1; A/1 wrong grid 2 votes, right 1 -> right at rank 2; B right.
    assert s["task_all_or_nothing"]["pass@1"] == 0.5 and s["per_test_input"]["pass@1"] == 0.75
    assert s["task_all_or_nothing"]["pass@2"] == 1.0 and s["per_test_input"]["pass@2"] == 1.0
    # Step 1 was not voted (only the steps asked for are).
    assert list(ev["scorers"]["arc"]) == [2]


# --------------------------------------------------------------------------------------
# Maze
# --------------------------------------------------------------------------------------

MAZE = ["S  # ",
        " # # ",
        " #   ",
        "   #G",
        "## # "]


def _tokens(rows) -> np.ndarray:
    return np.array(["# SGo".index(c) + 1 for c in "".join(rows)], np.int64)


def _with_path(rows, cells) -> np.ndarray:
    grid = [list(r) for r in rows]
    for r, c in cells:
        grid[r][c] = "o"
    return _tokens(["".join(r) for r in grid])


def test_maze_tokens_and_shortest_distance():
    q = _tokens(MAZE)
    assert q[0] == 3 and q[1] == 2 and q[3] == 1 and q[19] == 4  # S, free, wall, G
    assert maze_eval.shortest_distances(q[None])[0] == 7
    blocked = list(MAZE)
    blocked[2], blocked[4] = " #  #", "## ##"  # G walled in
    assert maze_eval.shortest_distances(_tokens(blocked)[None])[0] == -1


def test_maze_valid_optimal_paths():
    q = _tokens(MAZE)
    # S(0,0) -> (1,0) (2,0) (3,0) (3,1) (3,2) (2,2)... shortest is 7 moves, e.g. via the top:
    top = [(0, 1), (0, 2), (1, 2), (2, 2), (2, 3), (2, 4)]  # S right, down, right to G's column
    assert maze_eval.valid_optimal(_with_path(MAZE, top)[None], q[None])[0]
    left = [(1, 0), (2, 0), (3, 0), (3, 1), (3, 2), (2, 2), (2, 3), (2, 4)]  # 9 moves: longer
    assert maze_eval.shortest_distances(q[None])[0] == 7
    cases = {
        "longer valid path": _with_path(MAZE, left),
        "gap in the path": _with_path(MAZE, [c for c in top if c != (1, 2)]),
        "extra stray cell": _with_path(MAZE, top + [(4, 2)]),
        "empty answer": q.copy(),
    }
    through_wall = _with_path(MAZE, [(0, 1), (0, 2), (0, 3), (0, 4), (1, 4), (2, 4)])
    cases["path over a wall"] = through_wall
    moved_goal = _with_path(MAZE, top)
    moved_goal[19], moved_goal[24] = 2, 4
    cases["goal moved"] = moved_goal
    for what, pred in cases.items():
        assert not maze_eval.valid_optimal(pred[None], q[None])[0], what


def test_maze_distances_match_a_plain_bfs_on_random_mazes():
    rng = np.random.default_rng(3)
    qs = []
    for _ in range(40):
        g = np.where(rng.random((7, 7)) < 0.3, 1, 2)
        cells = rng.choice(49, size=2, replace=False)
        g.flat[cells[0]], g.flat[cells[1]] = 3, 4
        qs.append(g.reshape(-1))
    qs = np.array(qs)
    got = maze_eval.shortest_distances(qs)
    for q, d in zip(qs, got):
        s, goal = int(np.flatnonzero(q == 3)[0]), int(np.flatnonzero(q == 4)[0])
        dist, frontier = {s: 0}, [s]
        while frontier:
            nxt = []
            for c in frontier:
                r, k = divmod(c, 7)
                for rr, kk in ((r + 1, k), (r - 1, k), (r, k + 1), (r, k - 1)):
                    nb = rr * 7 + kk
                    if 0 <= rr < 7 and 0 <= kk < 7 and q[nb] != 1 and nb not in dist:
                        dist[nb] = dist[c] + 1
                        nxt.append(nb)
            frontier = nxt
        assert d == dist.get(goal, -1)


def test_maze_scorer_per_step_inside_evaluate():
    q = _tokens(MAZE)
    good = _with_path(MAZE, [(0, 1), (0, 2), (1, 2), (2, 2), (2, 3), (2, 4)])
    inputs = np.stack([q, q])
    labels = np.stack([good, good])
    inputs_idx = inputs.copy()
    preds = np.stack([np.stack([q, good]), np.stack([good, good])])  # [step, example, L]
    # TableModel needs the example index in the last token; the maze's last cell is free.
    inputs_idx[:, -1] = [0, 1]
    split = _split(inputs_idx, labels, [0, 0], [1, 1], [1, 1])
    scorer = maze_eval.MazeScorer()
    # The scorer reads the question from the inputs: give it the real ones back.
    scorer_begin = scorer.begin
    scorer.begin = lambda idx, inp, lab: scorer_begin(idx, inputs[idx], lab)
    ev = evaluate(TableModel(preds, np.zeros((2, 2)), 6), split, 2, 1, torch.device("cpu"),
                  scorers=[scorer])
    assert ev["scorers"]["maze"]["valid_optimal_accuracy"] == [0.5, 1.0]
    assert ev["exact_accuracy"] == [0.5, 1.0]


# --------------------------------------------------------------------------------------
# Evaluation mechanics
# --------------------------------------------------------------------------------------


class FakeComm:
    """Two ranks run one after the other; the last one sees everyone's records."""

    def __init__(self, rank, world, store):
        self.rank, self.world_size, self.store, self.enabled = rank, world, store, True

    def all_gather_object(self, obj):
        self.store[self.rank] = obj
        return [self.store.get(r, []) for r in range(self.world_size)]


def test_sharded_evaluation_equals_single_process():
    names, split, preds = _arc_fixture()
    n = len(preds)
    rng = np.random.default_rng(1)
    steps = np.stack([preds, np.roll(preds, 1, axis=0), preds])
    q = rng.normal(size=(3, n))
    model = TableModel(steps, q, vocab=12)
    one = evaluate(model, split, 3, 3, torch.device("cpu"),
                   scorers=[arc_eval.ArcScorer(names, split, [1, 3])])
    store = {}
    evaluate(model, split, 3, 3, torch.device("cpu"), comm=FakeComm(1, 2, store),
             scorers=[arc_eval.ArcScorer(names, split, [1, 3])])
    two = evaluate(model, split, 3, 3, torch.device("cpu"), comm=FakeComm(0, 2, store),
                   scorers=[arc_eval.ArcScorer(names, split, [1, 3])])
    assert one["exact_accuracy"] == two["exact_accuracy"] and one["cell_accuracy"] == two["cell_accuracy"]
    assert np.array_equal(one["correct"], two["correct"]) and one["halting"] == two["halting"]
    assert one["scorers"] == two["scorers"]


def test_halting_statistics():
    exact = np.array([[0, 1, 0], [1, 1, 0], [1, 1, 0]], bool)   # [step, example]
    halted = np.array([[0, 1, 0], [1, 0, 0], [1, 1, 0]], bool)
    h = halting_stats(exact, halted, 3)
    assert h["mean_first_halt_step"] == pytest.approx((2 + 1 + 3) / 3)
    assert h["frac_halted_by_last_step"] == pytest.approx(2 / 3)
    assert h["exact_accuracy_at_halt"] == pytest.approx(2 / 3)  # ex0 at 2 ok, ex1 at 1 ok, ex2 at 3 wrong
    assert h["halt_rate"] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert halting_stats(exact, halted, 1)["frac_halted_by_last_step"] == pytest.approx(1 / 3)


def test_periodic_subsample_is_fixed_seeded_and_whole_groups():
    sizes = np.array([3, 1, 2, 4, 1, 2, 3, 1, 2, 1])  # examples per group (1 puzzle per group)
    n = int(sizes.sum())
    split = _split(np.zeros((n, 4)), np.zeros((n, 4)), np.zeros(10), sizes, np.ones(10, int))
    a, b = eval_indices(split, 7, seed=0), eval_indices(split, 7, seed=0)
    assert np.array_equal(a, b) and len(a) >= 7 and np.all(np.diff(a) > 0)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chosen = {g for g in range(10) if np.isin(np.arange(starts[g], starts[g + 1]), a).any()}
    assert sum(sizes[g] for g in chosen) == len(a)  # whole groups only
    assert any(not np.array_equal(a, eval_indices(split, 7, seed=s)) for s in range(1, 5))
    assert np.array_equal(eval_indices(split, 0, seed=0), np.arange(n))


# --------------------------------------------------------------------------------------
# Trained runs: the depth sweep, bf16 / compile paths, logging extras
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    spec = C.resolve("trm_mlp", "sudoku", "smoke", {"train.steps": 30})
    build_dataset(spec.data, root / "data")
    metrics = loop.run(spec, root / "run", root / "data", progress=False)
    return spec, root / "run", root / "data", metrics


def test_trm_eval_reproduces_training_metrics_and_writes_a_test_time_record(smoke_run, capsys):
    spec, run_dir, data, metrics = smoke_run
    assert spec.model.n_cycles == 1 and spec.model.n_latent_steps == 1 and spec.train.ema
    rc = cli_main(["eval", "--run", str(run_dir), "--n-supervision", "4", "6",
                   "--n-cycles", "2", "--n-latent-steps", "2"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    out = json.loads((run_dir / "test_time" / "eval.json").read_text())
    assert printed == out
    assert out["status"] == "ok" and out["study"] == "eval" and out["run_status"] == "ok"
    assert out["weights"] == "ema" and out["checkpoint_step"] == 30
    assert out["trained"] == {"n_cycles": 1, "n_latent_steps": 1, "n_supervision": 2,
                              "n_supervision_eval": 2}
    assert out["n_test"] == out["n_test_split"] == metrics["n_test"]
    assert out["halting"] == metrics["halting"]
    assert out["per_step_exact_accuracy"][:2] == metrics["per_step"]["exact_accuracy"][:2]
    by_k = {r["n_supervision"]: r for r in out["rows"] if r["sweep"] == "n_supervision"}
    assert sorted(by_k) == [2, 4, 6] and [by_k[k]["multiplier"] for k in (2, 4, 6)] == [1, 2, 3]
    grid = {(r["n_cycles"], r["n_latent_steps"], r["n_supervision"]): r
            for r in out["rows"] if r["sweep"] == "depth"}
    assert set(grid) == {(t, n, k) for t in (1, 2) for n in (1, 2) for k in (2, 4, 6)}
    for trained in (grid[(1, 1, 2)], by_k[2]):
        assert trained["exact_accuracy"] == metrics["exact_accuracy"]  # exactly, not approximately
        assert trained["cell_accuracy"] == metrics["cell_accuracy"]
    for entry in metrics["test_time"]:
        for row in (grid[(1, 1, entry["n_supervision"])], by_k[entry["n_supervision"]]):
            assert row["exact_accuracy"] == entry["exact_accuracy"]
            assert row["cell_accuracy"] == entry["cell_accuracy"]
    deeper = grid[(2, 2, 6)]
    assert deeper["depth_per_step"] == 2 * 3 * spec.model.layers
    for r in [*by_k.values(), *grid.values()]:
        assert 0.0 <= r["exact_accuracy"] <= r["cell_accuracy"] <= 1.0
    # The study's default trajectories sweep: one noiseless trajectory is plain evaluation.
    (plain,) = [r for r in out["rows"] if r["sweep"] == "trajectories"]
    assert plain["trajectories"] == 1 and plain["exact_accuracy"] == metrics["exact_accuracy"]
    assert set(out["halting"]) >= {"mean_first_halt_step", "frac_halted_by_last_step",
                                   "exact_accuracy_at_halt", "q_halt_accuracy"}


def test_bf16_autocast_and_compile_paths_run_on_cpu(smoke_run, tmp_path, monkeypatch):
    spec, run_dir, data, metrics = smoke_run
    over = {"train.steps": 6, "train.checkpoint_interval": 6}
    # The bf16 path itself runs on any CPU; pin the hardware probe so it is not refused here.
    monkeypatch.setenv("TRM_NATIVE_BF16", "1")
    from trm.train import precision

    precision.native_bf16.cache_clear()
    bf16 = loop.run(C.resolve("trm_mlp", "sudoku", "smoke", over | {"train.precision": "bf16"}),
                    tmp_path / "bf16", data, progress=False)
    assert bf16["status"] == "ok" and 0.0 <= bf16["cell_accuracy"] <= 1.0
    log = [json.loads(x) for x in (tmp_path / "bf16" / "train.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log)
    # compile: TorchDynamo tracing with the eager backend (no C++ toolchain needed) must give
    # the eager run's numbers and the same checkpoint keys.
    monkeypatch.setenv("TRM_COMPILE_BACKEND", "eager")
    plain = loop.run(C.resolve("trm_mlp", "sudoku", "smoke", over), tmp_path / "plain", data,
                     progress=False)
    from torch._dynamo.utils import counters

    counters.clear()
    comp = loop.run(C.resolve("trm_mlp", "sudoku", "smoke", over | {"train.compile": True}),
                    tmp_path / "comp", data, progress=False)
    assert counters["stats"]["unique_graphs"] >= 1  # the networks really went through Dynamo
    assert comp["per_step"] == plain["per_step"]
    a = torch.load(tmp_path / "plain" / "checkpoints" / "latest.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "comp" / "checkpoints" / "latest.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_autocast_uses_bf16_matmuls_on_cpu():
    from trm.train.evaluate import autocast

    lin = torch.nn.Linear(4, 3)
    with autocast(torch.device("cpu"), True):
        assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), False):
        assert lin(torch.randn(2, 4)).dtype == torch.float32


def test_logging_extras_are_optional(smoke_run, tmp_path, monkeypatch):
    spec = smoke_run[0]
    monkeypatch.delenv("TRM_TENSORBOARD", raising=False)
    monkeypatch.delenv("TRM_WANDB", raising=False)
    assert logging_extras.open_sinks(spec, tmp_path).sinks == []
    monkeypatch.setenv("TRM_TENSORBOARD", "1")
    monkeypatch.setenv("TRM_WANDB", "1")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        sinks = logging_extras.open_sinks(spec, tmp_path)  # installed or not: never raises
    assert logging_extras.open_sinks(spec, tmp_path, enabled=False).sinks == []
    seen = []

    class Fake:
        def log(self, values, step):
            seen.append((step, values))

        def close(self):
            pass

    s = logging_extras.Sinks([Fake()])
    s.log({"step": 3, "loss": 1.5, "lr": 1, "grad_norm": None, "halting": {"rate": 0.5}}, 3)
    assert seen == [(3, {"loss": 1.5, "lr": 1.0, "halting/rate": 0.5})]
    sinks.close()


# --------------------------------------------------------------------------------------
# Whole runs on hand-made ARC and Maze datasets in the official format
# --------------------------------------------------------------------------------------


def _write_dataset(root: Path, splits: dict, names: list[str], vocab: int, seq_len: int) -> Path:
    """splits: {"train"/"test": [group, ...]}, group = [(inputs [E, L], labels [E, L], pid), ...]."""
    from trm.data import official_format as fmt

    for split, groups in splits.items():
        b = fmt.SplitBuilder(seq_len)
        for group in groups:
            b.add_group(group)
        arrays = b.finish()
        fmt.write_arrays(root / split, arrays.arrays())
        meta = fmt.split_metadata(arrays, vocab_size=vocab, num_puzzle_identifiers=len(names))
        fmt.write_json(root / split / "dataset.json", meta | {"provenance": {"kind": "test"}})
    fmt.write_json(root / "identifiers.json", names)
    return root


@pytest.fixture(scope="module")
def arc_data(tmp_path_factory):
    rng = np.random.default_rng(5)
    names, train, test = ["<blank>"], [], []
    for task in range(8):
        colours = rng.permutation(np.arange(1, 10))[:3]
        pairs = [(g := rng.choice(colours, size=(2, 3)), g[::-1]) for _ in range(4)]  # flip rows
        tg, vg = [], []
        for v, tid in enumerate((0, int(rng.integers(1, 8)))):
            perm = np.concatenate([[0], rng.permutation(np.arange(1, 10))]) if v else np.arange(10)
            names.append(f"t{task}" if v == 0 else f"t{task}|||t{tid}|||{''.join(map(str, perm))}")
            enc = [(canvas(augment(x, tid, perm)), canvas(augment(y, tid, perm))) for x, y in pairs]
            tg.append((np.stack([e[0] for e in enc[:3]]), np.stack([e[1] for e in enc[:3]]), len(names) - 1))
            vg.append((enc[3][0][None], enc[3][1][None], len(names) - 1))
        train.append(tg)
        test.append(vg)
    return _write_dataset(tmp_path_factory.mktemp("arc"), {"train": train, "test": test}, names,
                          vocab=12, seq_len=SIDE * SIDE)


@pytest.mark.parametrize("aggregated", [False, True])
def test_arc_run_reports_pass_at_k_with_the_voting_protocol(arc_data, tmp_path, aggregated):
    over = {"train.steps": 6, "train.eval_interval": 3, "train.checkpoint_interval": 3,
            "eval.arc_aggregated_voting": aggregated, "model.puzzle_emb_dim": 16}
    spec = C.resolve("trm_mlp", "arc1", "smoke", over)
    m = loop.run(spec, tmp_path / "run", arc_data, progress=False)
    arc = m["arc"]
    assert arc["voting"] == ("aggregated" if aggregated else "per_checkpoint")
    assert arc["evaluations_voted"] == (2 if aggregated else 1)  # the eval at step 3 + final
    assert arc["n_tasks"] == 8 and arc["n_test_inputs"] == 8 and arc["truth_conflicts"] == 0
    assert arc["augmentations_voted"]["min"] == (4 if aggregated else 2)
    for k in arc_eval.PASS_KS:
        assert 0.0 <= m[f"pass@{k}"] <= m[f"pass@{k}_per_input"] + 1e-12 <= 1.0 + 1e-12
    assert {"pass@2", "pass@2_per_input"} <= set(m["test_time"][-1])
    log = [json.loads(x) for x in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert any("eval_pass@2" in r for r in log)
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    assert (state["arc_votes"] is not None) == aggregated
    sweep = evaluate_run(tmp_path / "run", n_supervision=[3], arc_votes=[1, 2], verbose=False)
    assert sweep["arc_voting"] == "per_checkpoint"
    row = next(r for r in sweep["rows"] if r["sweep"] == "n_supervision" and r["n_supervision"] == 2)
    assert row["exact_accuracy"] == m["exact_accuracy"]
    if not aggregated:
        voted = {r["votes"]: r for r in sweep["rows"] if r["sweep"] == "arc_votes"}
        assert voted[2]["augmentations_voted_mean"] == 2  # both variants: the run's own voting
        for key in ("pass@1", "pass@2", "pass@2_per_input"):
            assert voted[2][key] == m[key]
        return
    # The accumulated votes live in the checkpoint: resuming after the step-3 eval and
    # checkpoint ends with the same aggregated result as the uninterrupted run.
    part = tmp_path / "resumed"
    part.mkdir()
    trainer = loop.Trainer(spec, part, arc_data)
    for _ in range(3):
        trainer.train_step()
    trainer.evaluate(periodic=True)
    ckpt.save(trainer.state_dict(), part / "checkpoints")
    again = loop.run(spec, part, arc_data, progress=False)
    assert again["arc"] == m["arc"] and again["pass@2"] == m["pass@2"]


def test_maze_run_reports_valid_optimal(tmp_path):
    q = _tokens(MAZE).reshape(5, 5)
    a = _with_path(MAZE, [(0, 1), (0, 2), (1, 2), (2, 2), (2, 3), (2, 4)]).reshape(5, 5)
    ex = [(dihedral(q, t).reshape(1, -1), dihedral(a, t).reshape(1, -1), 0) for t in range(8)]
    data = _write_dataset(tmp_path / "maze", {"train": [[e] for e in ex + ex], "test": [[e] for e in ex]},
                          ["<blank>"], vocab=6, seq_len=25)
    spec = C.resolve("trm_mlp", "maze", "smoke", {"train.steps": 4})
    m = loop.run(spec, tmp_path / "run", data, progress=False)
    assert m["valid_optimal_accuracy"] >= m["exact_accuracy"]  # exact implies valid here
    assert len(m["per_step"]["valid_optimal_accuracy"]) == len(m["per_step"]["exact_accuracy"])
    assert "valid_optimal_accuracy" in m["test_time"][0]
    # `trm eval` reports the same path score at the trained depth, and at another depth too.
    sweep = evaluate_run(tmp_path / "run", n_supervision=[1], n_latent_steps=[1], verbose=False)
    k = m["n_supervision_eval"]
    trained = [r for r in sweep["rows"] if r["sweep"] == "n_supervision" and r["n_supervision"] == k]
    assert trained[0]["valid_optimal_accuracy"] == m["valid_optimal_accuracy"]
    assert trained[0]["halting"] == m["halting"]
    other = [r for r in sweep["rows"] if r["sweep"] == "depth" and r["n_latent_steps"] == 1]
    assert other and all("valid_optimal_accuracy" in r and "total_depth" in r for r in other)


# --------------------------------------------------------------------------------------
# Against the real builders (trm.data): inverse transforms and path checks agree with them
# --------------------------------------------------------------------------------------


def test_arc_truths_from_built_dataset_match_raw_test_outputs(tmp_path):
    pytest.importorskip("trm.data.arc_build")
    from trm.data.dataset import load_split

    spec = C.resolve("trm_mlp", "arc1", "smoke", {"data.source": "generate", "data.n_train": 4,
                                                  "data.n_test": 4, "data.n_aug": 3})
    build_dataset(spec.data, tmp_path / "arc")
    split = load_split(tmp_path / "arc", "test")
    names = json.loads((tmp_path / "arc" / "identifiers.json").read_text())
    raw = json.loads((tmp_path / "arc" / "test_puzzles.json").read_text())
    scorer = arc_eval.ArcScorer(names, split, [1])
    ctx = scorer.begin(np.arange(split.num_examples), np.asarray(split.inputs), np.asarray(split.labels))
    assert len(set(ctx["keys"])) == sum(len(raw[t]["test"]) for t in {a[0] for a in ctx["augs"]})
    for truth, (task, _, _) in zip(ctx["truths"], ctx["augs"]):
        outs = [np.array(t["output"]) for t in raw[task]["test"]]
        assert any(np.array_equal(arc_eval.key_grid(truth), o) for o in outs)
    assert scorer.end(ctx)["conflicts"] == 0


def test_maze_check_agrees_with_the_data_package(tmp_path):
    maze = pytest.importorskip("trm.data.maze")
    if not hasattr(maze, "path_is_optimal"):
        pytest.skip("trm.data.maze.path_is_optimal not available")
    from trm.data.dataset import load_split

    spec = C.resolve("trm_mlp", "maze", "smoke", {"data.source": "generate", "data.grid": 9,
                                                  "data.min_path": 0, "data.n_train": 8, "data.n_test": 8})
    build_dataset(spec.data, tmp_path / "maze")
    s = load_split(tmp_path / "maze", "train")
    rng = np.random.default_rng(0)
    preds, qs = [], []
    for q, a in zip(s.inputs.astype(np.int64), s.labels.astype(np.int64)):
        for trial in range(12):
            p = a.copy()
            if trial % 3:  # flip one or two free cells between path and free
                for c in rng.choice(np.flatnonzero(q == maze_eval.FREE), trial % 3, replace=False):
                    p[c] = maze_eval.PATH if p[c] == maze_eval.FREE else maze_eval.FREE
            preds.append(p)
            qs.append(q)
    mine = maze_eval.valid_optimal(np.array(preds), np.array(qs))
    theirs = [maze.path_is_optimal(p.reshape(9, 9), q.reshape(9, 9)) for p, q in zip(preds, qs)]
    assert mine.tolist() == [bool(t) for t in theirs]
    assert mine.any() and not mine.all()


def test_periodic_evaluation_leaves_training_unchanged(tmp_path):
    """The learning-speed reading turns periodic evaluations on at tiny without changing the
    run signature, so they must not change what is trained: same losses, same final
    accuracy, same weights, with and without them."""
    base = {"train.steps": 8, "train.log_interval": 1, "train.checkpoint_interval": 8}
    spec = C.resolve("trm_mlp", "sudoku", "smoke", base)
    with_evals = C.resolve("trm_mlp", "sudoku", "smoke",
                           base | {"train.eval_interval": 2, "eval.max_examples": 8})
    assert C.signature(spec) == C.signature(with_evals)
    data = tmp_path / "data"
    build_dataset(spec.data, data)
    runs = {}
    for name, s in (("plain", spec), ("evals", with_evals)):
        runs[name] = loop.run(s, tmp_path / name, data, progress=False)
    logs = {name: [json.loads(x) for x in (tmp_path / name / "train.jsonl").read_text().splitlines()]
            for name in runs}
    assert sum("eval_exact_accuracy" in r for r in logs["evals"]) == 3  # steps 2, 4, 6
    losses = {name: [r["loss"] for r in log if "loss" in r] for name, log in logs.items()}
    assert losses["plain"] == losses["evals"]
    assert runs["plain"]["per_step"] == runs["evals"]["per_step"]
    weights = {name: torch.load(tmp_path / name / "checkpoints" / "latest.pt", weights_only=True)["model"]
               for name in runs}
    assert all(torch.equal(weights["plain"][k], weights["evals"][k]) for k in weights["plain"])
