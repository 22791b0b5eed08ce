"""The embedded default (tiny scale) asks what it claims to ask: HRM at equal parameters and
at equal block, the official multi-scale z, Sudoku + Maze + ARC + the reach control in
depth_scaling, at least
five seeds, and a precision that is resolved before anything runs."""

from trm import config as C
from trm import studies as S
from trm.describe import describe


def test_hrm_at_equal_parameters_and_at_equal_block():
    params = {m: describe(C.resolve(m, "sudoku", "tiny"))["params"]
              for m in ("trm_mlp", "hrm_mlp_1layer", "hrm_mlp")}
    assert params["hrm_mlp_1layer"] == params["trm_mlp"]  # two 1-layer nets = one 2-layer net
    layers = {m: C.resolve(m, "sudoku", "tiny").model.layers for m in params}
    assert layers == {"trm_mlp": 2, "hrm_mlp_1layer": 1, "hrm_mlp": 2}  # same block, 2 nets
    assert params["hrm_mlp"] > params["trm_mlp"]
    _, runs = S.manifest("hrm_vs_trm", "tiny")
    assert {r.model for r in runs} >= {"trm_mlp", "hrm_mlp_1layer", "hrm_mlp"}


def test_depth_scaling_covers_sudoku_maze_arc_and_the_control_with_five_seeds():
    _, runs = S.manifest("depth_scaling", "tiny")
    assert {r.task for r in runs} == {"sudoku", "maze", "arc1", "reach"}
    seeds = {r.seed for r in runs}
    assert len(seeds) >= 5
    for task in ("sudoku", "maze", "arc1", "reach"):
        depths = {C.effective_depth(r.spec.model) for r in runs if r.task == task}
        assert len(depths) >= 2, task  # a depth contrast on every task
        assert {r.spec.data.source for r in runs if r.task == task} <= {"generate", "auto"}
    # The control's shallow row is one pass of the same block: the same parameters as TRM.
    reach = {r.model: r.spec for r in runs if r.task == "reach"}
    params = {m: describe(s)["params"] for m, s in reach.items()}
    assert params["direct"] == params["trm_mlp"]
    assert sorted(C.effective_depth(s.model) for s in reach.values()) == [2, 4]
    maze = next(r.spec.data for r in runs if r.task == "maze")
    # "Long for its size": every shortest path is longer than the side of the maze.
    assert maze.min_path > maze.grid


def test_every_tiny_run_has_a_concrete_precision():
    _, runs = S.manifest("all", "tiny")
    assert {r.spec.train.precision for r in runs} <= {"fp32", "bf16"}


def test_multi_scale_z_runs_the_official_layout_by_default():
    _, runs = S.manifest("trm_ablations", "tiny")
    ms = [r for r in runs if r.spec.model.latents == "multi_scale_z"]
    assert ms and {r.spec.model.multi_scale_layout for r in ms} == {"fixed6"}
