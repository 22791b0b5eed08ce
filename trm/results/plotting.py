"""Shared plotting pieces: style, colours, axis labels with units, markers for runs that
did not finish, and byte-deterministic saving to PDF + PNG.

Determinism: the font is matplotlib's bundled DejaVu Sans (not whatever Arial a machine
has), TrueType fonts are embedded (pdf.fonttype 42, needed by many venues anyway), and
the PDF carries no creation date, so the bytes do not depend on the clock or on
SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from trm.results import cells as cell_tools  # noqa: E402

FACET_SIZE = (4.0, 3.0)  # inches per panel; the figure grows with the number of panels
MAX_COLS = 3
CATEGORY_WIDTH = 1.0  # inches per category on a categorical x axis
PNG_DPI = 200
PALETTE = "colorblind"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (8, 2))]
NOT_OK_MARKER = "x"

# One colour and one marker per model name, the same in every figure and in the report: the
# i-th name of the sorted configs/models/*.yaml gets colour i and marker i. A per-figure palette
# would give a model whatever colour its position in that figure's legend happens to pick (the
# same blue for hrm in one figure and trm_mlp in the next), and cycles after 10 levels.
MODELS_DIR = Path(__file__).resolve().parents[2] / "configs" / "models"
MODEL_COLOURS = [
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494",
    "#ece133", "#56b4e9", "#000000", "#6b3fa0", "#7a8c00", "#8b0000", "#1b4f72", "#b8860b",
    "#e7298a", "#2ca25f", "#8c6d31", "#525252",
]
MODEL_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h", "d", "H", "8", "1",
                 "2", "3", "4", "+"]
# Models not in configs/models (e.g. constructed examples), by their rank among such names.
EXTRA_COLOURS = ["#3d3d3d", "#44aa99", "#882255", "#999933", "#117733", "#aa4499"]
EXTRA_MARKERS = ["o", "s", "^", "D", "v", "P"]
# Hue levels that are knob values, not models: a sequential palette, so they do not read as
# model colours.
KNOB_PALETTE = "viridis"

RC = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.hashsalt": "trm-bench",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
}

# Axis labels with units for the columns figures usually show.
AXIS_LABELS = {
    "exact_accuracy": "Exact accuracy (%)",
    "cell_accuracy": "Cell accuracy (%)",
    "effective_depth": "Effective depth = T·(n+1)·layers (per supervision step)",
    "total_depth": "Total effective depth = T·(n+1)·layers·K (K supervision steps)",
    "eval_steps": "Supervision steps at test time (K)",
    "n_supervision": "Supervision steps in training (N_sup)",
    "params": "Parameters (count)",
    "wall_time_s": "Wall time (s), one measurement per run",
    "train_time_s": "Training time (s), one measurement per run",
    "peak_rss_mb": "Peak memory, RSS (MiB)",
    "peak_gpu_mb": "Peak GPU memory (MiB)",
    "steps": "Optimizer steps",
    "step": "Optimizer step",
    "loss": "Training loss",
    "lr": "Learning rate",
    "train_flops": "Training compute (FLOPs)",
    "compute:flops": "Training compute (FLOPs)",
    # Two short lines: the panels of a figure sit side by side and share no x label.
    "compute:call_equivalents": ("Training compute (network calls)\n"
                                 "= steps × (forward + 2 × with gradient)"),
    "model": "Model (config name)",
    "task": "Task",
    "model.mixer": "Token mixer",
    "model.share_weights": "One network for z and y updates (shared f)",
    "model.grad_steps": "Network calls with gradient",
    "model.halting": "Halting",
    "model.latents": "Latent features",
    "model.arch": "Architecture",
    "train.ema": "EMA of weights",
    "model.n_latent_steps": "Latent steps per cycle (n)",
    "model.n_cycles": "Cycles per supervision step (T)",
    "model.layers": "Layers per network",
    "model.n_supervision": "Supervision steps (N_sup)",
    "model.hidden_size": "Hidden size (d)",
    "data.n_train": "Training puzzles (count)",
    "data.n_aug": "Augmentations per puzzle (count)",
}


def axis_label(column: str, unit: str = "") -> str:
    key = f"{column}:{unit}" if unit else column
    return AXIS_LABELS.get(key, AXIS_LABELS.get(column, column))


def scale_for(column: str) -> float:
    """Accuracies are fractions in the runs table and percent on axes."""
    return 100.0 if cell_tools.is_accuracy(column) else 1.0


@contextlib.contextmanager
def style() -> Iterator[None]:
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), **RC}
    with plt.rc_context(rc):
        yield


TIMING_COLUMNS = {"wall_time_s", "train_time_s"}
TIMING_NOTE = ("Timings: one wall-clock measurement per run (shared machine), not a benchmark "
               "median; benchmarks/bench_step.py measures medians.")


def is_timing(column: str | None) -> bool:
    return bool(column) and (column in TIMING_COLUMNS or str(column).endswith("_time_s"))


@dataclass(frozen=True)
class SeriesStyle:
    color: tuple | str
    marker: str
    ls: object = "-"


@lru_cache(maxsize=None)
def model_names(models_dir: Path = MODELS_DIR) -> tuple[str, ...]:
    """The model config names, sorted: the fixed order that assigns colours and markers."""
    return tuple(sorted(p.stem for p in Path(models_dir).glob("*.yaml")))


def model_styles(models: Iterable[str]) -> dict[str, SeriesStyle]:
    """The fixed colour and marker of each model name. Names outside configs/models get the
    EXTRA_* styles by their sorted rank among such names here, so they never take a config
    model's colour."""
    known = model_names()
    if len(known) > len(MODEL_COLOURS):
        raise ValueError(f"{len(known)} model configs but only {len(MODEL_COLOURS)} fixed "
                         "colours: add colours to plotting.MODEL_COLOURS")
    models = [str(m) for m in dict.fromkeys(models)]
    unknown = sorted(m for m in models if m not in known)
    out = {}
    for m in models:
        if m in known:
            i = known.index(m)
            out[m] = SeriesStyle(MODEL_COLOURS[i], MODEL_MARKERS[i])
        else:
            j = unknown.index(m)
            out[m] = SeriesStyle(EXTRA_COLOURS[j % len(EXTRA_COLOURS)],
                                 EXTRA_MARKERS[j % len(EXTRA_MARKERS)],
                                 "-" if j < len(EXTRA_COLOURS) else "--")
    return out


