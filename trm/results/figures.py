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
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results import stats
from trm import config
from trm.rundir import TRAIN_LOG
from trm.results.collect import (
    accuracy_by_eval_steps,
    parse_json_column,
    runs_root,
    with_spec_columns,
)
# The figure vocabulary is the one the study files are checked against at planning.
from trm.studies import FIGURE_KEYS, FIGURE_KINDS, VIEW_KEYS
N_BOOT = 2000
FIGURE_INTERVAL = "percentile-bootstrap"
CI_NOTE = (
    "Points: seeds. Markers and bars: mean over finished seeds ± 95% percentile-bootstrap "
    "interval (2,000 resamples of the seeds; within the seeds' range, so within 0-100%; none "
    "for one seed). Lines join only cells that differ in one factor."
)


def seed_summary(values, bounds: tuple[float, float] | None = None) -> stats.Summary:
    """Mean over seeds with a 95% percentile-bootstrap interval of the mean, clipped to bounds.

    Not the tables' t interval: with 2-3 seeds a t interval is wider than the data and runs
    past 0% or 100%, while a percentile bootstrap stays inside the seeds' range (with 2 seeds
    it is their range). Fixed resampling seed, so figures stay byte-identical."""
    x = np.asarray(pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce"),
                   dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return stats.Summary(0, math.nan, math.nan, math.nan, math.nan, "")
    mean = float(x.mean())
    if n == 1:
        return stats.Summary(1, mean, math.nan, math.nan, math.nan, "")
    idx = np.random.default_rng(0).integers(0, n, size=(N_BOOT, n))
    lo, hi = np.percentile(x[idx].mean(axis=1), [2.5, 97.5])
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return stats.Summary(n, mean, float(x.std(ddof=1)), float(lo), float(hi), FIGURE_INTERVAL)


def _bounds(y: str, scale: float) -> tuple[float, float] | None:
    return (0.0, 1.0 * scale) if cell_tools.is_accuracy(y) else None


def _factor_key(value) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return repr(cell_tools.normalize(value))


# Spec keys that differ between runs of one cell or never define a setting.
NOT_FACTORS = {"name", "train.seed", "data.path"}


def cell_factors(first: dict) -> dict:
    """Everything that defines a cell's setting: its resolved spec (blank manifest knobs mean
    the model's default, so the manifest alone under-reports what differs), its dotted
    columns, model and task."""
    spec = parse_json_column(first.get("spec_json")) if first.get("spec_json") else None
    out = {k: v for k, v in (config.flatten(spec) if isinstance(spec, dict) else {}).items()
           if k not in NOT_FACTORS}
    for k, v in first.items():
        if "." in str(k) and not str(k).endswith("_json") and not cell_tools.is_missing(v):
            out.setdefault(k, v)
    out["model"], out["task"] = first.get("model"), first.get("task")
    return out


def split_cells(items: list, first=lambda it: it["first"]) -> list[list]:
    """split_series over every factor of the items' resolved specs."""
    facts = [cell_factors(first(it)) for it in items]
    keys = sorted({k for f in facts for k in f})
    pos = {id(it): i for i, it in enumerate(items)}
    return split_series(items, keys, lambda it, k: facts[pos[id(it)]].get(k))


def split_series(items: list, knobs: list[str], values=lambda item, k: item[k]) -> list[list]:
    """Split items (cells) into series that a line may join: within a series they differ in
    one factor only. Knobs whose values change together across the items (a zip: n and T
    stepped jointly) are one factor. When several factors vary, the series runs along the one
    with the most distinct values and the others are held fixed per series; so in a table of
    unrelated ablations no line joins, say, an EMA cell to a T=3 cell."""
    if len(items) < 2:
        return [items]
    parts: dict[tuple, list[str]] = {}
    for k in knobs:
        keys = [_factor_key(values(it, k)) for it in items]
        if len(set(keys)) < 2:
            continue
        first: dict[str, int] = {}
        part = tuple(first.setdefault(v, len(first)) for v in keys)
        parts.setdefault(part, []).append(k)
    if len(parts) <= 1:
        return [items]
    factors = list(parts.items())
    along = max(range(len(factors)), key=lambda i: (max(factors[i][0]), -i))
    fixed = [k for i, (_, ks) in enumerate(factors) if i != along for k in ks]
    groups: dict[tuple, list] = {}
    for it in items:
        groups.setdefault(tuple(_factor_key(values(it, k)) for k in fixed), []).append(it)
    return list(groups.values())


def _model_of(rows: pd.DataFrame, hue: str | None, levels: list) -> dict | None:
    """level -> model name when each hue level belongs to one model (hue = model or cell)."""
    if not hue or "model" not in rows:
        return None
    if hue == "model":
        return {lvl: str(lvl) for lvl in levels if lvl is not None}
    out = {}
    for lvl in levels:
        models = rows.loc[rows[hue].map(lambda v: cell_tools.group_value(hue, v)) == lvl, "model"]
        models = models.dropna().astype(str).unique()
        if len(models) != 1:
            return None
        out[lvl] = models[0]
    return out


def _footnotes(y: str) -> list[str]:
    return [CI_NOTE] + ([plotting.TIMING_NOTE] if plotting.is_timing(y) else [])


# --------------------------------------------------------------------------------------
# The study's view
# --------------------------------------------------------------------------------------


def validate_view(view: dict, runs: pd.DataFrame) -> dict:
    """Check a `figure:` block. Keys: x, y, hue, style, col (each a runs column or a
    dotted RunSpec key, read from the resolved spec), kind, title."""
    if not isinstance(view, dict):
        raise ValueError(f"figure: expected a mapping, got {view!r}")
    for key in view:
        if key not in FIGURE_KEYS:
            raise ValueError(f"figure: unknown key '{key}' (valid keys: {', '.join(FIGURE_KEYS)})")
    kind = view.get("kind") or "view"
    if kind not in FIGURE_KINDS:
        raise ValueError(f"figure.kind: '{kind}' is not one of {', '.join(FIGURE_KINDS)}")
    if kind == "view":
        for key in ("x", "y"):
            if not view.get(key):
                raise ValueError(f"figure: '{key}' is required")
    known = set(runs.columns) | config.knob_keys() | ({"cell"} if kind != "view" else set())
    for key in VIEW_KEYS:
        column = view.get(key)
        if column is not None and column not in known:
            raise ValueError(
                f"figure.{key}: '{column}' is neither a column of the runs table "
                f"nor a run spec key"
            )
    return {**{k: view.get(k) for k in FIGURE_KEYS}, "kind": kind}


def default_view(study: dict) -> dict:
    knobs = cell_tools.declared_knobs(study)
    return {
        "x": knobs[0] if knobs else "model",
        "y": "exact_accuracy",
        "hue": "model",
        "style": None,
        "col": "task" if len(study.get("tasks") or []) > 1 else None,
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
    kind, y = view["kind"], view["y"] or "exact_accuracy"
    hue, col = view["hue"], view["col"]
    if kind == "depth_scaling":
        return plot_depth_scaling(
            rows, out_pdf, hue=hue or "model", col=col or "task", y=y, title=title, study=study
        )
    if kind == "test_time_depth":
        return plot_test_time_depth(
            rows, out_pdf, hue=hue or "cell", col=col or "task", y=y, title=title
        )
    if kind == "learning_curves":
        return plot_learning_curves(
            rows, out_pdf, y=view["y"] or "loss", hue=hue or "cell", col=col or "task", title=title
        )
    if kind == "compute":
        return plot_accuracy_vs_compute(
            rows, out_pdf, y=y, hue=hue or "model", col=col, style=view["style"], title=title
        )
    return plot_view(rows, view, out_pdf, title=title, study=study)


def _is_numeric(series: pd.Series) -> bool:
    """A numeric axis: every value a number (booleans such as share_weights are categories)."""
    values = series.dropna()
    if values.empty or values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        return False
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _ci_bars(ax, xs, means, lo, hi, color) -> None:
    """95% interval bars where both ends are finite (one seed has none)."""
    ci = np.isfinite(lo) & np.isfinite(hi)
    if ci.any():
        ax.errorbar(np.array(xs)[ci], means[ci], yerr=[means[ci] - lo[ci], hi[ci] - means[ci]],
                    fmt="none", ecolor=color, elinewidth=1, capsize=2.5, zorder=3)


def _levels(rows: pd.DataFrame, column: str | None, study: dict | None) -> list:
    if not column:
        return [None]
    values = {cell_tools.group_value(column, v) for v in rows[column]} if column in rows else set()
    if column == "model" and study:
        order = cell_tools.model_order(study, rows)
        return [m for m in order if m in values] + sorted(
            (v for v in values if v not in order), key=cell_tools.sort_key
        )
    if column == "task" and study:
        order = [str(t) for t in study.get("tasks") or []]
        return [t for t in order if t in values] + sorted(
            (v for v in values if v not in order), key=cell_tools.sort_key
        )
    declared = ((study or {}).get("grid") or {}).get(column) or ((study or {}).get("zip") or {}).get(column)
    if declared:  # the order the study lists a knob's values in (e.g. gradient windows)
        order = [cell_tools.group_value(column, v) for v in declared]
        return [v for v in order if v in values] + sorted(
            (v for v in values if v not in order), key=cell_tools.sort_key
        )
    return sorted(values, key=cell_tools.sort_key)


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
                "summary": seed_summary(yv, _bounds(y, plotting.scale_for(y))),
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


def _not_ok_text(counts: dict) -> str:
    return ", ".join(
        f"{counts[f'n_{k}']} {k}" for k in ("missing", "failed", "diverged") if counts[f"n_{k}"]
    )


def _accuracy_ylim(ax, n_slots: int) -> None:
    """0-100% with room below zero for the stacked 'x' markers of unfinished cells."""
    top = 103.0
    frac = 0.04 + 0.07 * max(n_slots - 1, 0) + 0.04 if n_slots else 0.0
    bottom = min(-3.0, (-1.0 - top * frac) / (1 - frac))
    ax.set_ylim(bottom, top)
    ax.set_yticks([0, 20, 40, 60, 80, 100])


def _set_x_ticks(ax, values: list[float], log: bool) -> None:
    """Log scale for wide ranges; ticks at the values themselves when they are a few
    well-separated integers (knob settings, depths), else matplotlib's own ticks."""
    uniq = sorted({float(v) for v in values if np.isfinite(v)})
    if not uniq:
        return
    if log:
        ax.set_xscale("log", base=2 if max(uniq) / min(uniq) < 1e4 else 10)
        plotting.plain_log_labels(ax.xaxis)
    pos = np.log(uniq) if log else np.asarray(uniq)
    span = pos[-1] - pos[0]
    separated = len(uniq) == 1 or np.min(np.diff(pos)) >= 0.12 * span
    if len(uniq) <= 8 and all(v.is_integer() for v in uniq) and separated:
        ax.set_xticks(uniq, [cell_tools.format_value(v) for v in uniq])
        ax.minorticks_off()


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
    facets = _levels(rows, col, study) if col else [None]
    hues = _levels(rows, hue, study) if hue else [None]
    styles = _levels(rows, sty, study) if sty else [None]
    hue_style = plotting.hue_styles(hues, _model_of(rows, hue, hues)) if hue else {
        None: plotting.SeriesStyle("0.25", "o")}
    color_map = {h: hue_style[h].color for h in hues}
    if sty:  # the style knob takes the marker and line style; colour stays the hue's
        marker_map = {s: plotting.MARKERS[i % len(plotting.MARKERS)] for i, s in enumerate(styles)}
        line_map = {s: plotting.LINESTYLES[i % len(plotting.LINESTYLES)] for i, s in enumerate(styles)}

    x_levels = [] if numeric_x else _x_levels(cells, x, _levels(rows, x, study))
    footnotes = []

    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets), n_categories=len(x_levels))
        for ax, facet in zip(axes, facets):
            mine = [c for c in cells if not col or c[col] == facet]
            marks = plotting.NotOkMarks()
            # Dodge only among the hue levels that share an x position.
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

            for h in hues:
                for s in styles:
                    series = [
                        c for c in mine if (not hue or c[hue] == h) and (not sty or c[sty] == s)
                    ]
                    done = sorted((c for c in series if c["summary"].n > 0), key=lambda c: xpos(c))
                    color = color_map[h]
                    marker = marker_map[s] if sty else hue_style[h].marker
                    ls = line_map[s] if sty else hue_style[h].ls
                    # Lines only join ordered x values, and only cells of one series;
                    # categories get markers alone.
                    for part in split_cells(done):
                        if not part:
                            continue
                        xs = [xpos(c) for c in part]
                        means = np.array([c["summary"].mean for c in part])
                        lo = np.array([c["summary"].ci_low for c in part])
                        hi = np.array([c["summary"].ci_high for c in part])
                        ax.plot(
                            xs,
                            means,
                            color=color,
                            marker=marker,
                            ls=ls if join and numeric_x and len(part) > 1 else "none",
                            lw=1.4,
                            ms=5,
                            zorder=3,
                        )
                        _ci_bars(ax, xs, means, lo, hi, color)
                    if done:
                        for c in done:
                            sx = (
                                [xpos(c, v) for v in c["seed_x"]]
                                if numeric_x
                                else [xpos(c)] * len(c["seed_y"])
                            )
                            ax.scatter(
                                sx,
                                c["seed_y"],
                                s=11,
                                color=color,
                                alpha=0.45,
                                edgecolors="none",
                                zorder=2,
                            )
                    for c in series:
                        if c["counts"]["n_ok"] == c["counts"]["n_runs"]:
                            continue
                        text = _not_ok_text(c["counts"])
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
                ax.text(
                    0.5,
                    0.6,
                    "no finished runs",
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    color="0.4",
                )
            if cell_tools.is_accuracy(y):
                _accuracy_ylim(ax, marks.max_stack())
            if numeric_x:
                xv = [c["x"] for c in cells if c["x"] is not None]
                xv += [v for c in cells for v in c["seed_x"]]
                if xv and np.isfinite(xv).any():
                    _set_x_ticks(ax, xv, plotting.use_log_x(xv))
                ax.margins(x=0.06)
            else:
                plotting.category_ticks(ax, [cell_tools.format_value(v) for v in x_levels])
                if x_levels:
                    ax.set_xlim(-0.6, len(x_levels) - 0.4)
            marks.draw(ax)
            ax.set_xlabel(x_label or plotting.axis_label(x))
            ax.set_ylabel(plotting.axis_label(y))
            if col:
                ax.set_title(f"{cell_tools.knob_label(col)}: {cell_tools.format_value(facet)}")
        handles = plotting.legend_handles(
            {h: color_map[h] for h in hues if h is not None},
            cell_tools.knob_label(hue) if hue else "",
            {s: marker_map[s] for s in styles if s is not None} if sty else None,
            styles=None if sty else hue_style,
        )
        plotting.finish(fig, handles, title, _footnotes(y) + footnotes + list(notes or []))
        return plotting.save(fig, out_pdf)


