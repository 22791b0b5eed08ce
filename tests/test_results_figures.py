"""Figures render to PDF + PNG, rerender to identical bytes, and show unfinished cells."""

import pytest

from trm.results import figures, plotting
from trm.results.collect import collect_runs
from trm.results.example_runs import write_example_study


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    study, manifest = write_example_study(root, n_test=60)
    return root, study, manifest, collect_runs(manifest, root)


@pytest.fixture
def texts(monkeypatch):
    """Every text drawn on the figures saved during a test."""
    seen = []
    real_save = plotting.save

    def save(fig, out_pdf):
        seen.extend(t.get_text() for t in fig.findobj(match=lambda a: hasattr(a, "get_text")))
        return real_save(fig, out_pdf)

    monkeypatch.setattr(plotting, "save", save)
    return seen


def test_study_figure_is_deterministic_pdf_and_png(example, tmp_path, monkeypatch, texts):
    _, study, _, runs = example
    pdf, png = figures.plot_study(study, runs, tmp_path / "a" / "study.pdf")
    assert pdf.exists() and png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert b"CreationDate" not in pdf.read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    pdf2, png2 = figures.plot_study(study, runs, tmp_path / "b" / "study.pdf")
    assert pdf.read_bytes() == pdf2.read_bytes()
    assert png.read_bytes() == png2.read_bytes()
    # hrm n=6 has a diverged and a missing seed; trm n=6 (all missing, depth unknown) is
    # listed under the figure.
    joined = "\n".join(texts)
    assert "1 missing, 1 diverged" in joined
    assert "3 missing" in joined and "Not placed" in joined
    assert "Exact accuracy (%)" in joined and "Effective depth = T·(n+1)·layers" in joined
    assert "percentile-bootstrap" in joined


def test_missing_cells_with_known_x_are_marked_on_the_axes(example, tmp_path, texts):
    _, study, _, runs = example
    view = dict(study, figure={"x": "model.n_latent_steps", "y": "exact_accuracy", "hue": "model"})
    figures.plot_study(view, runs, tmp_path / "knob.pdf")
    assert "3 missing" in texts and "1 missing, 1 diverged" in texts
    assert not any(t.startswith("Not placed") for t in texts)


def test_unknown_figure_key_is_an_error_naming_it(example, tmp_path):
    _, study, _, runs = example
    bad = dict(study, figure={"x": "effective_depth", "y": "exact_accuracy", "colour": "model"})
    with pytest.raises(ValueError, match="unknown key 'figure.colour'"):
        figures.plot_study(bad, runs, tmp_path / "bad.pdf")
    bad = dict(study, figure={"x": "depth", "y": "exact_accuracy"})
    with pytest.raises(ValueError, match="figure.x: 'depth'"):
        figures.plot_study(bad, runs, tmp_path / "bad.pdf")


def test_study_with_only_missing_runs_renders(example, tmp_path, texts):
    _, study, manifest, _ = example
    runs = collect_runs(manifest, tmp_path / "empty_root")
    view = dict(study, figure={"x": "model.n_latent_steps", "y": "exact_accuracy", "hue": "model"})
    pdf, png = figures.plot_study(view, runs, tmp_path / "missing.pdf")
    assert pdf.exists() and png.exists()
    assert "no finished runs" in texts and texts.count("3 missing") == 6


def test_standard_figures_render(example, tmp_path, texts):
    root, _, _, runs = example
    outputs = [
        figures.plot_depth_scaling(runs, tmp_path / "depth.pdf"),
        figures.plot_test_time_depth(runs, tmp_path / "ttd.pdf"),
        figures.plot_learning_curves(runs, tmp_path / "lc.pdf", root=root),
        figures.plot_accuracy_vs_compute(runs, tmp_path / "compute.pdf"),
    ]
    for pdf, png in outputs:
        assert pdf.stat().st_size > 0 and png.stat().st_size > 0
    joined = "\n".join(texts)
    assert "Total effective depth = T·(n+1)·layers·K (K supervision steps)" in joined
    assert "trained N_sup" in joined
    assert "diverged" in joined  # the diverged learning curve ends in a labelled x
    assert "Training compute (FLOPs)" in joined  # counted from shapes (trm/model/flops.py)