def hue_styles(levels: list, model_of: dict | None = None) -> dict:
    """Colour, marker and line style per hue level.

    model_of maps a level to its model name when every level belongs to one model (hue =
    model, or hue = cell): the level then takes its model's fixed colour and marker, and the
    cells of one model differ by line style. Otherwise (a knob's values) a sequential palette."""
    levels = list(levels)
    if model_of is not None and all(lvl in model_of for lvl in levels):
        base = model_styles(model_of[lvl] for lvl in levels)
        rank: dict[str, int] = {}
        out = {}
        for lvl in levels:
            m = str(model_of[lvl])
            k = rank.get(m, 0)
            rank[m] = k + 1
            out[lvl] = SeriesStyle(base[m].color, base[m].marker, LINESTYLES[k % len(LINESTYLES)])
        return out
    palette = sns.color_palette(KNOB_PALETTE, max(len(levels), 1))
    return {lvl: SeriesStyle(palette[i], MARKERS[i % len(MARKERS)]) for i, lvl in enumerate(levels)}


def colors(levels: list, model_of: dict | None = None) -> dict:
    return {lvl: st.color for lvl, st in hue_styles(levels, model_of).items()}


def facet_grid(n_panels: int, sharey: bool = True, n_categories: int = 0):
    """Figure with one panel per facet (at least one), wrapped at MAX_COLS. Panels widen
    with the number of categories on a categorical x axis so labels keep their room."""
    n = max(n_panels, 1)
    ncols = min(n, MAX_COLS)
    nrows = math.ceil(n / ncols)
    width = max(FACET_SIZE[0], CATEGORY_WIDTH * n_categories)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, FACET_SIZE[1] * nrows), squeeze=False, sharey=sharey
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def category_ticks(ax, labels: list[str]) -> None:
    """Tick labels for a categorical axis, slanted when they would collide."""
    ax.set_xticks(range(len(labels)), labels)
    longest = max((max(len(part) for part in lbl.split("\n")) for lbl in labels), default=0)
    if len(labels) > 3 and longest > 8:
        plt.setp(ax.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor")


def use_log_x(values: Iterable[float]) -> bool:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    return len(v) > 1 and v.min() > 0 and v.max() / v.min() >= 10


class NotOkMarks:
    """'x' marks for cells without (all) finished runs, drawn just above the bottom of the
    axes at the cell's x once the axis limits are final: marks at the same x stack
    upwards, and their labels flip to the left near the right edge."""

    def __init__(self) -> None:
        self.items: list[tuple[float, str, object]] = []

    def add(self, x: float, text: str, color) -> None:
        self.items.append((float(x), text, color))

    def max_stack(self) -> int:
        counts: dict[float, int] = {}
        for x, _, _ in self.items:
            counts[round(x, 9)] = counts.get(round(x, 9), 0) + 1
        return max(counts.values(), default=0)

    def draw(self, ax) -> None:
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        renderer = ax.figure.canvas.get_renderer()
        right_edge = ax.get_window_extent(renderer).x1
        stacked: dict[float, int] = {}
        for x, text, color in self.items:
            slot = stacked.get(round(x, 9), 0)
            stacked[round(x, 9)] = slot + 1
            y = 0.04 + 0.07 * slot
            ax.plot(
                [x],
                [y],
                NOT_OK_MARKER,
                color=color,
                transform=trans,
                ms=6,
                mew=1.6,
                clip_on=False,
                zorder=5,
            )
            label = ax.annotate(
                text,
                (x, y),
                xycoords=trans,
                xytext=(5, 0),
                textcoords="offset points",
                fontsize=6,
                va="center",
                ha="left",
                color=color,
                zorder=5,
            )
            # A label that would run past the right edge goes to the left of its mark.
            if label.get_window_extent(renderer).x1 > right_edge:
                label.xyann = (-5, 0)
                label.set_horizontalalignment("right")


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log ticks to label (minor ones too on short ranges),
    written as plain numbers."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def plain_log_labels(axis) -> None:
    """Log axes labelled 0.3, 1, 2 rather than 3x10^-1."""
    base = axis.get_transform().base
    axis.set_major_formatter(_PlainLogFormatter(base=base))
    axis.set_minor_formatter(
        _PlainLogFormatter(base=base, labelOnlyBase=False, minor_thresholds=(2, 0.5))
    )


def legend_handles(
    color_map: dict,
    title: str,
    marker_map: dict | None = None,
    extra: Iterable[str] = ("seed", "mean", "not_ok"),
    styles: dict | None = None,
) -> list:
    """styles (level -> SeriesStyle) gives each level its marker and line style too."""
    handles = [Line2D([], [], color="none", label=title)] if title else []
    for lvl, col in color_map.items():
        st = (styles or {}).get(lvl)
        handles.append(Line2D([], [], color=col, marker=st.marker if st else "o",
                              ls=st.ls if st else "-", lw=1.5, label=cell_tools.format_value(lvl)))
    for lvl, mk in (marker_map or {}).items():
        handles.append(Line2D([], [], color="0.3", marker=mk, ls="none", label=cell_tools.format_value(lvl)))
    if "seed" in extra:
        handles.append(
            Line2D([], [], color="0.4", marker="o", ms=3, alpha=0.5, ls="none", label="one seed")
        )
    if "mean" in extra:
        handles.append(Line2D([], [], color="0.2", marker="o", lw=1.2,
                              label="mean ± 95% bootstrap interval"))
    if "not_ok" in extra:
        handles.append(
            Line2D(
                [],
                [],
                color="0.2",
                marker=NOT_OK_MARKER,
                ls="none",
                mew=1.6,
                label="missing / failed / diverged",
            )
        )
    return handles


def finish(fig, handles: list, title: str, footnotes: list[str]) -> None:
    if handles:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if footnotes:
        fig.text(0.0, -0.02, "\n".join(footnotes), fontsize=6.5, va="top", ha="left", wrap=False)


def save(fig, out_pdf: Path) -> tuple[Path, Path]:
    """Write <out>.pdf and <out>.png with fixed metadata; returns both paths."""
    out_pdf = Path(out_pdf)
    out_pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf = out_pdf.with_suffix(".pdf")
    png = out_pdf.with_suffix(".png")
    fig.savefig(
        pdf, format="pdf", bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None}
    )
    fig.savefig(png, format="png", dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return pdf, png
