"""Kind depth_scaling: accuracy against total effective depth T·(n+1)·layers·K, trained and
at test time, so one can see whether recursion at test time substitutes for trained depth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results.collect import accuracy_by_eval_steps
from trm.results.figures.common import (
    CI_NOTE,
    accuracy_ylim,
    band,
    bounds,
    ci_bars,
    not_ok_text,
    seed_summary,
    split_cells,
    summary_curve,
)
from trm.results.figures.facets import Facets, with_hue


def from_view(rows: pd.DataFrame, view: dict, out_pdf: Path, *, title: str,
              study: dict | None) -> tuple[Path, Path]:
    """A study's figure of this kind; hue, col and y default to model, task, exact accuracy."""
    return plot_depth_scaling(rows, out_pdf, hue=view["hue"] or "model", col=view["col"] or "task",
                              y=view["y"] or "exact_accuracy", title=title, study=study)


def plot_depth_scaling(
    runs: pd.DataFrame,
    out_pdf: Path,
    *,
    hue: str = "model",
    col: str = "task",
    y: str = "exact_accuracy",
    title: str = "Depth scaling",
    study: dict | None = None,
) -> tuple[Path, Path]:
    """Accuracy vs total effective depth T·(n+1)·layers·K.

    Thick markers: the trained depth (K = N_sup), seeds as points, mean ± 95% bootstrap
    interval, joined per hue level where the cells form one series (split_series). Thin dashed
    curves: the same cells evaluated at other K (test-time depth), so one can see whether
    recursion at test time substitutes for trained depth.
    """
    facets = Facets(with_hue(runs, hue), hue=hue, col=col, study=study)
    rows = facets.rows
    long = accuracy_by_eval_steps(rows[rows["status"] == "ok"])
    if len(long):
        long["total_depth"] = pd.to_numeric(long["effective_depth"]) * long["eval_steps"]
    footnotes, all_x = [], []
    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets.panels))
        for ax, panel, in_panel in facets.each_panel(axes):
            marks = plotting.NotOkMarks()
            for h, mine in facets.each_hue(in_panel):
                drawn_x, notes = _draw_level(ax, h, mine, long, y, facets.styles[h], marks)
                all_x += drawn_x
                footnotes += notes
            if cell_tools.is_accuracy(y):
                accuracy_ylim(ax, marks.max_stack())
            if all_x:
                ax.set_xscale("log", base=2)
                plotting.plain_log_labels(ax.xaxis)
            marks.draw(ax)
            facets.label(ax, panel, plotting.axis_label("total_depth"), y)
        handles = facets.legend()
        handles.append(
            Line2D([], [], color="0.3", ls="--", lw=0.9, label="test-time depth (K steps)")
        )
        plotting.finish(fig, handles, title,
                        [CI_NOTE + " Solid: trained depth (K = N_sup)."] + footnotes)
        return plotting.save(fig, out_pdf)


def _draw_level(ax, level, mine: pd.DataFrame, long: pd.DataFrame, y: str,
                style: plotting.SeriesStyle, marks: plotting.NotOkMarks):
    """One hue level in one panel: per cell its seeds at the trained depth and its dashed
    test-time curve, then the cells' means joined where they form one series. Returns the x
    values drawn and a footnote for each unfinished cell whose depth is unknown."""
    color, scale = style.color, plotting.scale_for(y)
    trained, all_x, footnotes = [], [], []
    for sig, cell in mine.groupby("sig", sort=True):
        depth = pd.to_numeric(cell["effective_depth"], errors="coerce").dropna()
        k_train = pd.to_numeric(cell["eval_n_supervision"], errors="coerce").dropna()
        x_cell = (
            (depth.iloc[0] * k_train.iloc[0])
            if len(depth) and len(k_train)
            else math.nan
        )
        ok = cell[cell["status"] == "ok"]
        counts = cell_tools.status_counts(cell["status"])
        if len(ok) and np.isfinite(x_cell):
            s = seed_summary(pd.to_numeric(ok[y], errors="coerce"), bounds(y, 1.0))
            trained.append((x_cell, s, cell.iloc[0].to_dict()))
            ax.scatter([x_cell] * len(ok), pd.to_numeric(ok[y]) * scale, s=11, color=color,
                       alpha=0.45, edgecolors="none", zorder=2)
            all_x.append(x_cell)
        if len(long) and len(ok):
            tt = long[(long["sig"] == sig) & long["run_dir"].isin(ok["run_dir"])]
            curve = summary_curve(tt, "total_depth", y)
            if len(curve):
                band(ax, curve, color, scale, band_alpha=0.07, lw=0.9, ls="--", alpha=0.8,
                     zorder=1)
                all_x += list(curve["x"])
        if counts["n_ok"] < counts["n_runs"]:
            text = not_ok_text(counts)
            if np.isfinite(x_cell):
                marks.add(x_cell, text, color)
                all_x.append(x_cell)
            else:
                footnotes.append(
                    f"Not placed (depth unknown): {cell_tools.format_value(level)}, "
                    f"sig {sig}: {text}"
                )
    trained.sort(key=lambda t: t[0])
    for part in split_cells(trained, lambda t: t[2]):
        if not part:
            continue
        xs = [t[0] for t in part]
        means = np.array([t[1].mean for t in part]) * scale
        lo = np.array([t[1].ci_low for t in part]) * scale
        hi = np.array([t[1].ci_high for t in part]) * scale
        ax.plot(xs, means, color=color, marker=style.marker,
                ls=style.ls if len(part) > 1 else "none", lw=1.6, ms=5, zorder=3)
        ci_bars(ax, xs, means, lo, hi, color)
    return all_x, footnotes
