"""Kind test_time_depth: accuracy against the supervision steps K run at evaluation, one curve
per cell, with the N_sup each cell was trained with marked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results.collect import accuracy_by_eval_steps
from trm.results.figures.common import (
    CI_NOTE,
    accuracy_ylim,
    band,
    not_ok_text,
    set_x_ticks,
    summary_curve,
)
from trm.results.figures.facets import Facets, with_hue


def from_view(rows: pd.DataFrame, view: dict, out_pdf: Path, *, title: str,
              study: dict | None) -> tuple[Path, Path]:
    """A study's figure of this kind; hue, col and y default to cell, task, exact accuracy."""
    return plot_test_time_depth(rows, out_pdf, hue=view["hue"] or "cell",
                                col=view["col"] or "task", y=view["y"] or "exact_accuracy",
                                title=title)


def plot_test_time_depth(
    runs: pd.DataFrame,
    out_pdf: Path,
    *,
    hue: str = "cell",
    col: str = "task",
    y: str = "exact_accuracy",
    title: str = "Test-time depth",
) -> tuple[Path, Path]:
    """Accuracy vs supervision steps K at evaluation, one curve per cell (mean ± 95% bootstrap
    band over seeds, seeds as points); the dotted line marks the trained N_sup. Each curve has
    its model's colour and marker; cells of one model differ by line style."""
    facets = Facets(with_hue(runs, hue), hue=hue, col=col)
    rows = facets.rows
    scale = plotting.scale_for(y)
    long = accuracy_by_eval_steps(rows[rows["status"] == "ok"])
    footnotes = []
    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets.panels))
        for ax, panel, in_panel in facets.each_panel(axes):
            ks = set()
            marks = plotting.NotOkMarks()
            for h, mine in facets.each_hue(in_panel):
                if mine.empty:
                    continue
                color, style = facets.colors[h], facets.styles[h]
                tt = (
                    long[long["run_dir"].isin(mine.loc[mine["status"] == "ok", "run_dir"])]
                    if len(long)
                    else long
                )
                if len(tt):
                    band(ax, summary_curve(tt, "eval_steps", y), color, scale, lw=1.4,
                         ls=style.ls, marker=style.marker, ms=3.5, zorder=3)
                    ax.scatter(tt["eval_steps"], pd.to_numeric(tt[y]) * scale, s=7, color=color,
                               alpha=0.35, edgecolors="none", zorder=2)
                    ks.update(tt["eval_steps"].tolist())
                counts = cell_tools.status_counts(mine["status"])
                if counts["n_ok"] < counts["n_runs"]:
                    k_train = pd.to_numeric(mine["n_supervision"], errors="coerce").dropna()
                    text = not_ok_text(counts)
                    if len(k_train):
                        marks.add(float(k_train.iloc[0]), text, color)
                        ks.add(float(k_train.iloc[0]))
                    else:
                        footnotes.append(f"Not placed (N_sup unknown): "
                                         f"{cell_tools.format_value(h)}: {text}")
            _mark_trained(ax, in_panel)
            if cell_tools.is_accuracy(y):
                accuracy_ylim(ax, marks.max_stack())
            if ks:
                set_x_ticks(ax, sorted(ks), log=min(ks) > 0 and max(ks) / min(ks) >= 4)
            marks.draw(ax)
            facets.label(ax, panel, plotting.axis_label("eval_steps"), y)
        plotting.finish(fig, facets.legend(), title, [CI_NOTE] + footnotes)
        return plotting.save(fig, out_pdf)


def _mark_trained(ax, in_panel: pd.DataFrame) -> None:
    """A dotted vertical line at each N_sup the panel's runs were trained with."""
    trained = pd.to_numeric(in_panel["n_supervision"], errors="coerce").dropna().unique()
    for k in trained:
        ax.axvline(k, color="0.35", ls=":", lw=1, zorder=1)
    if len(trained):
        ax.annotate("trained N_sup", (trained.max(), 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -3), textcoords="offset points", fontsize=6.5, va="top",
                    color="0.35")
