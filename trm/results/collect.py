"""Collect every run of the manifest into one tidy table (one row per study x run).

The runs table (results/tables/runs.csv) is the source of truth for reporting: summary
tables, tests, reference comparisons and figures are all derived from it. A run without a
metrics.json is kept with status "missing" so that gaps stay visible downstream.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trm import config
from trm import rundir
# The runs table's columns are defined with the studies, which check figures against them.
from trm.studies.schema import (COMPUTED_COLUMNS, METRIC_COLUMNS, RUN_ID_COLUMNS,
                                RUN_JSON_COLUMNS, RUN_STATUS_COLUMNS)

# Manifest columns that are properties of a run rather than knobs.
DERIVED_COLUMNS = {"effective_depth", "params"}

# Identifiers kept as text: a hex sig such as "1234e56789" must not become a float.
TEXT_COLUMNS = ["study", "task", "model", "scale", "sig", "run_dir"]

STATUSES = ("ok", "diverged", "failed", "missing")

# Facts of the run that are not results: they live in run_info.json (metrics.json stays a
# pure function of spec and data, so a resumed run writes the same bytes).
RUN_INFO_FIELDS = ("wall_time_s", "train_time_s", "peak_rss_mb", "peak_gpu_mb")
# metrics.json fields handled separately (never copied as extra columns).
_STRUCTURED = {
    "status",
    "task",
    "model",
    "sig",
    "seed",
    "per_step",
    "test_time",
    "data_provenance",
    "spec",
    "n_supervision_eval",
}

# A backward pass costs about two forward passes; used only when FLOPs cannot be counted.
BACKWARD_COST = 2.0
# FLOP fields counted from the spec (trm.model.flops) when metrics.json has none.
FLOP_FIELDS = ("train_flops", "test_flops_per_puzzle")


def knob_columns(frame: pd.DataFrame) -> list[str]:
    """Varied-knob columns of a manifest or runs table (dotted spec keys)."""
    return sorted(c for c in frame.columns if "." in c and not c.endswith("_json"))


def read_manifest(path: Path) -> pd.DataFrame:
    """Read results/index/manifest.csv with identifiers as text."""
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})


def read_metrics(run_dir: Path) -> tuple[dict | None, str]:
    """(metrics, note): metrics is None when the file is absent or unreadable."""
    path = Path(run_dir) / rundir.METRICS
    if not path.exists():
        return None, ""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return None, f"unreadable {rundir.METRICS}: {e}"
    if not isinstance(data, dict):
        return None, f"{rundir.METRICS} is not a JSON object"
    return data, ""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _load_spec_dict(run_dir: Path, metrics: dict | None, row: dict, resolved: dict) -> dict | None:
    """The resolved spec of a run, looked up so that even missing runs can be placed on a
    depth axis: metrics.json, then spec.yaml beside or above the run dir, then resolving
    the named configs with the manifest's knob values."""
    if metrics and isinstance(metrics.get("spec"), dict):
        return metrics["spec"]
    for candidate in (run_dir / rundir.SPEC, run_dir.parent / rundir.SPEC):
        if candidate.exists():
            try:
                return config.load_yaml(candidate)
            except config.SpecError:
                pass
    overrides = {k: v for k, v in row.items() if "." in k and not _is_missing(v)}
    key = json.dumps(
        [row["model"], row["task"], row["scale"], overrides], sort_keys=True, default=str
    )
    if key not in resolved:  # seeds of a cell share one resolution
        try:
            spec = config.resolve(
                str(row["model"]), str(row["task"]), str(row["scale"]), overrides=overrides
            )
            resolved[key] = config.to_dict(spec)
        except Exception:  # configs may be absent or changed; a missing run stays unplaced
            resolved[key] = None
    return resolved[key]


def _depth_from_spec(spec: dict | None) -> float:
    if not spec or not isinstance(spec.get("model"), dict):
        return math.nan
    try:
        return float(config.effective_depth(config.from_dict(config.ModelSpec, spec["model"])))
    except (config.SpecError, TypeError):
        return math.nan


