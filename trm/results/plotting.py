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

from trm.results import cells as C  # noqa: E402

FACET_SIZE = (4.0, 3.0)  # inches per panel; the figure grows with the number of panels
MAX_COLS = 3
CATEGORY_WIDTH = 1.0  # inches per category on a categorical x axis
PNG_DPI = 200
PALETTE = "colorblind"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", ":", "-."]
NOT_OK_MARKER = "x"

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
    "effective_depth": "Effective depth (layers / supervision step)",
    "total_depth": "Total effective depth (layers × supervision steps)",
    "eval_steps": "Supervision steps at test time (K)",
    "n_supervision": "Supervision steps in training (N_sup)",
    "params": "Parameters (count)",
    "wall_time_s": "Wall time (s)",
    "train_time_s": "Training time (s)",
    "wall_time_s": "Wall time (s)",
    "peak_rss_mb": "Peak memory, RSS (MiB)",
    "peak_gpu_mb": "Peak GPU memory (MiB)",
    "steps": "Optimizer steps",
    "step": "Optimizer step",
    "loss": "Training loss",
    "lr": "Learning rate",
    "train_flops": "Training compute (FLOPs)",
    "compute:flops": "Training compute (FLOPs)",
    "compute:call_equivalents": "Training compute (network calls; backward = 2)",
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
    return 100.0 if C.is_accuracy(column) else 1.0


@contextlib.contextmanager
def style() -> Iterator[None]:
    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), **RC}
    with plt.rc_context(rc):
        yield


def colors(levels: list) -> dict:
    palette = sns.color_palette(PALETTE, max(len(levels), 1))
    return {lvl: palette[i % len(palette)] for i, lvl in enumerate(levels)}


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
) -> list:
    handles = [Line2D([], [], color="none", label=title)] if title else []
    for lvl, col in color_map.items():
        handles.append(Line2D([], [], color=col, marker="o", lw=1.5, label=C.format_value(lvl)))
    for lvl, mk in (marker_map or {}).items():
        handles.append(Line2D([], [], color="0.3", marker=mk, ls="none", label=C.format_value(lvl)))
    if "seed" in extra:
        handles.append(
            Line2D([], [], color="0.4", marker="o", ms=3, alpha=0.5, ls="none", label="one seed")
        )
    if "mean" in extra:
        handles.append(Line2D([], [], color="0.2", marker="o", lw=1.2, label="mean ± 95% CI"))
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
