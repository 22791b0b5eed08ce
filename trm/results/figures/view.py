"""The study's own view (its `figure:` block, kind `view`): y against x by hue, style and col.

Cells are one mean ± interval each over their finished seeds, with the seeds as points; a
categorical x (models, booleans) gets one position per value, dodged by hue; unfinished
cells are an 'x' with the reason at their x, or a footnote when their x is unknown.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results.collect import with_spec_columns
from trm.results.figures.common import (
    CI_NOTE,
    accuracy_ylim,
    bounds,
    ci_bars,
    not_ok_text,
    seed_summary,
    set_x_ticks,
    split_cells,
)
from trm.results.figures.facets import Facets, levels
from trm.studies import VIEW_KEYS
from trm.studies.schema import check_view


def validate_view(view: dict, runs: pd.DataFrame) -> dict:
    """Check a `figure:` block against the runs table it will be drawn from: the same check
    as at planning (trm.studies.schema.check_view), with the table's own columns."""
    return check_view(view, "figure", columns=runs.columns)


def default_view(study: dict) -> dict:
    """The view of a study without a `figure:` block: exact accuracy against its first knob."""
    knobs = cell_tools.declared_knobs(study)
    return {
        "x": knobs[0] if knobs else "model",
        "y": "exact_accuracy",
        "hue": "model",
        "style": None,
        "col": "task" if len(study.get("tasks") or []) > 1 else None,
    }


def _footnotes(y: str) -> list[str]:
    return [CI_NOTE] + ([plotting.TIMING_NOTE] if plotting.is_timing(y) else [])


def _is_numeric(series: pd.Series) -> bool:
    """A numeric axis: every value a number (booleans such as share_weights are categories)."""
    values = series.dropna()
    if values.empty or values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        return False
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _cells(rows: pd.DataFrame, view: dict) -> list[dict]:
    """One record per cell: its facet/hue/style values, x, y summary, seeds, and status."""
    keys = list(
        dict.fromkeys([k for k in (view["col"], view["hue"], view["style"]) if k] + cell_tools.CELL_KEYS)
    )
    x, y = view["x"], view["y"]
    numeric_x = _is_numeric(rows[x]) if len(rows) else False
    ids = [tuple(cell_tools.group_value(k, r[k]) for k in keys) for r in rows.to_dict("records")]
    out = []
    for cell_id in dict.fromkeys(ids):
        group = rows[[i == cell_id for i in ids]]
        ok = group[group["status"] == "ok"]
        yv = pd.to_numeric(ok[y], errors="coerce") * plotting.scale_for(y)
        if numeric_x:
            xs_ok = pd.to_numeric(ok[x], errors="coerce")
            xs_all = pd.to_numeric(group[x], errors="coerce").dropna()
            x_cell = (
                xs_ok.mean()
                if xs_ok.notna().any()
                else (xs_all.iloc[0] if len(xs_all) else math.nan)
            )
        else:
            xs_ok = ok[x].map(lambda v: cell_tools.group_value(x, v))
            vals = group[x].dropna()
            x_cell = cell_tools.group_value(x, vals.iloc[0]) if len(vals) else None
        counts = cell_tools.status_counts(group["status"])
        out.append(
            {
                **dict(zip(keys, cell_id)),
                "x": x_cell,
                "summary": seed_summary(yv, bounds(y, plotting.scale_for(y))),
                "seed_x": list(xs_ok),
                "seed_y": list(yv),
                "counts": counts,
                "first": group.iloc[0].to_dict(),
            }
        )
    return out


def _x_levels(cells: list[dict], x: str, order: list) -> list:
    """Categorical x positions in the study's order (models as listed), then by label."""

    def rank(c):
        base = c["model"] if x == "model" else c["first"].get(x)
        base = cell_tools.group_value(x, base)
        return (order.index(base) if base in order else len(order), cell_tools.sort_key(c["x"]))

    ranked = sorted((c for c in cells if c["x"] is not None), key=rank)
    return list(dict.fromkeys(c["x"] for c in ranked))


def _separate_colliding(cells: list[dict], view: dict, knobs: list[str]) -> None:
    """Cells that would share one categorical x position (same facet, x, hue and style,
    e.g. two trm_mlp cells on an x: model axis) get their other knob values added to the
    x label, so each stays its own, labelled position."""
    keys = [view[k] for k in ("col", "hue", "style") if view[k]]
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["x"], *(c[k] for k in keys)), []).append(c)
    for group in groups.values():
        if len(group) < 2:
            continue
        for c in group:
            extra = (
                cell_tools.cell_label(c["first"], knobs, with_model=False) if knobs else f"sig {c['sig']}"
            )
            c["x"] = f"{cell_tools.format_value(c['x'])}\n{extra}"


def _x_position(mine: list[dict], x_levels: list, hues: list, hue: str | None, numeric_x: bool):
    """xpos(cell, seed_x=None): where a cell (or one of its seeds) of one panel sits on the x
    axis. A categorical x position is dodged only among the hue levels that share it."""
    present = {
        v: [h for h in hues if any(c["x"] == v and (not hue or c[hue] == h) for c in mine)]
        for v in x_levels
    }

    def xpos(c, seed_x=None):
        if numeric_x:
            value = c["x"] if seed_x is None else seed_x
            return float(value) if value is not None and np.isfinite(value) else math.nan
        if c["x"] not in x_levels:
            return math.nan
        here = present[c["x"]]
        dodge = (
            (here.index(c[hue]) - (len(here) - 1) / 2) * 0.14
            if hue and c[hue] in here
            else 0.0
        )
        return x_levels.index(c["x"]) + dodge

    return xpos