def _supervision_steps(spec: dict | None) -> tuple[float, float]:
    """(trained N_sup, N_sup of the headline evaluation)."""
    if not spec:
        return math.nan, math.nan
    n_sup = spec.get("model", {}).get("n_supervision", math.nan)
    eval_n = spec.get("eval", {}).get("n_supervision", 0) or n_sup
    return float(n_sup), float(eval_n)


def _task_shape(metrics: dict, spec: dict) -> tuple[int, int]:
    """(vocab, seq_len) the run trained on: the dataset's recorded shape (an external
    dataset may differ from what the spec names), else what the data spec builds."""
    shapes = (metrics.get("data_provenance") or {}).get("shape") or {}
    for split in ("test", "train"):
        s = shapes.get(split) or {}
        if s.get("vocab_size") and s.get("seq_len"):
            return int(s["vocab_size"]), int(s["seq_len"])
    from trm.describe import task_shapes

    data = task_shapes(config.from_dict(config.DataSpec, spec.get("data") or {}))
    return data["vocab_size"], data["seq_len"]


def _counted_flops(metrics: dict, spec: dict | None) -> dict:
    """train_flops (the steps actually run, each at its curriculum stage's depth, x global
    batch) and test_flops_per_puzzle (at the evaluated N_sup), counted from the run's spec
    by trm.model.flops (cached per cell), so runs recorded before FLOPs existed get them
    too. NaN when the spec cannot be read or the run has no metrics (nothing ran)."""
    out = {k: math.nan for k in FLOP_FIELDS}
    if not metrics or not spec or not isinstance(spec.get("model"), dict):
        return out
    from trm.model import flops

    try:
        run_spec = config.from_dict(config.RunSpec, spec)
        vocab, seq_len = _task_shape(metrics, spec)
    except (config.SpecError, TypeError, ValueError):
        return out
    steps = metrics.get("steps")
    if steps is not None:
        out["train_flops"] = float(flops.schedule_train_flops(
            run_spec, vocab, seq_len, int(steps), int(metrics.get("total_steps") or steps)))
    _, eval_n = _supervision_steps(spec)
    n_sup = metrics.get("n_supervision_eval") or eval_n
    if not _is_missing(n_sup):
        out["test_flops_per_puzzle"] = float(
            flops.test_flops_per_puzzle(run_spec.model, vocab, seq_len, int(n_sup)))
    return out


def _compute(metrics: dict) -> tuple[float, str]:
    """Training compute of a run: FLOPs when counted, else network-call equivalents."""
    flops = metrics.get("train_flops")
    if not _is_missing(flops):
        return float(flops), "flops"
    fwd, grad, steps = (
        metrics.get(k) for k in ("forward_calls_per_step", "grad_calls_per_step", "steps")
    )
    if None in (fwd, grad, steps):
        return math.nan, ""
    return float((fwd + BACKWARD_COST * grad) * steps), "call_equivalents"


