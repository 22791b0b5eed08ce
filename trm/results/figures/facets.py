"""The layout every figure kind shares: one panel per level of `col`, and in each panel one
series per level of `hue`, each with its fixed colour, marker and line style (a level that
belongs to one model takes that model's colour and marker; plotting.hue_styles)."""

from __future__ import annotations

import pandas as pd

from trm.results import cells as cell_tools
from trm.results import plotting


def levels(rows: pd.DataFrame, column: str | None, study: dict | None) -> list:
    """The values of a column in the order a figure shows them: models and tasks as the study
    lists them, a knob's values as its grid or zip lists them, then the rest by value."""
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


def model_of(rows: pd.DataFrame, hue: str | None, levels: list) -> dict | None:
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


def cell_labels(rows: pd.DataFrame, knobs: list[str] | None = None) -> pd.Series:
    """Each row's cell as model and the knobs that vary among the rows (or the given knobs)."""
    if knobs is None:
        knobs = [
            c
            for c in sorted(rows.columns)
            if "." in c and not c.endswith("_json") and rows[c].dropna().astype(str).nunique() > 1
        ]
    return pd.Series(
        [cell_tools.cell_label(r, knobs) for r in rows.to_dict("records")], index=rows.index, dtype=object
    )


def with_hue(rows: pd.DataFrame, hue: str) -> pd.DataFrame:
    """A copy of the rows; with hue 'cell', a 'cell' column naming each row's cell."""
    rows = rows.copy()
    if hue == "cell":
        rows["cell"] = cell_labels(rows)
    return rows


class Facets:
    """The panels (levels of col) and series (levels of hue) of one figure over `rows`.

    A kind draws with:

        with plotting.style():
            fig, axes = plotting.facet_grid(len(facets.panels))
            for ax, panel, in_panel in facets.each_panel(axes):
                for h, mine in facets.each_hue(in_panel):
                    ...  # draw mine in facets.colors[h], facets.styles[h]
                facets.label(ax, panel, x_label, y)
            plotting.finish(fig, facets.legend(), title, notes)
    """

    def __init__(self, rows: pd.DataFrame, *, hue: str | None, col: str | None,
                 study: dict | None = None):
        self.rows, self.hue, self.col = rows, hue, col
        self.panels = levels(rows, col, study)
        self.hues = levels(rows, hue, study)
        # Without a hue every point is one grey series.
        self.styles = plotting.hue_styles(self.hues, model_of(rows, hue, self.hues)) if hue else {
            None: plotting.SeriesStyle("0.25", "o")}
        self.colors = {h: self.styles[h].color for h in self.hues}

    @staticmethod
    def _where(rows: pd.DataFrame, column: str | None, level) -> pd.DataFrame:
        if not column:
            return rows
        return rows[rows[column].map(lambda v: cell_tools.group_value(column, v)) == level]

    def each_panel(self, axes):
        """(axis, col level, the rows of that panel) for each panel."""
        for ax, panel in zip(axes, self.panels):
            yield ax, panel, self._where(self.rows, self.col, panel)

    def each_hue(self, rows: pd.DataFrame):
        """(hue level, its rows among `rows`) for each hue level, in legend order."""
        for h in self.hues:
            yield h, self._where(rows, self.hue, h)

    def label(self, ax, panel, x_label: str, y: str) -> None:
        """Axis labels, and the panel's col level as its title."""
        ax.set_xlabel(x_label)
        ax.set_ylabel(plotting.axis_label(y))
        if self.col:
            ax.set_title(f"{cell_tools.knob_label(self.col)}: {cell_tools.format_value(panel)}")

    def legend(self, **kw) -> list:
        """Legend handles: the hue's name, then each hue level in its colour and style."""
        return plotting.legend_handles({h: self.colors[h] for h in self.hues},
                                       cell_tools.knob_label(self.hue), styles=self.styles, **kw)
