"""Kind learning_curves: a logged training quantity (loss by default) against optimizer step,
read from each run's train.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results.collect import runs_root
from trm.results.figures.facets import Facets, with_hue
from trm.rundir import TRAIN_LOG


def from_view(rows: pd.DataFrame, view: dict, out_pdf: Path, *, title: str,
              study: dict | None) -> tuple[Path, Path]:
    """A study's figure of this kind; y, hue and col default to loss, cell, task."""
    return plot_learning_curves(rows, out_pdf, y=view["y"] or "loss", hue=view["hue"] or "cell",
                                col=view["col"] or "task", title=title)


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
    facets = Facets(with_hue(runs, hue), hue=hue, col=col)
    footnotes, positive = [], True
    with plotting.style():
        fig, axes = plotting.facet_grid(len(facets.panels), sharey=False)
        for ax, panel, in_panel in facets.each_panel(axes):
            for h, mine in facets.each_hue(in_panel):
                all_positive, no_log = _draw_level(ax, mine, root, y, facets.styles[h])
                positive &= all_positive
                if no_log:
                    footnotes.append(
                        f"No {TRAIN_LOG} with '{y}': {cell_tools.format_value(h)}, "
                        f"seeds {', '.join(no_log)}"
                    )
            if y == "loss" and positive:
                ax.set_yscale("log")
                plotting.plain_log_labels(ax.yaxis)
            facets.label(ax, panel, plotting.axis_label("step"), y)
        handles = facets.legend(extra=("not_ok",))
        handles.insert(-1, Line2D([], [], color="0.3", lw=0.7, alpha=0.5, label="one seed"))
        handles.insert(-1, Line2D([], [], color="0.2", lw=1.6, label="mean over seeds"))
        plotting.finish(fig, handles, title, footnotes)
        return plotting.save(fig, out_pdf)


def _draw_level(ax, mine: pd.DataFrame, root: Path, y: str,
                style: plotting.SeriesStyle) -> tuple[bool, list[str]]:
    """One hue level in one panel: a thin line per run (an 'x' with its status at the end of a
    run that did not finish), the mean of the finished runs thick. Returns whether every value
    drawn is positive, and the runs without a log of y."""
    color, scale = style.color, plotting.scale_for(y)
    logs, no_log, positive = [], [], True
    for run in mine.to_dict("records"):
        log = read_train_log(root / str(run["run_dir"]) / TRAIN_LOG)
        if log.empty or y not in log.columns:
            no_log.append(f"{cell_tools.format_value(run['seed'])} ({run['status']})")
            continue
        log = log[["step", y]].apply(pd.to_numeric, errors="coerce")
        finite = log[np.isfinite(log[y])]
        positive &= bool((finite[y] > 0).all())
        ax.plot(finite["step"], finite[y] * scale, color=color, lw=0.7, alpha=0.45,
                ls=style.ls, zorder=2)
        if run["status"] != "ok" and len(finite):
            last = finite.iloc[-1]
            ax.plot([last["step"]], [last[y] * scale], plotting.NOT_OK_MARKER, color=color,
                    ms=6, mew=1.6, zorder=4)
            ax.annotate(run["status"], (last["step"], last[y] * scale), xytext=(4, 0),
                        textcoords="offset points", fontsize=6, color=color, va="center")
        if run["status"] == "ok":
            logs.append(finite.set_index("step")[y])
    if logs:
        common = pd.concat(logs, axis=1, join="inner").mean(axis=1)
        ax.plot(common.index, common.values * scale, color=color, lw=1.6, ls=style.ls, zorder=3)
    return positive, no_log
