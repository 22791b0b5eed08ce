"""Cells of a study: the runs that share a setting (task, model, knob values), their
status counts and summaries, and the labels used for them in tables and figures.

A cell with no usable run is still a cell: it is summarised with n = 0 and its status
says why (missing / failed / diverged), so that no gap disappears from a report.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from trm.results import stats

CELL_KEYS = ["task", "model", "sig"]  # sig pins down the resolved spec of a cell
# Identifiers: compared as text, never parsed as numbers (a hex sig can look like 1e10).
TEXT_COLUMNS = {"study", "task", "model", "scale", "sig", "run_dir"}
NOT_KNOBS = {"task", "tasks", "model", "models", "seed", "seeds"}

# Short, conventional names for the knobs that studies vary most (TRM paper notation).
KNOB_LABELS = {
    "model.n_latent_steps": "n",
    "model.n_cycles": "T",
    "model.layers": "layers",
    "model.n_supervision": "N_sup",
    "model.mixer": "mixer",
    "model.share_weights": "shared f",
    "model.grad_steps": "grad",
    "model.latents": "latents",
    "model.halting": "halting",
    "model.hidden_size": "d",
    "train.ema": "EMA",
    "data.n_aug": "n_aug",
    "data.n_train": "n_train",
}


# --------------------------------------------------------------------------------------
# Which runs and knobs belong to a study
# --------------------------------------------------------------------------------------


def study_rows(study: dict, runs: pd.DataFrame) -> pd.DataFrame:
    if "study" not in runs.columns:
        return runs.iloc[0:0]
    rows = runs[runs["study"] == study["name"]].reset_index(drop=True)
    rows.attrs = dict(runs.attrs)
    return rows


def at_scale(study: dict, rows: pd.DataFrame) -> dict:
    """The study as run: its `scales.<scale>` tweak applied when the rows name one scale
    (trm.studies expands studies this way, so models/grid/zip match the manifest)."""
    tweaks = study.get("scales") or {}
    scales = rows["scale"].dropna().unique() if "scale" in rows.columns else []
    if len(scales) == 1 and isinstance(tweaks.get(scales[0]), dict):
        return {**study, **tweaks[scales[0]]}
    return study


def declared_knobs(study: dict) -> list[str]:
    """Dotted keys the study varies: grid and zip axes, and keys set by include cells."""
    keys: list[str] = []
    for section in ("grid", "zip"):
        keys += list((study.get(section) or {}).keys())
    for cell in study.get("include") or []:
        keys += list(cell.keys())
    out = []
    for k in keys:
        if k not in NOT_KNOBS and k not in out:
            out.append(k)
    return out


def varied_knobs(study: dict, rows: pd.DataFrame) -> list[str]:
    """Declared knobs present in the table, then any other knob column that takes more
    than one value among the study's rows (a manifest knob the study did not declare)."""
    knobs = [k for k in declared_knobs(study) if k in rows.columns]
    for col in sorted(rows.columns):
        if "." in col and not col.endswith("_json") and col not in knobs:
            if rows[col].dropna().astype(str).nunique() > 1:
                knobs.append(col)
    return knobs


def shown_knobs(study: dict, rows: pd.DataFrame) -> list[str]:
    """Knobs a table shows: the varied ones, then dotted keys the figure is drawn over
    (e.g. x: model.mixer when the models differ in mixer)."""
    knobs = varied_knobs(study, rows)
    view = study.get("figure") or {}
    for key in ("x", "hue", "style", "col"):
        k = view.get(key)
        if isinstance(k, str) and "." in k and k not in knobs:
            knobs.append(k)
    return knobs


def study_factors(study: dict, knobs: list[str]) -> list[list[str]]:
    """The study's factors, each a list of columns that change together: the model, each
    grid axis or other varied knob on its own, and all zip axes as one factor."""
    zipped = [k for k in (study.get("zip") or {}) if k in knobs]
    factors = [["model"]] + [[k] for k in knobs if k not in zipped]
    if zipped:
        factors.append(zipped)
    return factors


def factor_label(columns: list[str]) -> str:
    return " + ".join("model" if c == "model" else knob_label(c) for c in columns)


# --------------------------------------------------------------------------------------
# Values, ordering and labels
# --------------------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def normalize(value: Any) -> Any:
    """Make 6, 6.0 and '6' compare equal (CSV round trips turn ints into floats)."""
    if is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return int(f) if f.is_integer() else f
    if isinstance(value, str):
        low = value.strip()
        if low in ("True", "true"):
            return True
        if low in ("False", "false"):
            return False
        try:
            f = float(low)
        except ValueError:
            return low
        return int(f) if f.is_integer() else f
    return value