def _draw_series(ax, series: list[dict], xpos, numeric_x: bool, color, marker, ls) -> None:
    """One hue/style series of cells: mean ± interval per finished cell, joined by a line
    (style ls) only within one series of split_cells, and each cell's seeds as points."""
    done = sorted((c for c in series if c["summary"].n > 0), key=lambda c: xpos(c))
    for part in split_cells(done):
        if not part:
            continue
        xs = [xpos(c) for c in part]
        means = np.array([c["summary"].mean for c in part])
        lo = np.array([c["summary"].ci_low for c in part])
        hi = np.array([c["summary"].ci_high for c in part])
        ax.plot(xs, means, color=color, marker=marker, ls=ls if len(part) > 1 else "none",
                lw=1.4, ms=5, zorder=3)
        ci_bars(ax, xs, means, lo, hi, color)
    for c in done:
        sx = [xpos(c, v) for v in c["seed_x"]] if numeric_x else [xpos(c)] * len(c["seed_y"])
        ax.scatter(sx, c["seed_y"], s=11, color=color, alpha=0.45, edgecolors="none", zorder=2)


def _x_axis(ax, cells: list[dict], x_levels: list, numeric_x: bool) -> None:
    """Ticks at the values of a numeric x (log for wide ranges), or one per category."""
    if numeric_x:
        xv = [c["x"] for c in cells if c["x"] is not None]
        xv += [v for c in cells for v in c["seed_x"]]
        if xv and np.isfinite(xv).any():
            set_x_ticks(ax, xv, plotting.use_log_x(xv))
        ax.margins(x=0.06)
    else:
        plotting.category_ticks(ax, [cell_tools.format_value(v) for v in x_levels])
        if x_levels:
            ax.set_xlim(-0.6, len(x_levels) - 0.4)


def plot_view(
    rows: pd.DataFrame,
    view: dict,
    out_pdf: Path,
    *,
    title: str = "",
    study: dict | None = None,
    x_label: str | None = None,
    join: bool = True,
    notes: list[str] | None = None,
) -> tuple[Path, Path]:
    """Mean ± CI per cell over x, coloured by hue, marker/linestyle by style, one panel per col.
    join=False draws no lines at all (points and intervals only); notes: extra footnote lines."""
    view = validate_view({k: v for k, v in view.items() if k in VIEW_KEYS}, rows)
    knobs = cell_tools.varied_knobs(study or {}, rows) if len(rows) else []
    # Blank knobs (the model's own value) are filled from the resolved spec for labels.
    rows = with_spec_columns(rows, [view[k] for k in VIEW_KEYS] + knobs)
    x, y, hue, sty, col = (view[k] for k in VIEW_KEYS)
    cells = _cells(rows, view) if len(rows) else []
    numeric_x = _is_numeric(rows[x]) if len(rows) else False
    if not numeric_x:
        _separate_colliding(cells, view, [k for k in knobs if k != x])
    facets = Facets(rows, hue=hue, col=col, study=study)
    styles = levels(rows, sty, study)
    if sty:  # the style knob takes the marker and line style; colour stays the hue's
        marker_map = {s: plotting.MARKERS[i % len(plotting.MARKERS)] for i, s in enumerate(styles)}
        line_map = {s: plotting.LINESTYLES[i % len(plotting.LINESTYLES)] for i, s in enumerate(styles)}

    x_levels = [] if numeric_x else _x_levels(cells, x, levels(rows, x, study))
    footnotes = []

    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets.panels), n_categories=len(x_levels))
        for ax, panel in zip(axes, facets.panels):
            mine = [c for c in cells if not col or c[col] == panel]
            marks = plotting.NotOkMarks()
            xpos = _x_position(mine, x_levels, facets.hues, hue, numeric_x)
            for h in facets.hues:
                for s in styles:
                    series = [
                        c for c in mine if (not hue or c[hue] == h) and (not sty or c[sty] == s)
                    ]
                    color = facets.colors[h]
                    marker = marker_map[s] if sty else facets.styles[h].marker
                    ls = line_map[s] if sty else facets.styles[h].ls
                    # Lines only join ordered x values; categories get markers alone.
                    _draw_series(ax, series, xpos, numeric_x, color, marker,
                                 ls if join and numeric_x else "none")
                    for c in series:
                        if c["counts"]["n_ok"] == c["counts"]["n_runs"]:
                            continue
                        text = not_ok_text(c["counts"])
                        px = xpos(c)
                        if np.isfinite(px):
                            marks.add(px, text, color)
                        else:
                            footnotes.append(
                                f"Not placed ({x} unknown): "
                                f"{cell_tools.cell_label(c['first'], knobs)}: {text}"
                            )
            if not cells:
                ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center")
            elif not any(c["summary"].n for c in mine):
                ax.text(0.5, 0.6, "no finished runs", transform=ax.transAxes, ha="center",
                        va="center", color="0.4")
            if cell_tools.is_accuracy(y):
                accuracy_ylim(ax, marks.max_stack())
            _x_axis(ax, cells, x_levels, numeric_x)
            marks.draw(ax)
            facets.label(ax, panel, x_label or plotting.axis_label(x), y)
        handles = plotting.legend_handles(
            {h: facets.colors[h] for h in facets.hues if h is not None},
            cell_tools.knob_label(hue) if hue else "",
            {s: marker_map[s] for s in styles if s is not None} if sty else None,
            styles=None if sty else facets.styles,
        )
        plotting.finish(fig, handles, title, _footnotes(y) + footnotes + list(notes or []))
        return plotting.save(fig, out_pdf)
