"""Kind compute: accuracy against training compute (FLOPs, or network calls when FLOPs are
not known for every run), with the cells at matched compute named under the figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results.figures.view import plot_view


def from_view(rows: pd.DataFrame, view: dict, out_pdf: Path, *, title: str,
              study: dict | None) -> tuple[Path, Path]:
    """A study's figure of this kind; hue defaults to model, col and style to none."""
    return plot_accuracy_vs_compute(rows, out_pdf, y=view["y"] or "exact_accuracy",
                                    hue=view["hue"] or "model", col=view["col"],
                                    style=view["style"], title=title)


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
    """A view with x = training compute in one unit for all runs (with_common_compute): cells
    as points with intervals, never joined, and notes naming the cells at matched compute."""
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