def test_figure_kind_title_and_spec_key_axes(example, tmp_path, texts):
    _, study, _, runs = example
    special = dict(study, figure={"kind": "test_time_depth", "title": "Deeper at test time"})
    figures.plot_study(special, runs, tmp_path / "ttd.pdf")
    assert "Deeper at test time" in texts and "trained N_sup" in texts
    # model.layers is not a manifest column: it is read from each run's resolved spec.
    by_layers = dict(study, figure={"x": "model.layers", "y": "exact_accuracy", "hue": "model"})
    figures.plot_study(by_layers, runs, tmp_path / "layers.pdf")
    assert "Layers per network" in texts
    with pytest.raises(ValueError, match="figure.kind"):
        figures.plot_study(dict(study, figure={"kind": "violin"}), runs, tmp_path / "x.pdf")


def test_every_figure_kind_a_study_may_name_has_a_drawing_function():
    from trm.studies import FIGURE_KINDS

    assert set(figures.KINDS) == set(FIGURE_KINDS)
    assert all(callable(draw) for draw in figures.KINDS.values())


# --------------------------------------------------------------------------------------
# Colours, series and intervals that cannot mislead
# --------------------------------------------------------------------------------------

import json  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402


@pytest.fixture
def drawn(monkeypatch):
    """Legend entries (label -> colour, marker, line style) and the joined lines (colour,
    x data) of every figure drawn during a test; nothing is written to disk."""
    import matplotlib.pyplot as plt

    figs = []

    def save(fig, out_pdf):
        legend = {}
        for leg in fig.legends:
            for h, t in zip(leg.legend_handles, leg.get_texts()):
                if isinstance(h, Line2D) and h.get_color() != "none":
                    legend[t.get_text()] = (to_hex(h.get_color()), h.get_marker(),
                                            h.get_linestyle())
        lines = [(to_hex(ln.get_color()), list(ln.get_xdata()))
                 for ax in fig.axes for ln in ax.get_lines()
                 if ln.get_linestyle() not in ("None", "none", "") and len(ln.get_xdata()) > 1]
        figs.append({"legend": legend, "lines": lines})
        plt.close(fig)
        return out_pdf, out_pdf

    monkeypatch.setattr(plotting, "save", save)
    return figs


def test_every_model_config_has_its_own_fixed_colour_and_marker():
    names = plotting.model_names()
    assert "trm_mlp" in names and "hrm" in names and len(names) >= 14
    styles = plotting.model_styles(names)
    assert len({s.color for s in styles.values()}) == len(names)
    assert len({s.marker for s in styles.values()}) == len(names)
    # Fixed, not positional: a model keeps its style whichever others share the figure.
    assert plotting.model_styles(["trm_mlp"])["trm_mlp"] == styles["trm_mlp"]
    assert plotting.model_styles(["hrm", "trm_mlp"])["hrm"] == styles["hrm"]
    # A name outside configs/models never takes a config model's colour.
    assert plotting.model_styles(["mine"])["mine"].color not in {s.color for s in styles.values()}


def _many_models(runs: pd.DataFrame, names) -> pd.DataFrame:
    cell = runs[(runs["model"] == "hrm") & (runs["status"] == "ok")]
    cell = cell[cell["sig"] == cell["sig"].iloc[0]]
    parts = []
    for i, name in enumerate(names):
        part = cell.copy()
        part["model"], part["sig"] = name, f"s{i:02d}"
        part["exact_accuracy"] = np.clip(part["exact_accuracy"] + 0.02 * i, 0, 1)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_no_two_models_share_a_colour_and_each_keeps_it_across_figures(example, tmp_path, drawn):
    _, _, _, runs = example
    names = list(plotting.model_names())[:12]  # more than the 10 colours of one palette
    many = _many_models(runs, names)
    figures.plot_view(many, {"x": "model", "y": "exact_accuracy", "hue": "model"},
                      tmp_path / "a.pdf")
    figures.plot_accuracy_vs_compute(many, tmp_path / "b.pdf", col=None)
    figures.plot_view(many[many["model"].isin(names[5:8])],
                      {"x": "model", "y": "exact_accuracy", "hue": "model"}, tmp_path / "c.pdf")
    fixed = plotting.model_styles(names)
    for fig in drawn:
        shown = {lbl: v for lbl, v in fig["legend"].items() if lbl in names}
        assert shown, fig["legend"]
        assert len({v[0] for v in shown.values()}) == len(shown)  # no repeated colour
        for lbl, (colour, marker, _) in shown.items():
            assert colour == to_hex(fixed[lbl].color) and marker == fixed[lbl].marker