def arc_protocol(arc: Any) -> str:
    """How our ARC numbers were scored, from metrics.json's 'arc' record (trm.train)."""
    if not isinstance(arc, dict):
        return ""
    votes = arc.get("augmentations_voted") or {}
    parts = [
        "pass@K: task counts only if all its test inputs are right (HRM scoring); "
        "pass@K_per_input: fraction of test inputs (TRM scoring)",
        f"votes per test input: mean {votes.get('mean', float('nan')):.0f} "
        f"(min {votes.get('min', '?')}, max {votes.get('max', '?')})",
        f"evaluations voted: {arc.get('evaluations_voted', '?')}",
        f"tasks: {arc.get('n_tasks', '?')}, test inputs: {arc.get('n_test_inputs', '?')}",
        f"at N_sup = {arc.get('n_supervision', '?')}",
    ]
    return "; ".join(parts)


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _run_row(row: dict, root: Path, resolved: dict) -> dict:
    run_dir = root / str(row["run_dir"])
    metrics, note = read_metrics(run_dir)
    out = dict(row)
    if metrics is None:
        out["status"] = "failed" if note else "missing"
        out["note"] = note
        metrics = {}
    else:
        status = metrics.get("status")
        out["status"] = status if status in rundir.STATUSES else "failed"
        out["note"] = "" if status in STATUSES else f"unknown status {status!r}"
        mismatches = [
            f"{k}={metrics[k]!r}"
            for k in ("task", "model", "sig", "seed")
            if k in metrics and str(metrics[k]) != str(row.get(k))
        ]
        if mismatches:
            out["note"] = "; ".join(
                filter(None, [out["note"], "metrics.json says " + ", ".join(mismatches)])
            )

    # Knob columns keep the manifest's values: blank means "the model's own default" (the
    # cell did not set it), which is what defines a study's contrasts. The resolved value
    # is in spec_json; with_spec_columns fills blanks for display.
    spec = _load_spec_dict(run_dir, metrics or None, row, resolved)
    info = _read_run_info(run_dir)
    out["device"] = info.get("gpu") or info.get("device") or ""
    out["git_sha"] = ((info.get("git") or {}).get("sha") or "")[:12]
    # The precision the run used (it changes results): the resolved spec's, else run_info's.
    out["precision"] = str(((spec or {}).get("train") or {}).get("precision") or info.get("precision") or "")

    for field in METRIC_COLUMNS:
        value = metrics.get(field)
        if value is None and field in RUN_INFO_FIELDS:
            value = info.get(field)
        if value is None and field in DERIVED_COLUMNS:
            value = row.get(field)
        out[field] = math.nan if value is None else value
    if _is_missing(out["effective_depth"]):
        out["effective_depth"] = _depth_from_spec(spec)
    counted = _counted_flops(metrics, spec)
    for field in FLOP_FIELDS:
        if _is_missing(out[field]):
            out[field] = counted[field]
    out["params_with_puzzle_embedding"] = _params_total(out)
    out["n_supervision"], out["eval_n_supervision"] = _supervision_steps(spec)
    if metrics.get("n_supervision_eval") is not None:  # what the evaluation actually used
        out["eval_n_supervision"] = float(metrics["n_supervision_eval"])
    out["eval_protocol"] = arc_protocol(metrics.get("arc"))
    if out["status"] != "ok" and metrics.get("error"):
        out["note"] = "; ".join(filter(None, [out["note"], str(metrics["error"])[:200]]))
    out["compute"], out["compute_unit"] = _compute({**metrics, "train_flops": out["train_flops"]})
    provenance = metrics.get("data_provenance") or {}
    out["data_kind"] = provenance.get("kind", "")
    out["data_source"] = provenance.get("source", "")
    out["has_predictions"] = (run_dir / rundir.PREDICTIONS).exists()
    # Extra scalar metrics (e.g. ARC pass@k) pass through under their own names.
    for key, value in metrics.items():
        if key in _STRUCTURED or key in out or isinstance(value, (dict, list)):
            continue
        out[key] = value
    out["per_step_json"] = _json(metrics.get("per_step"))
    out["test_time_json"] = _json(metrics.get("test_time"))
    out["spec_json"] = _json(spec)
    return out


def _params_total(row: dict) -> float:
    """Trained parameters plus the puzzle-embedding table (a buffer trained by sign-SGD)."""
    params, table = row.get("params"), row.get("puzzle_embedding_params")
    if _is_missing(params) or _is_missing(table):
        return math.nan
    return float(params) + float(table)


def _read_run_info(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / rundir.RUN_INFO).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def collect_runs(manifest: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The tidy runs table: manifest columns, status, metrics, depth, compute, provenance.

    `root` is the directory the manifest's run_dir paths are relative to.
    """
    root = Path(root)
    missing = [c for c in RUN_ID_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns: {', '.join(missing)}")
    manifest = manifest.copy()
    for col in TEXT_COLUMNS:
        manifest[col] = manifest[col].map(lambda v: v if _is_missing(v) else str(v))
    manifest["seed"] = manifest["seed"].map(lambda v: v if _is_missing(v) else int(v))
    resolved: dict = {}
    rows = [_run_row(r, root, resolved) for r in manifest.to_dict("records")]
    knobs = knob_columns(manifest)
    lead = [*RUN_ID_COLUMNS, *knobs, *RUN_STATUS_COLUMNS, *METRIC_COLUMNS, *COMPUTED_COLUMNS]
    tail = list(RUN_JSON_COLUMNS)
    if not rows:
        runs = pd.DataFrame(columns=lead + tail)
    else:
        runs = pd.DataFrame(rows)
        extra = sorted(c for c in runs.columns if c not in lead + tail)
        runs = runs[[c for c in lead if c in runs.columns] + extra + tail]
    runs.attrs["root"] = str(root)
    return runs


def sort_runs(runs: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("study", "task", "model", "sig", "seed") if c in runs.columns]
    return runs.sort_values(keys, kind="stable").reset_index(drop=True)


def write_runs_table(df: pd.DataFrame, path: Path) -> Path:
    """Write runs.csv sorted by (study, task, model, sig, seed) so reruns diff cleanly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    sort_runs(df).to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def read_runs_table(path: Path) -> pd.DataFrame:
    """Read runs.csv back; JSON and text columns stay strings ('' when empty)."""
    runs = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=True)
    for col in (
        "note",
        "eval_protocol",
        "compute_unit",
        "data_kind",
        "data_source",
        "per_step_json",
        "test_time_json",
        "spec_json",
    ):
        if col in runs.columns:
            runs[col] = runs[col].astype(object).where(runs[col].notna(), "").astype(str)
    return runs