# --------------------------------------------------------------------------------------
# Standard figures
# --------------------------------------------------------------------------------------


def _cell_labels(rows: pd.DataFrame, knobs: list[str] | None = None) -> pd.Series:
    if knobs is None:
        knobs = [
            c
            for c in sorted(rows.columns)
            if "." in c and not c.endswith("_json") and rows[c].dropna().astype(str).nunique() > 1
        ]
    return pd.Series(
        [cell_tools.cell_label(r, knobs) for r in rows.to_dict("records")], index=rows.index, dtype=object
    )


def _with_hue(rows: pd.DataFrame, hue: str) -> pd.DataFrame:
    rows = rows.copy()
    if hue == "cell":
        rows["cell"] = _cell_labels(rows)
    return rows


def _summary_curve(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean and 95% percentile-bootstrap interval of y at each x over seeds."""
    out = []
    for xv, g in frame.groupby(x, sort=True):
        s = seed_summary(pd.to_numeric(g[y], errors="coerce"), _bounds(y, 1.0))
        out.append({"x": float(xv), "mean": s.mean, "lo": s.ci_low, "hi": s.ci_high, "n": s.n})
    return pd.DataFrame(out, columns=["x", "mean", "lo", "hi", "n"])


def _band(
    ax, curve: pd.DataFrame, color, scale: float, band_alpha: float = 0.13, **line_kw
) -> None:
    ax.plot(curve["x"], curve["mean"] * scale, color=color, **line_kw)
    band = curve[np.isfinite(curve["lo"]) & np.isfinite(curve["hi"])]
    if len(band) > 1:
        ax.fill_between(
            band["x"], band["lo"] * scale, band["hi"] * scale, color=color, alpha=band_alpha, lw=0
        )


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
    rows = _with_hue(runs, hue)
    facets = _levels(rows, col, study)
    hues = _levels(rows, hue, study)
    hue_style = plotting.hue_styles(hues, _model_of(rows, hue, hues))
    color_map = {h: hue_style[h].color for h in hues}

    scale = plotting.scale_for(y)
    long = accuracy_by_eval_steps(rows[rows["status"] == "ok"])
    if len(long):
        long["total_depth"] = pd.to_numeric(long["effective_depth"]) * long["eval_steps"]
    footnotes, all_x = [], []
    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets))
        for ax, facet in zip(axes, facets):
            in_facet = (
                rows[rows[col].map(lambda v: cell_tools.group_value(col, v)) == facet] if col else rows
            )
            marks = plotting.NotOkMarks()
            for h in hues:
                mine = in_facet[in_facet[hue].map(lambda v: cell_tools.group_value(hue, v)) == h]
                color = color_map[h]
                trained = []
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
                        s = seed_summary(pd.to_numeric(ok[y], errors="coerce"), _bounds(y, 1.0))
                        trained.append((x_cell, s, cell.iloc[0].to_dict()))
                        ax.scatter(
                            [x_cell] * len(ok),
                            pd.to_numeric(ok[y]) * scale,
                            s=11,
                            color=color,
                            alpha=0.45,
                            edgecolors="none",
                            zorder=2,
                        )
                        all_x.append(x_cell)
                    if len(long) and len(ok):
                        tt = long[(long["sig"] == sig) & long["run_dir"].isin(ok["run_dir"])]
                        curve = _summary_curve(tt, "total_depth", y)
                        if len(curve):
                            _band(
                                ax,
                                curve,
                                color,
                                scale,
                                band_alpha=0.07,
                                lw=0.9,
                                ls="--",
                                alpha=0.8,
                                zorder=1,
                            )
                            all_x += list(curve["x"])
                    if counts["n_ok"] < counts["n_runs"]:
                        text = _not_ok_text(counts)
                        if np.isfinite(x_cell):
                            marks.add(x_cell, text, color)
                            all_x.append(x_cell)
                        else:
                            footnotes.append(
                                f"Not placed (depth unknown): {cell_tools.format_value(h)}, "
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
                    ax.plot(xs, means, color=color, marker=hue_style[h].marker,
                            ls=hue_style[h].ls if len(part) > 1 else "none", lw=1.6, ms=5,
                            zorder=3)
                    _ci_bars(ax, xs, means, lo, hi, color)
            if cell_tools.is_accuracy(y):
                _accuracy_ylim(ax, marks.max_stack())
            if all_x:
                ax.set_xscale("log", base=2)
                plotting.plain_log_labels(ax.xaxis)
            marks.draw(ax)
            ax.set_xlabel(plotting.axis_label("total_depth"))
            ax.set_ylabel(plotting.axis_label(y))
            if col:
                ax.set_title(f"{cell_tools.knob_label(col)}: {cell_tools.format_value(facet)}")
        handles = plotting.legend_handles({h: color_map[h] for h in hues}, cell_tools.knob_label(hue),
                                   styles=hue_style)
        handles.append(
            Line2D([], [], color="0.3", ls="--", lw=0.9, label="test-time depth (K steps)")
        )
        plotting.finish(fig, handles, title,
                 [CI_NOTE + " Solid: trained depth (K = N_sup)."] + footnotes)
        return plotting.save(fig, out_pdf)


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
    rows = _with_hue(runs, hue)
    facets = _levels(rows, col, None)
    hues = _levels(rows, hue, None)
    hue_style = plotting.hue_styles(hues, _model_of(rows, hue, hues))
    color_map = {h: hue_style[h].color for h in hues}
    scale = plotting.scale_for(y)
    long = accuracy_by_eval_steps(rows[rows["status"] == "ok"])
    footnotes = []
    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets))
        for ax, facet in zip(axes, facets):
            in_facet = (
                rows[rows[col].map(lambda v: cell_tools.group_value(col, v)) == facet] if col else rows
            )
            ks = set()
            marks = plotting.NotOkMarks()
            for h in hues:
                mine = in_facet[in_facet[hue].map(lambda v: cell_tools.group_value(hue, v)) == h]
                if mine.empty:
                    continue
                color = color_map[h]
                tt = (
                    long[long["run_dir"].isin(mine.loc[mine["status"] == "ok", "run_dir"])]
                    if len(long)
                    else long
                )
                if len(tt):
                    _band(
                        ax,
                        _summary_curve(tt, "eval_steps", y),
                        color,
                        scale,
                        lw=1.4,
                        ls=hue_style[h].ls,
                        marker=hue_style[h].marker,
                        ms=3.5,
                        zorder=3,
                    )
                    ax.scatter(
                        tt["eval_steps"],
                        pd.to_numeric(tt[y]) * scale,
                        s=7,
                        color=color,
                        alpha=0.35,
                        edgecolors="none",
                        zorder=2,
                    )
                    ks.update(tt["eval_steps"].tolist())
                counts = cell_tools.status_counts(mine["status"])
                if counts["n_ok"] < counts["n_runs"]:
                    k_train = pd.to_numeric(mine["n_supervision"], errors="coerce").dropna()
                    text = _not_ok_text(counts)
                    if len(k_train):
                        marks.add(float(k_train.iloc[0]), text, color)
                        ks.add(float(k_train.iloc[0]))
                    else:
                        footnotes.append(f"Not placed (N_sup unknown): {cell_tools.format_value(h)}: {text}")
            trained = pd.to_numeric(in_facet["n_supervision"], errors="coerce").dropna().unique()
            for k in trained:
                ax.axvline(k, color="0.35", ls=":", lw=1, zorder=1)
            if len(trained):
                ax.annotate(
                    "trained N_sup",
                    (trained.max(), 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -3),
                    textcoords="offset points",
                    fontsize=6.5,
                    va="top",
                    color="0.35",
                )
            if cell_tools.is_accuracy(y):
                _accuracy_ylim(ax, marks.max_stack())
            if ks:
                _set_x_ticks(ax, sorted(ks), log=min(ks) > 0 and max(ks) / min(ks) >= 4)
            marks.draw(ax)
            ax.set_xlabel(plotting.axis_label("eval_steps"))
            ax.set_ylabel(plotting.axis_label(y))
            if col:
                ax.set_title(f"{cell_tools.knob_label(col)}: {cell_tools.format_value(facet)}")
        handles = plotting.legend_handles(
            {h: color_map[h] for h in hues}, "cell" if hue == "cell" else cell_tools.knob_label(hue),
            styles=hue_style,
        )
        plotting.finish(fig, handles, title, [CI_NOTE] + footnotes)
        return plotting.save(fig, out_pdf)


def read_train_log(path: Path) -> pd.DataFrame:
    """train.jsonl -> one row per logged line; unreadable lines are skipped."""
    records = []
    if Path(path).exists():
        for line in Path(path).read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "step" in rec:
                records.append(rec)
    return pd.DataFrame(records)


def plot_learning_curves(
    runs: pd.DataFrame,
    out_pdf: Path,
    *,
    root: Path | None = None,
    y: str = "loss",
    hue: str = "cell",
    col: str = "task",
    title: str = "Learning curves",
) -> tuple[Path, Path]:
    """y from train.jsonl vs optimizer step: one thin line per seed, the seed mean thick
    (over steps every seed logged). Diverged runs end in an 'x'; runs without a log are
    listed under the figure."""
    root = runs_root(runs, root)
    rows = _with_hue(runs, hue)
    facets = _levels(rows, col, None)
    hues = _levels(rows, hue, None)
    hue_style = plotting.hue_styles(hues, _model_of(rows, hue, hues))
    color_map = {h: hue_style[h].color for h in hues}
    scale = plotting.scale_for(y)
    footnotes, positive = [], True
    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets), sharey=False)
        for ax, facet in zip(axes, facets):
            in_facet = (
                rows[rows[col].map(lambda v: cell_tools.group_value(col, v)) == facet] if col else rows
            )
            for h in hues:
                mine = in_facet[in_facet[hue].map(lambda v: cell_tools.group_value(hue, v)) == h]
                color = color_map[h]
                logs, no_log = [], []
                for run in mine.to_dict("records"):
                    log = read_train_log(root / str(run["run_dir"]) / TRAIN_LOG)
                    if log.empty or y not in log.columns:
                        no_log.append(f"{cell_tools.format_value(run['seed'])} ({run['status']})")
                        continue
                    log = log[["step", y]].apply(pd.to_numeric, errors="coerce")
                    finite = log[np.isfinite(log[y])]
                    positive &= bool((finite[y] > 0).all())
                    ax.plot(
                        finite["step"], finite[y] * scale, color=color, lw=0.7, alpha=0.45,
                        ls=hue_style[h].ls, zorder=2
                    )
                    if run["status"] != "ok" and len(finite):
                        last = finite.iloc[-1]
                        ax.plot(
                            [last["step"]],
                            [last[y] * scale],
                            plotting.NOT_OK_MARKER,
                            color=color,
                            ms=6,
                            mew=1.6,
                            zorder=4,
                        )
                        ax.annotate(
                            run["status"],
                            (last["step"], last[y] * scale),
                            xytext=(4, 0),
                            textcoords="offset points",
                            fontsize=6,
                            color=color,
                            va="center",
                        )
                    if run["status"] == "ok":
                        logs.append(finite.set_index("step")[y])
                if no_log:
                    footnotes.append(
                        f"No {TRAIN_LOG} with '{y}': {cell_tools.format_value(h)}, "
                        f"seeds {', '.join(no_log)}"
                    )
                if logs:
                    common = pd.concat(logs, axis=1, join="inner").mean(axis=1)
                    ax.plot(common.index, common.values * scale, color=color, lw=1.6,
                            ls=hue_style[h].ls, zorder=3)
            if y == "loss" and positive:
                ax.set_yscale("log")
                plotting.plain_log_labels(ax.yaxis)
            ax.set_xlabel(plotting.axis_label("step"))
            ax.set_ylabel(plotting.axis_label(y))
            if col:
                ax.set_title(f"{cell_tools.knob_label(col)}: {cell_tools.format_value(facet)}")
        handles = plotting.legend_handles(
            {h: color_map[h] for h in hues},
            "cell" if hue == "cell" else cell_tools.knob_label(hue),
            extra=("not_ok",),
            styles=hue_style,
        )
        handles.insert(-1, Line2D([], [], color="0.3", lw=0.7, alpha=0.5, label="one seed"))
        handles.insert(-1, Line2D([], [], color="0.2", lw=1.6, label="mean over seeds"))
        plotting.finish(fig, handles, title, footnotes)
        return plotting.save(fig, out_pdf)


def with_common_compute(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Put every run on one compute unit: FLOPs when every finished run has them (counted
    from the spec by trm.results.collect), otherwise network-call equivalents for all (never
    a mix on one axis)."""
    rows = runs.copy()
    ok = rows[rows["status"] == "ok"]
    if len(ok) and (ok["compute_unit"] == "flops").all():
        return rows, "flops"
    fwd = pd.to_numeric(rows["forward_calls_per_step"], errors="coerce")
    grad = pd.to_numeric(rows["grad_calls_per_step"], errors="coerce")
    rows["compute"] = (fwd + 2.0 * grad) * pd.to_numeric(rows["steps"], errors="coerce")
    return rows, "call_equivalents"


# Two cells count as "at matched compute" when their counts agree to this relative tolerance
# (FLOP counts are exact integers, so equal settings agree exactly; 1% absorbs rounding).
MATCHED_COMPUTE_RTOL = 0.01


def matched_compute_notes(rows: pd.DataFrame, column: str, what: str,
                          facet: str | None = "task") -> list[str]:
    """One footnote per group of distinct cells (finished runs) whose `column` (training or
    test compute) is equal, per facet: the comparisons this figure makes at matched compute.
    Cells are named by model and the knobs that vary among the rows."""
    if column not in rows:
        return []
    ok = rows[(rows["status"] == "ok") & pd.to_numeric(rows[column], errors="coerce").notna()]
    if ok.empty:
        return []
    knobs = [k for k in sorted(c for c in ok.columns if "." in c and not c.endswith("_json"))
             if ok[k].dropna().astype(str).nunique() > 1]
    notes = []
    facets = ok.groupby(facet, sort=True) if facet and facet in ok else [(None, ok)]
    for level, part in facets:
        cells = part.drop_duplicates(subset=[c for c in ("model", "sig") if c in part])
        values = pd.to_numeric(cells[column], errors="coerce").to_numpy(dtype=float)
        order = np.argsort(values, kind="stable")
        group: list[int] = []
        for i in list(order) + [None]:
            if i is not None and group and abs(values[i] - values[group[0]]) <= (
                    MATCHED_COMPUTE_RTOL * values[group[0]]):
                group.append(i)
                continue
            if len(group) > 1:
                labels = [cell_tools.cell_label(cells.iloc[j].to_dict(), knobs) for j in group]
                where = f"{cell_tools.format_value(level)}: " if level is not None else ""
                notes.append(f"Matched {what} ({where}{values[group[0]]:.3g} FLOPs): "
                             + "; ".join(labels))
            group = [] if i is None else [i]
    return notes


def plot_accuracy_vs_compute(
    runs: pd.DataFrame,
    out_pdf: Path,
    *,
    y: str = "exact_accuracy",
    hue: str = "model",
    col: str | None = "task",
    style: str | None = None,
    title: str = "Accuracy vs training compute",
) -> tuple[Path, Path]:
    rows, unit = with_common_compute(runs)
    view = {"x": "compute", "y": y, "hue": hue, "style": style, "col": col}
    # Which cells sit at equal training or test compute: the fair comparisons in this figure,
    # said in words (points of equal x in different colours are easy to miss).
    notes = []
    if unit == "flops":
        notes += matched_compute_notes(rows, "compute", "training compute", col)
        notes += matched_compute_notes(rows, "test_flops_per_puzzle",
                                       "test compute per puzzle", col)
    else:
        notes.append("Compute in network calls: FLOPs were not available for every finished run.")
    # No lines: the cells of one model here come from different ablations (depth, gradient
    # window, weight sharing...), and two one-factor series of one model drawn in one style
    # would read as a single curve through unrelated cells.
    return plot_view(rows, view, out_pdf, title=title, x_label=plotting.axis_label("compute", unit),
                     join=False, notes=notes)