def group_value(column: str, value: Any) -> Any:
    if column in TEXT_COLUMNS:
        return None if is_missing(value) else str(value)
    return normalize(value)


def format_value(value: Any) -> str:
    v = normalize(value)
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def sort_key(value: Any) -> tuple:
    """Total order over mixed knob values: numbers numerically, then text, then blanks."""
    v = normalize(value)
    if v is None:
        return (2, 0, "")
    if isinstance(v, (bool, int, float)):
        return (0, float(v), "")
    return (1, 0, str(v))


def knob_label(key: str) -> str:
    return KNOB_LABELS.get(key, key.split(".")[-1])


def cell_label(cell: dict, knobs: Iterable[str], with_model: bool = True) -> str:
    parts = [str(cell["model"])] if with_model else []
    # A knob the cell leaves at the model's own value is left out of its label.
    parts += [f"{knob_label(k)}={format_value(cell.get(k))}" for k in knobs
              if normalize(cell.get(k)) is not None]
    return ", ".join(parts) or "—"


def model_order(study: dict, rows: pd.DataFrame) -> list[str]:
    declared = [str(m) for m in study.get("models") or []]
    seen = [str(m) for m in rows["model"].dropna().unique()] if "model" in rows else []
    return declared + sorted(m for m in seen if m not in declared)


# --------------------------------------------------------------------------------------
# Status and summaries
# --------------------------------------------------------------------------------------


def status_counts(status: pd.Series) -> dict:
    s = status.fillna("missing")
    return {
        "n_runs": int(len(s)),
        "n_ok": int((s == "ok").sum()),
        "n_diverged": int((s == "diverged").sum()),
        "n_failed": int((s == "failed").sum()),
        "n_missing": int((s == "missing").sum()),
    }


def cell_status(counts: dict) -> str:
    """'ok' when every run finished, 'partial' when some did, else why none did."""
    if counts["n_runs"] == 0 or counts["n_missing"] == counts["n_runs"]:
        return "missing"
    if counts["n_ok"] == counts["n_runs"]:
        return "ok"
    if counts["n_ok"] > 0:
        return "partial"
    worst = max(("diverged", "failed", "missing"), key=lambda k: counts[f"n_{k}"])
    return worst


def status_text(counts: dict) -> str:
    """'5/5 ok', '3/5 ok; 1 diverged, 1 missing', 'missing (0/3)'."""
    total, ok = counts["n_runs"], counts["n_ok"]
    if ok == total and total:
        return f"{ok}/{total} ok"
    bad = [f"{counts[f'n_{k}']} {k}" for k in ("diverged", "failed", "missing") if counts[f"n_{k}"]]
    if ok == 0 and len(bad) == 1:
        return f"{bad[0].split(' ', 1)[1]} ({ok}/{total})"
    return f"{ok}/{total} ok; " + ", ".join(bad)


def is_accuracy(metric: str) -> bool:
    """Accuracies are stored as fractions in [0, 1] and shown in percent."""
    return "accuracy" in metric or metric.startswith("pass@")


def _first_valid(series: pd.Series) -> Any:
    valid = series.dropna()
    return valid.iloc[0] if len(valid) else math.nan


def summarize_groups(
    rows: pd.DataFrame, by: list[str], metrics: list[str], carry: Iterable[str] = ()
) -> pd.DataFrame:
    """One row per group of `by` (blank values form their own group): status counts and,
    per metric, n / mean / sd / CI over the runs with status 'ok'. Columns in `carry`
    take the group's first non-blank value (e.g. knob values, params)."""
    out = []
    if rows.empty:
        cols = by + [
            "n_runs",
            "n_ok",
            "n_diverged",
            "n_failed",
            "n_missing",
            "status",
            "status_text",
        ]
        return pd.DataFrame(columns=cols)
    keys = {c: rows[c].map(lambda v, c=c: group_value(c, v)) for c in by}
    grouped = rows.groupby([keys[c] for c in by], dropna=False, sort=False) if by else [((), rows)]
    for _, group in grouped:
        first = group.iloc[0]
        rec = {c: group_value(c, first[c]) for c in by}
        for c in carry:
            if c in group.columns and c not in rec:
                rec[c] = _first_valid(group[c])
        counts = status_counts(group["status"])
        rec.update(counts, status=cell_status(counts), status_text=status_text(counts))
        ok = group[group["status"] == "ok"]
        for m in metrics:
            values = ok[m] if m in ok.columns else pd.Series(dtype=float)
            rec.update(stats.summarize(pd.to_numeric(values, errors="coerce")).as_dict(f"{m}_"))
        out.append(rec)
    frame = pd.DataFrame(out)
    order = sorted(range(len(frame)), key=lambda i: tuple(sort_key(frame.iloc[i][c]) for c in by))
    return frame.iloc[order].reset_index(drop=True)
