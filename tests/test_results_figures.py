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
    assert "Exact accuracy (%)" in joined and "Effective depth" in joined


def test_missing_cells_with_known_x_are_marked_on_the_axes(example, tmp_path, texts):
    _, study, _, runs = example
    view = dict(study, figure={"x": "model.n_latent_steps", "y": "exact_accuracy", "hue": "model"})
    figures.plot_study(view, runs, tmp_path / "knob.pdf")
    assert "3 missing" in texts and "1 missing, 1 diverged" in texts
    assert not any(t.startswith("Not placed") for t in texts)


def test_unknown_figure_key_is_an_error_naming_it(example, tmp_path):
    _, study, _, runs = example
    bad = dict(study, figure={"x": "effective_depth", "y": "exact_accuracy", "colour": "model"})
    with pytest.raises(ValueError, match="unknown key 'colour'"):
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
    assert "Total effective depth (layers × supervision steps)" in joined
    assert "trained N_sup" in joined
    assert "diverged" in joined  # the diverged learning curve ends in a labelled x
    assert "Training compute (network calls; backward = 2)" in joined


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