def test_cells_take_their_models_colour_in_test_time_depth(example, tmp_path, drawn):
    _, _, _, runs = example
    figures.plot_test_time_depth(runs, tmp_path / "ttd.pdf")
    legend = drawn[0]["legend"]
    hrm = to_hex(plotting.model_styles(["hrm"])["hrm"].color)
    hrm_cells = {k: v for k, v in legend.items() if k.startswith("hrm")}
    trm_cells = {k: v for k, v in legend.items() if k.startswith("trm")}
    assert len(hrm_cells) >= 2 and trm_cells
    assert {v[0] for v in hrm_cells.values()} == {hrm}
    assert hrm not in {v[0] for v in trm_cells.values()}
    assert len({v[2] for v in hrm_cells.values()}) == len(hrm_cells)  # told apart by line style


def _with_other_ablation(runs: pd.DataFrame) -> pd.DataFrame:
    """Example runs plus a trm cell from another ablation (T = 5 instead of 3 at n = 2)."""
    trm = runs[(runs["model"] == "trm") & (runs["status"] == "ok")]
    extra = trm[trm["sig"] == trm["sig"].iloc[0]].copy()
    extra["sig"] = "other_ablation"
    extra["forward_calls_per_step"] = pd.to_numeric(extra["forward_calls_per_step"]) * 1.7
    # The runs table counts FLOPs from the spec; this constructed cell's are scaled to match.
    extra["train_flops"] = extra["compute"] = pd.to_numeric(extra["train_flops"]) * 1.7
    extra["exact_accuracy"] = 0.05

    def t5(spec):
        spec = json.loads(spec)
        spec["model"]["n_cycles"] = 5
        return json.dumps(spec)

    extra["spec_json"] = extra["spec_json"].map(t5)
    return pd.concat([runs, extra], ignore_index=True)


def test_accuracy_vs_compute_joins_no_cells(example, tmp_path, drawn):
    _, _, _, runs = example
    rows = _with_other_ablation(runs)
    figures.plot_accuracy_vs_compute(rows, tmp_path / "compute.pdf", col=None)
    trm = to_hex(plotting.model_styles(["trm"])["trm"].color)
    joined = [xs for colour, xs in drawn[0]["lines"] if colour == trm]
    # Three finished trm cells: (n=2, T=3), (n=4, T=3), (n=2, T=5), from different ablations.
    # Two one-knob series of one model in one style would read as one curve through all
    # three, so this figure joins nothing: points and intervals only.
    ok = rows[(rows["model"] == "trm") & (rows["status"] == "ok")]
    compute, _ = figures.with_common_compute(ok)
    knobs = {}
    for sig, cell in compute.groupby("sig"):
        spec = json.loads(cell["spec_json"].iloc[0])["model"]
        knobs[round(cell["compute"].mean(), 6)] = (spec["n_latent_steps"], spec["n_cycles"])
    assert len(knobs) == 3
    assert joined == []


def test_split_series_treats_knobs_that_move_together_as_one_factor():
    cells = [{"n": 1, "T": 1, "ema": False}, {"n": 2, "T": 2, "ema": False},
             {"n": 3, "T": 3, "ema": False}, {"n": 2, "T": 2, "ema": True}]
    parts = figures.split_series(cells, ["n", "T", "ema"])
    assert sorted(len(p) for p in parts) == [1, 3]  # the zip is a line, the EMA cell alone
    assert figures.split_series(cells[:3], ["n", "T", "ema"]) == [cells[:3]]


def test_intervals_stay_inside_0_100():
    from trm.results import stats

    seeds = [0.0, 0.9]  # two seeds far apart: the t interval runs below 0%
    assert stats.summarize(seeds).ci_low < 0
    s = figures.seed_summary(seeds, (0.0, 1.0))
    assert 0.0 <= s.ci_low <= s.mean <= s.ci_high <= 1.0
    assert (s.ci_low, s.ci_high) == (0.0, 0.9)  # with 2 seeds: their range
    assert figures.seed_summary([0.5]).ci_low != figures.seed_summary([0.5]).ci_low  # NaN
