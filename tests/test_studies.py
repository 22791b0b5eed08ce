"""Study YAML -> runs: grid, include, exclude, dedupe, validation errors naming file and key."""

import shutil

import pytest

from trm import config as C
from trm import studies as S


def _cfg(tmp_path):
    cfg = tmp_path / "configs"
    shutil.copytree(C.CONFIG_DIR, cfg)
    return cfg


def _write(cfg, name, text):
    (cfg / "studies" / f"{name}.yaml").write_text(text)
    return cfg / "studies" / f"{name}.yaml"


def test_depth_scaling_expands():
    studies, runs = S.manifest("depth_scaling", "smoke")
    seeds = C.load_scale("smoke")["seeds"]
    assert len(runs) == (3 + 1) * len(seeds)  # a 3-point zip over (n, T) plus HRM
    assert len({r.run_dir for r in runs}) == len(runs)
    hrm = [r for r in runs if r.model == "hrm_mlp"]
    assert len(hrm) == len(seeds)


def test_grid_zip_include_exclude(tmp_path):
    cfg = _cfg(tmp_path)
    p = _write(cfg, "t", """
name: t
tasks: [sudoku]
models: [trm_mlp, hrm]
seeds: [0]
grid: {model.n_cycles: [1, 2]}
zip: {model.n_latent_steps: [1, 2], train.steps: [10, 20]}
include: [{model: trm_att, model.n_cycles: 1}]
exclude: [{model: hrm, model.n_cycles: 2}]
""")
    runs = S.expand(S.load_study(p), "smoke", cfg)
    cells = {(r.model, r.spec.model.n_cycles, r.spec.model.n_latent_steps, r.spec.train.steps) for r in runs}
    assert ("hrm", 2, 1, 10) not in cells
    assert ("trm_mlp", 2, 2, 20) in cells and ("trm_mlp", 1, 1, 10) in cells
    assert ("trm_mlp", 1, 1, 20) not in cells  # zip, not product
    assert any(m == "trm_att" for m, *_ in cells)
    assert len(runs) == 2 * 2 + 1 * 2 + 1


def test_shared_cells_have_the_same_run_dir(tmp_path):
    cfg = _cfg(tmp_path)
    a = _write(cfg, "a", "name: a\ntasks: [sudoku]\nmodels: [trm_mlp]\nseeds: [0]\ngrid: {model.n_cycles: [1, 2]}\n")
    b = _write(cfg, "b", "name: b\ntasks: [sudoku]\nmodels: [trm_mlp]\nseeds: [0]\ngrid: {model.n_cycles: [2, 3]}\n")
    ra = {r.run_dir for r in S.expand(S.load_study(a), "smoke", cfg)}
    rb = {r.run_dir for r in S.expand(S.load_study(b), "smoke", cfg)}
    assert len(ra & rb) == 1


@pytest.mark.parametrize(
    "text, msg",
    [
        ("name: x\ntasks: [sudoku]\nmodels: [trm_mlp]\ngridd: {}\n", "unknown key 'gridd'"),
        ("name: x\ntasks: [sudoku]\nmodels: [trm_mlp]\ngrid: {model.n_cycles: []}\n", "grid axis 'model.n_cycles'"),
        ("name: x\ntasks: [sudoku]\nmodels: [trm_mlp]\ngrid: {model.n_cyclez: [1]}\n", "model.n_cyclez"),
        ("name: x\ntasks: [sudoku]\nmodels: [trm_mlp]\nexclude: [{model: trm_mlp}]\n", "empty"),
        ("name: x\ntasks: [sudoku]\nmodels: [trm_mlp]\nfigure: {xx: a}\n", "figure.xx"),
        ("name: y\ntasks: [sudoku]\nmodels: [trm_mlp]\n", "file name"),
        ("name: x\ntasks: []\nmodels: [trm_mlp]\n", "'tasks'"),
    ],
)
def test_bad_study_names_file_and_key(tmp_path, text, msg):
    cfg = _cfg(tmp_path)
    p = _write(cfg, "x", text)
    with pytest.raises(C.SpecError) as e:
        S.expand(S.load_study(p), "smoke", cfg)
    assert "x.yaml" in str(e.value) and msg in str(e.value)


def test_scale_tweaks_in_a_study():
    _, paper = S.manifest("depth_scaling", "paper")
    depths = {(r.model, r.spec.model.n_latent_steps, r.spec.model.n_cycles) for r in paper}
    assert ("hrm", 6, 6) in depths and ("trm_mlp", 2, 1) in depths  # TRM Table 3 grid


def test_every_shipped_study_resolves_at_every_scale():
    for scale in C.available("scales"):
        studies, runs = S.manifest("all", scale)
        assert runs, scale


def test_task_seeds_give_one_task_more_seeds_and_a_plan_tops_them_up(tmp_path):
    cfg = _cfg(tmp_path)
    path = cfg / "scales" / "tiny.yaml"
    path.write_text(path.read_text() + "task_seeds: {maze: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}\n")
    _, runs = S.manifest("depth_scaling", "tiny", cfg)
    seeds = {t: {r.seed for r in runs if r.task == t} for t in ("sudoku", "maze", "arc1")}
    scale = C.load_scale("tiny", cfg)
    assert seeds["maze"] == set(scale["task_seeds"]["maze"]) and len(seeds["maze"]) == 10
    assert seeds["sudoku"] == seeds["arc1"] == set(scale["seeds"])
    study = S.load_study(cfg / "studies" / "depth_scaling.yaml")
    planned = S.expand(study, "tiny", cfg, n_seeds=12)
    by_task = {t: {r.seed for r in planned if r.task == t} for t in ("sudoku", "maze")}
    assert by_task["maze"] == set(range(12)) and by_task["sudoku"] == set(range(12))
    few = S.expand(study, "tiny", cfg, n_seeds=3)  # a plan adds runs, never drops them
    assert {r.seed for r in few if r.task == "maze"} == seeds["maze"]


@pytest.mark.parametrize(
    "block, msg",
    [
        ("task_seeds: {mazes: [0, 1]}\n", "no task named 'mazes'"),
        ("task_seeds: {maze: [0, 0]}\n", "task_seeds.maze: lists a seed twice"),
        ("task_seeds: {maze: [-1]}\n", "task_seeds.maze: entries must be integers in [0, 2**32 - 1]"),
        ("task_seeds: {maze: []}\n", "task_seeds.maze: must be a non-empty list"),
        ("task_seeds: [maze]\n", "task_seeds: must be a mapping"),
        ("seeds: [1, 1]\n", "seeds: lists a seed twice"),
    ],
)
def test_bad_scale_seeds_name_file_and_key(tmp_path, block, msg):
    cfg = _cfg(tmp_path)
    path = cfg / "scales" / "smoke.yaml"
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("seeds:"))
    path.write_text(text + "\n" + block)
    with pytest.raises(C.SpecError) as e:
        S.manifest("depth_scaling", "smoke", cfg)
    assert "smoke.yaml" in str(e.value) and msg in str(e.value)
