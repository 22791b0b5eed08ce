"""What every figure kind shares: the seed interval, which cells a line may join, and the
small pieces of axis drawing (interval bars, bands, the 0-100% axis, ticks at knob values)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from trm import config
from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results import stats
from trm.results.collect import parse_json_column

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


def bounds(y: str, scale: float) -> tuple[float, float] | None:
    """Where an interval of y may reach: 0-100% for accuracies, anywhere otherwise."""
    return (0.0, 1.0 * scale) if cell_tools.is_accuracy(y) else None


def summary_curve(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Mean and 95% percentile-bootstrap interval of y at each x over seeds."""
    out = []
    for xv, g in frame.groupby(x, sort=True):
        s = seed_summary(pd.to_numeric(g[y], errors="coerce"), bounds(y, 1.0))
        out.append({"x": float(xv), "mean": s.mean, "lo": s.ci_low, "hi": s.ci_high, "n": s.n})
    return pd.DataFrame(out, columns=["x", "mean", "lo", "hi", "n"])


# --------------------------------------------------------------------------------------
# Which cells a line may join
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Axis pieces
# --------------------------------------------------------------------------------------


def not_ok_text(counts: dict) -> str:
    return ", ".join(
        f"{counts[f'n_{k}']} {k}" for k in ("missing", "failed", "diverged") if counts[f"n_{k}"]
    )


def ci_bars(ax, xs, means, lo, hi, color) -> None:
    """95% interval bars where both ends are finite (one seed has none)."""
    ci = np.isfinite(lo) & np.isfinite(hi)
    if ci.any():
        ax.errorbar(np.array(xs)[ci], means[ci], yerr=[means[ci] - lo[ci], hi[ci] - means[ci]],
                    fmt="none", ecolor=color, elinewidth=1, capsize=2.5, zorder=3)


def band(ax, curve: pd.DataFrame, color, scale: float, band_alpha: float = 0.13,
         **line_kw) -> None:
    """A summary_curve: its mean as a line, its interval shaded where it has two ends."""
    ax.plot(curve["x"], curve["mean"] * scale, color=color, **line_kw)
    shaded = curve[np.isfinite(curve["lo"]) & np.isfinite(curve["hi"])]
    if len(shaded) > 1:
        ax.fill_between(shaded["x"], shaded["lo"] * scale, shaded["hi"] * scale, color=color,
                        alpha=band_alpha, lw=0)


def accuracy_ylim(ax, n_slots: int) -> None:
    """0-100% with room below zero for the stacked 'x' markers of unfinished cells."""
    top = 103.0
    frac = 0.04 + 0.07 * max(n_slots - 1, 0) + 0.04 if n_slots else 0.0
    bottom = min(-3.0, (-1.0 - top * frac) / (1 - frac))
    ax.set_ylim(bottom, top)
    ax.set_yticks([0, 20, 40, 60, 80, 100])


def set_x_ticks(ax, values: list[float], log: bool) -> None:
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
