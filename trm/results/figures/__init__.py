"""Figures from the runs table: a study's own view (its `figure:` block) and four standard
figures (depth scaling, test-time depth, learning curves, accuracy vs training compute).

Every figure shows seeds as points and the cell mean with a 95% percentile-bootstrap interval
over seeds (FIGURE_INTERVAL; it never leaves the seeds' range, so accuracies stay in 0-100%,
unlike the tables' t interval with 2-3 seeds). Colours and markers are fixed per model name
(plotting.model_styles). A line joins cells only when they form one series: they differ in a
single factor (knobs that change together, like a zip, count as one). Timings are single
measurements per run and say so. Cells whose runs are missing, failed or
diverged are drawn as an 'x' at their x position with the reason, or listed under the
figure when their x is unknown; nothing is dropped silently. Each call writes a PDF and a
PNG next to it, byte-identical across reruns.

One module per figure kind (KINDS below); common.py holds the seed interval and series
splitting they share, facets.py the panel/hue layout they are drawn in.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trm.results import cells as cell_tools
from trm.results.collect import with_spec_columns
from trm.results.figures import compute, depth_scaling, learning_curves, test_time_depth
from trm.results.figures.common import (
    CI_NOTE,
    FIGURE_INTERVAL,
    N_BOOT,
    NOT_FACTORS,
    cell_factors,
    seed_summary,
    split_cells,
    split_series,
)
from trm.results.figures.compute import (
    MATCHED_COMPUTE_RTOL,
    matched_compute_notes,
    plot_accuracy_vs_compute,
    with_common_compute,
)
from trm.results.figures.depth_scaling import plot_depth_scaling
from trm.results.figures.learning_curves import plot_learning_curves, read_train_log
from trm.results.figures.test_time_depth import plot_test_time_depth
from trm.results.figures.view import default_view, plot_view, validate_view
from trm.studies import VIEW_KEYS

__all__ = [
    "CI_NOTE", "FIGURE_INTERVAL", "KINDS", "MATCHED_COMPUTE_RTOL", "N_BOOT", "NOT_FACTORS",
    "cell_factors", "default_view", "matched_compute_notes", "plot_accuracy_vs_compute",
    "plot_depth_scaling", "plot_learning_curves", "plot_study", "plot_test_time_depth",
    "plot_view", "read_train_log", "seed_summary", "split_cells", "split_series",
    "validate_view", "with_common_compute",
]

# A study's figure.kind (trm.studies.FIGURE_KINDS) -> what draws it:
# draw(rows, view, out_pdf, *, title, study) -> (pdf, png), view as validate_view returns it.
KINDS = {
    "view": plot_view,
    "depth_scaling": depth_scaling.from_view,
    "test_time_depth": test_time_depth.from_view,
    "learning_curves": learning_curves.from_view,
    "compute": compute.from_view,
}


def plot_study(study: dict, runs: pd.DataFrame, out_pdf: Path) -> tuple[Path, Path]:
    """The figure a study's `figure:` block asks for; writes out_pdf and the .png beside it."""
    rows = cell_tools.study_rows(study, runs)
    study = cell_tools.at_scale(study, rows)
    view = validate_view(study.get("figure") or default_view(study), runs)
    title = view["title"] or study["name"]
    if rows.empty:
        title += " (no runs in the runs table)"
    rows = with_spec_columns(rows, [view[k] for k in VIEW_KEYS])
    return KINDS[view["kind"]](rows, view, out_pdf, title=title, study=study)