def parse_json_column(value: Any) -> Any:
    """Decode a *_json cell; None for empty cells."""
    if not isinstance(value, str) or not value:
        return None
    return json.loads(value)


def accuracy_by_eval_steps(runs: pd.DataFrame) -> pd.DataFrame:
    """Accuracy after K supervision steps at evaluation, one row per (run, K).

    Combines per_step (K = 1..N at the trained depth) with test_time (any K, possibly
    beyond the trained N_sup); a test_time entry wins when both give the same K.
    """
    id_cols = [c for c in runs.columns if not c.endswith("_json")]
    rows = []
    for run in runs.to_dict("records"):
        by_k: dict[int, dict] = {}
        per_step = parse_json_column(run.get("per_step_json")) or {}
        exact = per_step.get("exact_accuracy") or []
        cell = per_step.get("cell_accuracy") or []
        for i, acc in enumerate(exact):
            by_k[i + 1] = {
                "exact_accuracy": acc,
                "cell_accuracy": cell[i] if i < len(cell) else math.nan,
            }
        for entry in parse_json_column(run.get("test_time_json")) or []:
            by_k[int(entry["n_supervision"])] = {
                "exact_accuracy": entry.get("exact_accuracy", math.nan),
                "cell_accuracy": entry.get("cell_accuracy", math.nan),
            }
        for k in sorted(by_k):
            base = {c: run[c] for c in id_cols}
            base.update(
                exact_accuracy=by_k[k]["exact_accuracy"],
                cell_accuracy=by_k[k]["cell_accuracy"],
                eval_steps=k,
            )
            rows.append(base)
    cols = id_cols + ["eval_steps"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)


def load_correct(root: Path, run_dir: str) -> np.ndarray | None:
    """Per-puzzle exact correctness at the headline depth (predictions.npz 'correct')."""

    path = Path(root) / str(run_dir) / rundir.PREDICTIONS
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            return np.asarray(data["correct"], dtype=bool).ravel()
    except (OSError, KeyError, ValueError):
        return None


def runs_root(runs: pd.DataFrame, root: Path | None = None) -> Path:
    """Directory run_dir paths are relative to: explicit, else where collect_runs was
    pointed, else the working directory (Snakemake runs from the repo root)."""
    if root is not None:
        return Path(root)
    return Path(runs.attrs.get("root", "."))


def with_spec_columns(runs: pd.DataFrame, keys) -> pd.DataFrame:
    """Add (or fill blanks of) dotted RunSpec columns from each run's resolved spec, so a
    table or figure can use a knob the manifest did not record as varied."""
    keys = [k for k in dict.fromkeys(keys) if k and "." in k]
    specs = runs["spec_json"] if "spec_json" in runs.columns else [""] * len(runs)
    flat = [config.flatten(s) if s else {} for s in map(parse_json_column, specs)]
    out = runs.copy()
    for k in keys:
        from_spec = pd.Series([f.get(k) for f in flat], index=runs.index, dtype=object)
        if k in out.columns:
            current = out[k].astype(object)
            out[k] = current.where(current.notna(), from_spec)
        else:
            out[k] = from_spec
    out.attrs = dict(runs.attrs)
    return out
