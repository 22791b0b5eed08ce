"""Accuracy by instance difficulty, from the runs of a study.

Every evaluation of a dataset that records difficulty writes, into metrics.json, the exact
accuracy per difficulty bin after each supervision step (`by_difficulty`) and, where each
token has its own difficulty (a maze cell's BFS distance from the start, the round in which
Sudoku singles fix a cell), the token accuracy per cell-difficulty bin (`by_cell_difficulty`);
trm.train.evaluate.difficulty_record describes both. This module turns them into

    frame = long_table(study, runs)          # task, cell, seed, level, bin, step, accuracy, ...
    write_table(study, runs, out_csv)        # that frame as <study>.difficulty.csv
    plot_difficulty(study, runs, out_pdf)    # <study>_difficulty.pdf/.png

The figure has one column per task. Top: accuracy against difficulty at the trained N_sup,
one line per cell (mean over seeds, 95% percentile-bootstrap band). Then, where recorded, the
same per token against cell difficulty. Bottom two rows: the test-time sweep per difficulty
bin (accuracy against supervision steps, one line per bin) for the shallowest and the
deepest cell (total depth = calls per step x N_sup): if more steps at test than trained
lift the hard bins, test-time depth reaches instances that trained depth does not.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from trm.results import cells as cell_tools
from trm.results import plotting
from trm.results.collect import read_metrics
from trm.results.figures import seed_summary

# metrics.json key and accuracy field of each level.
LEVELS = {"example": ("by_difficulty", "exact_accuracy"),
          "cell": ("by_cell_difficulty", "cell_accuracy")}
COLUMNS = ["study", "task", "cell", "model", "sig", "seed", "run_dir", "total_depth", "level",
           "difficulty", "binning", "bin", "lo", "hi", "count", "step", "trained_step",
           "accuracy"]
BIN_CMAP = "viridis"


def _total_depth(row: dict) -> float:
    """Calls of the network per prediction at the trained N_sup (the depth figure's x)."""
    try:
        return float(row.get("effective_depth")) * float(row.get("eval_n_supervision"))
    except (TypeError, ValueError):
        return float("nan")


def long_table(study: dict, runs: pd.DataFrame, root: Path = Path(".")) -> pd.DataFrame:
    """One row per (finished run, level, bin, step) of the study's runs that recorded
    accuracy by difficulty; `trained_step` marks the step the run was evaluated at."""
    rows = cell_tools.study_rows(study, runs)
    if rows.empty or "status" not in rows:
        return pd.DataFrame(columns=COLUMNS)
    study = cell_tools.at_scale(study, rows)
    knobs = cell_tools.shown_knobs(study, rows)
    out = []
    for run in rows[rows["status"] == "ok"].to_dict("records"):
        metrics, _ = read_metrics(Path(root) / str(run["run_dir"]))
        if not metrics:
            continue
        trained = metrics.get("n_supervision_eval")
        base = {"study": study["name"], "task": run.get("task"), "cell": cell_tools.cell_label(run, knobs),
                "model": run.get("model"), "sig": run.get("sig"), "seed": run.get("seed"),
                "run_dir": run["run_dir"], "total_depth": _total_depth(run)}
        for level, (key, field) in LEVELS.items():
            rec = metrics.get(key)
            if not isinstance(rec, dict):
                continue
            for step, accs in enumerate(rec.get(field) or [], start=1):
                for (lo, hi), count, acc in zip(rec["bins"], rec["count"], accs):
                    out.append(base | {
                        "level": level, "difficulty": rec.get("name"),
                        "binning": rec.get("binning"), "bin": _bin_label(lo, hi),
                        "lo": lo, "hi": hi, "count": count, "step": step,
                        "trained_step": step == trained, "accuracy": acc})
    return pd.DataFrame(out, columns=COLUMNS)


def _bin_label(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def write_table(study: dict, runs: pd.DataFrame, out_csv: Path, root: Path = Path(".")) -> Path:
    """The long table as CSV (a header alone when no run recorded difficulty)."""
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    long_table(study, runs, root).to_csv(out_csv, index=False)
    return out_csv


# --------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------


def _mean_band(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    """Mean and 95% bootstrap interval of accuracy over seeds at each x."""
    out = []
    for xv, g in frame.groupby(x, sort=True):
        s = seed_summary(g["accuracy"], (0.0, 1.0))
        out.append({"x": float(xv), "mean": s.mean, "lo": s.ci_low, "hi": s.ci_high})
    return pd.DataFrame(out, columns=["x", "mean", "lo", "hi"])


def _draw(ax, curve: pd.DataFrame, color, **kw) -> None:
    ax.plot(curve["x"], curve["mean"] * 100, color=color, **kw)
    band = curve[np.isfinite(curve["lo"]) & np.isfinite(curve["hi"])]
    if len(band) > 1:
        ax.fill_between(band["x"], band["lo"] * 100, band["hi"] * 100, color=color,
                        alpha=0.15, lw=0)


def _by_difficulty_panel(ax, frame: pd.DataFrame, styles: dict) -> None:
    """Accuracy against bin midpoint at the trained step, one line per cell."""
    at = frame[frame["trained_step"]].assign(x=lambda f: (f["lo"] + f["hi"]) / 2)
    for cell, g in at.groupby("cell", sort=False):
        st = styles[cell]
        _draw(ax, _mean_band(g, "x"), st.color, marker=st.marker, ls=st.ls, lw=1.4, ms=4)
    ax.set_xlabel(str(frame["difficulty"].iloc[0]).replace("_", " "))


def _sweep_panel(ax, frame: pd.DataFrame, cell: str) -> list:
    """Accuracy against supervision steps for one cell, one line per difficulty bin."""
    g = frame[frame["cell"] == cell]
    bins = g[["lo", "hi", "bin"]].drop_duplicates().sort_values(["lo", "hi"])
    colours = plt.get_cmap(BIN_CMAP)(np.linspace(0.0, 0.9, max(len(bins), 1)))
    handles = []
    for colour, b in zip(colours, bins.itertuples()):
        in_bin = g[(g["lo"] == b.lo) & (g["hi"] == b.hi)]
        _draw(ax, _mean_band(in_bin, "step"), colour, marker=".", lw=1.1, ms=4)
        count = int(in_bin["count"].iloc[0])  # the same test split for every seed
        handles.append(Line2D([], [], color=colour, marker=".", label=f"{b.bin} (n={count})"))
    trained = g.loc[g["trained_step"], "step"].unique()
    for k in trained:
        ax.axvline(k, color="0.4", ls=":", lw=0.9)
    ax.set_xlabel("supervision steps at test (dotted: trained N_sup)")
    ax.set_title(f"{cell}: per bin", fontsize=8)
    if len(handles):
        ax.legend(handles=handles, title=str(g["difficulty"].iloc[0]).replace("_", " "),
                  fontsize=6, title_fontsize=6, frameon=False, loc="best")
    return handles


def _extreme_cells(frame: pd.DataFrame) -> list[str]:
    """The shallowest and the deepest cell by total depth (one cell: just it)."""
    depth = frame.groupby("cell", sort=False)["total_depth"].first()
    depth = depth.fillna(np.inf).sort_values(kind="stable")
    cells = list(dict.fromkeys([depth.index[0], depth.index[-1]]))
    return cells


def plot_difficulty(study: dict, runs: pd.DataFrame, out_pdf: Path,
                    root: Path = Path(".")) -> tuple[Path, Path]:
    """The study's accuracy-by-difficulty figure (see the module docstring); a figure with a
    note when no run of the study recorded difficulty, so the file always exists."""
    frame = long_table(study, runs, root)
    tasks = list(dict.fromkeys(frame["task"]))
    has_cell = bool((frame["level"] == "cell").any())
    row_kinds = ["example"] + (["cell"] if has_cell else []) + ["shallow", "deep"]
    with plotting.style():
        if frame.empty:
            fig, ax = plt.subplots(figsize=plotting.FACET_SIZE)
            ax.axis("off")
            ax.text(0.5, 0.5, "No finished run of this study recorded accuracy by difficulty\n"
                    "(the dataset has no difficulty arrays, e.g. ARC or an older build).",
                    ha="center", va="center", fontsize=8)
            plotting.finish(fig, [], f"{study['name']}: accuracy by instance difficulty", [])
            return plotting.save(fig, out_pdf)
        cells = list(dict.fromkeys(frame["cell"]))
        model_of = frame.groupby("cell", sort=False)["model"].first().to_dict()
        styles = plotting.hue_styles(cells, model_of)
        w, h = plotting.FACET_SIZE
        fig, axes = plt.subplots(len(row_kinds), len(tasks), squeeze=False,
                                 figsize=(w * len(tasks), h * len(row_kinds)))
        notes = []
        for j, task in enumerate(tasks):
            in_task = frame[frame["task"] == task]
            for i, kind in enumerate(row_kinds):
                ax = axes[i][j]
                level = "cell" if kind == "cell" else "example"
                part = in_task[in_task["level"] == level]
                if part.empty:
                    ax.axis("off")
                    ax.text(0.5, 0.5, f"{task}: no {level} difficulty", ha="center",
                            va="center", fontsize=7)
                    continue
                if kind in ("example", "cell"):
                    _by_difficulty_panel(ax, part, styles)
                    what = "exact" if kind == "example" else "token"
                    ax.set_ylabel(f"{what} accuracy (%) at trained N_sup")
                    ax.set_title(f"{task}: by {'instance' if kind == 'example' else 'cell'} "
                                 "difficulty", fontsize=8)
                else:
                    extremes = _extreme_cells(part)
                    pick = extremes[0] if kind == "shallow" else extremes[-1]
                    if kind == "deep" and len(extremes) == 1:
                        ax.axis("off")
                        continue
                    _sweep_panel(ax, part, pick)
                    ax.set_ylabel(f"exact accuracy (%), {kind}est cell")
                ax.set_ylim(-3, 103)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps, moves, rounds
            binning = set(in_task["binning"].dropna())
            if "quantile" in binning:
                notes.append(f"{task}: more than 12 distinct values, so quantile bins "
                             "(x = bin midpoint).")
        handles = [Line2D([], [], color=styles[c].color, marker=styles[c].marker,
                          ls=styles[c].ls, label=c) for c in cells]
        notes.insert(0, "Lines: mean over finished seeds, band: 95% percentile-bootstrap "
                        "interval of the seeds. Sweep rows: the shallowest and deepest cell "
                        "by calls per prediction at the trained N_sup.")
        plotting.finish(fig, handles, f"{study['name']}: accuracy by instance difficulty", notes)
        return plotting.save(fig, out_pdf)
