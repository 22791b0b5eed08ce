"""Per-study tables: a summary with one row per cell (CSV, Markdown, LaTeX) and a table of
pairwise comparisons with Holm-corrected p-values.

Every cell of the study appears, including cells whose runs are missing, failed or
diverged; their status says so and their numbers are blank. Statistics use only runs with
status 'ok' (a diverged run's accuracy is not a finished run's accuracy), and the counts
of the others are shown next to n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trm.config import inert_knobs
from trm.results import cells as cell_tools
from trm.results import stats, twopart
from trm.results.collect import load_correct, parse_json_column, runs_root, with_spec_columns

HEADLINE = "exact_accuracy"
SUMMARY_METRICS = ["exact_accuracy", "cell_accuracy", "wall_time_s"]
CARRY = ["params", "effective_depth", "n_supervision", "data_kind", "data_source"]
ALPHA = 0.05
DASH = "—"


# --------------------------------------------------------------------------------------
# Summary: one row per cell
# --------------------------------------------------------------------------------------


def headline_metric(study: dict, runs: pd.DataFrame) -> str:
    """The study's figure y when it is a numeric runs column, else exact accuracy."""
    y = (study.get("figure") or {}).get("y")
    if y and y in runs.columns and pd.api.types.is_numeric_dtype(runs[y]):
        return y
    return HEADLINE


def _order_cells(
    summary: pd.DataFrame, study: dict, rows: pd.DataFrame, knobs: list[str]
) -> pd.DataFrame:
    tasks = [str(t) for t in study.get("tasks") or []]
    models = cell_tools.model_order(study, rows)

    def rank(seq: list, value: Any) -> int:
        return seq.index(value) if value in seq else len(seq)

    # A knob's values in the order the study lists them (grid or zip axis, then include
    # cells), so tables read like the study and its figures (one_step, last_cycle, all),
    # not alphabetically; values the study does not list sort after them, by value.
    listed: dict[str, list] = {}
    for section in ("grid", "zip"):
        for k, values in (study.get(section) or {}).items():
            listed.setdefault(k, []).extend(cell_tools.normalize(v) for v in values)
    for cell in study.get("include") or []:
        for k, v in cell.items():
            listed.setdefault(k, []).append(cell_tools.normalize(v))

    def key(i: int) -> tuple:
        r = summary.iloc[i]
        return (
            rank(tasks, r["task"]),
            cell_tools.sort_key(r["task"]),
            rank(models, r["model"]),
            *((rank(listed.get(k, []), cell_tools.normalize(r[k])), cell_tools.sort_key(r[k])) for k in knobs),
            cell_tools.sort_key(r["sig"]),
        )

    return summary.iloc[sorted(range(len(summary)), key=key)].reset_index(drop=True)


FROM_SCALE = "scale"  # threshold argument: the scale's success_threshold for the metric


def success_threshold(runs: pd.DataFrame, metric: str, threshold: Any = FROM_SCALE) -> float | None:
    """The success threshold in the metric's stored units: the one given, or the scale's
    (None when the runs' scale sets none: every cell is then read as one distribution)."""
    if isinstance(threshold, str) and threshold == FROM_SCALE:
        return twopart.runs_threshold(runs, metric)
    return None if threshold is None else float(threshold)


SUCCESS_COLUMNS = ["success_threshold", "success_k", "success_n", "success_rate", "success_ci_low",
                   "success_ci_high", "success_acc_mean", "success_acc_ci_low", "success_acc_ci_high",
                   "on_transition"]


def _success_columns(summary: pd.DataFrame, rows: pd.DataFrame, metric: str,
                     threshold: float | None) -> pd.DataFrame:
    """Per cell: seeds past the threshold (k of n, Clopper-Pearson) and the accuracy of those
    seeds (mean, t-interval); NaN without a threshold."""
    records = []
    for _, cell in summary.iterrows():
        values = list(_by_seed(_members(rows, cell), metric).values())
        if threshold is None or not values:
            records.append({c: math.nan for c in SUCCESS_COLUMNS} | {"on_transition": False})
            continue
        cs = twopart.cell_success(values, threshold)
        records.append({"success_threshold": threshold, "success_k": cs.k, "success_n": cs.n,
                        "success_rate": cs.rate, "success_ci_low": cs.rate_ci_low,
                        "success_ci_high": cs.rate_ci_high, "success_acc_mean": cs.acc_mean,
                        "success_acc_ci_low": cs.acc_ci_low, "success_acc_ci_high": cs.acc_ci_high,
                        "on_transition": twopart.on_transition(values, threshold)})
    return pd.DataFrame(records, columns=SUCCESS_COLUMNS, index=summary.index)


@dataclass
class StudyRuns:
    study: dict  # with its scale tweak applied
    raw: pd.DataFrame  # the study's runs as collected: a blank knob = the model's own value
    rows: pd.DataFrame  # the same with shown knobs filled from the resolved spec
    knobs: list[str]  # varied knobs: they define the study's factors and contrasts
    shown: list[str]  # knobs shown in tables: varied ones + the figure's dotted keys


def study_runs(study: dict, runs: pd.DataFrame) -> StudyRuns:
    raw = cell_tools.study_rows(study, runs)
    study = cell_tools.at_scale(study, raw)
    shown = cell_tools.shown_knobs(study, raw)
    return StudyRuns(study, raw, with_spec_columns(raw, shown), cell_tools.varied_knobs(study, raw), shown)


def summary_table(study: dict, runs: pd.DataFrame, threshold: Any = FROM_SCALE) -> pd.DataFrame:
    """Machine-readable summary (accuracies as fractions, as in runs.csv), with each cell's
    success count against the threshold (SUCCESS_COLUMNS)."""
    s = study_runs(study, runs)
    metric = headline_metric(study, runs)
    metrics = list(dict.fromkeys([metric] + SUMMARY_METRICS))
    summary = cell_tools.summarize_groups(s.rows, cell_tools.CELL_KEYS, metrics, carry=s.shown + CARRY)
    for k in s.shown + CARRY:
        if k not in summary.columns:
            summary[k] = math.nan
    if summary.empty:
        summary["best"] = pd.Series(dtype=bool)
    else:
        summary = _order_cells(summary, s.study, s.rows, s.shown)
        mean = pd.to_numeric(summary[f"{metric}_mean"])
        best = mean.groupby(summary["task"]).transform("max")
        worst = mean.groupby(summary["task"]).transform("min")
        # Bold marks a best cell; when every cell of a task ties (all at the floor, say),
        # nothing is best and nothing is bold.
        summary["best"] = mean.notna() & (mean == best) & (best > worst)
    summary[SUCCESS_COLUMNS] = _success_columns(summary, s.rows, metric,
                                                success_threshold(runs, metric, threshold))
    lead = ["task", "model"] + s.shown + ["sig", "status", "status_text"]
    return summary[lead + [c for c in summary.columns if c not in lead]]


def _fmt_number(value: Any, percent: bool, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return f"{value * (100 if percent else 1):.{digits}f}"


def _fmt_params(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    v = float(value)
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.0f}"


def metric_title(metric: str) -> str:
    titles = {"exact_accuracy": "Exact acc.", "cell_accuracy": "Cell acc."}
    name = titles.get(metric, metric.replace("_", " "))
    return f"{name} (%)" if cell_tools.is_accuracy(metric) else name


def display_table(
    summary: pd.DataFrame, knobs: list[str], metric: str, pm: str = " ± ", bold=lambda s: f"**{s}**"
) -> pd.DataFrame:
    """Human-readable strings: mean ± sd, CI, n with status, depth, params, data; with a
    success threshold, the seeds past it (k/n [Clopper-Pearson %]) and their accuracy."""
    pct = cell_tools.is_accuracy(metric)
    two_part = "success_threshold" in summary and summary["success_threshold"].notna().any()
    out = []
    for r in summary.to_dict("records"):
        if r[f"{metric}_n"] > 0:
            mean_sd = _fmt_number(r[f"{metric}_mean"], pct)
            if not (isinstance(r[f"{metric}_sd"], float) and math.isnan(r[f"{metric}_sd"])):
                mean_sd += pm + _fmt_number(r[f"{metric}_sd"], pct)
            ci = (
                "[{}, {}]".format(
                    _fmt_number(r[f"{metric}_ci_low"], pct),
                    _fmt_number(r[f"{metric}_ci_high"], pct),
                )
                if r[f"{metric}_ci_method"]
                else DASH
            )
        else:
            mean_sd, ci = DASH, DASH
        if r.get("best"):
            mean_sd = bold(mean_sd)
        rec = {"Task": str(r["task"]), "Model": str(r["model"])}
        rec.update({cell_tools.knob_label(k): cell_tools.format_value(r.get(k)) for k in knobs})
        rec[metric_title(metric)] = mean_sd
        rec["95% CI"] = ci
        rec["Seeds"] = str(r[f"{metric}_n"])
        if two_part:
            rec["Succeeded"], rec["Among succeeded"] = _success_text(r, pct)
        if metric != "cell_accuracy" and "cell_accuracy_mean" in r:
            rec["Cell acc. (%)"] = _fmt_number(r["cell_accuracy_mean"], True)
        rec["Depth"] = cell_tools.format_value(r.get("effective_depth"))
        rec["Params"] = _fmt_params(r.get("params"))
        rec["Data"] = cell_tools.format_value(r.get("data_kind")) if r.get("data_kind") else DASH
        rec["Status"] = r["status_text"]
        out.append(rec)
    columns = (
        ["Task", "Model"]
        + [cell_tools.knob_label(k) for k in knobs]
        + [
            metric_title(metric),
            "95% CI",
            "Seeds",
            "Cell acc. (%)",
            "Depth",
            "Params",
            "Data",
            "Status",
        ]
    )
    if two_part:
        at = columns.index("Seeds") + 1
        columns[at:at] = ["Succeeded", "Among succeeded"]
    frame = pd.DataFrame(out, columns=columns)
    if metric == "cell_accuracy":
        frame = frame.drop(columns="Cell acc. (%)")
    return frame


def _success_text(r: dict, pct: bool) -> tuple[str, str]:
    """'k/n [lo, hi]' (Clopper-Pearson, percent) and 'mean [lo, hi]' of the successful seeds."""
    n = r.get("success_n")
    if n is None or not np.isfinite(n) or n == 0:
        return DASH, DASH
    k, n = int(r["success_k"]), int(r["success_n"])
    rate = f"{k}/{n} [{100 * r['success_ci_low']:.0f}, {100 * r['success_ci_high']:.0f}]"
    if not k:
        return rate, DASH
    acc = _fmt_number(r["success_acc_mean"], pct)
    if np.isfinite(r["success_acc_ci_low"]):
        acc += f" [{_fmt_number(r['success_acc_ci_low'], pct)}, {_fmt_number(r['success_acc_ci_high'], pct)}]"
    return rate, acc


# --------------------------------------------------------------------------------------
# LaTeX and Markdown
# --------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "---",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "−": "$-$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def to_latex(display: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """booktabs table (Styler with hrules); cells are escaped here, bold marks survive."""
    body = display.map(lambda s: _unbold_latex(str(s)))
    body.columns = [latex_escape(c) for c in display.columns]
    align = "".join("r" if c in ("Seeds", "Depth", "Params") else "l" for c in display.columns)
    styler = body.style.hide(axis="index")
    kwargs = {"hrules": True, "column_format": align}
    if caption:
        kwargs["caption"] = latex_escape(caption)
    if label:
        kwargs.update(label=label, position_float="centering")
    return styler.to_latex(**kwargs)


def _unbold_latex(s: str) -> str:
    """Markdown '**x**' -> LaTeX '\\textbf{x}', escaping everything else."""
    if s.startswith("**") and s.endswith("**") and len(s) > 4:
        return r"\textbf{" + latex_escape(s[2:-2]) + "}"
    return latex_escape(s)


def to_markdown(display: pd.DataFrame) -> str:
    if display.empty:
        return "_(no cells)_"
    return display.to_markdown(index=False)


# --------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------

TEST_COLUMNS = [
    "task",
    "factor",
    "a",
    "b",
    "a_n",
    "b_n",
    "a_mean",
    "b_mean",
    "test",
    "n_pairs",
    "a_only",
    "b_only",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p",
    "p_holm",
    "significant",
    "resolved",
    "seed_test",
    "seed_n",
    "seed_diff",
    "seed_ci_low",
    "seed_ci_high",
    "seed_p",
    "seed_p_holm",
    "sd_diff",
    "hedges_g",
    "g_ci_low",
    "g_ci_high",
    "a_sd",
    "b_sd",
    "mde",
    # The two-part reading (trm/results/twopart.py), against the scale's success threshold.
    "success_threshold",
    "a_success_k",
    "b_success_k",
    "a_success_rate",
    "b_success_rate",
    "boschloo_p",
    "boschloo_p_holm",
    "cond_test",
    "cond_n",
    "cond_diff",
    "cond_ci_low",
    "cond_ci_high",
    "cond_p",
    "twopart_z_rate",
    "twopart_z_rank",
    "twopart_p",
    "twopart_method",
    "twopart_p_holm",
    "prob_improvement",
    "seed_ci90_low",
    "seed_ci90_high",
    "reading",
    "decision",
    "reason",
    "direction",
    "note",
]


def contrasts(cells: list[dict], factors: list[list[str]]) -> list[tuple[int, int, int]]:
    """(i, j, factor index) for pairs of cells of the same task that differ in exactly one
    factor, all else equal: each comparison isolates one change.

    A cell gives each knob twice: as the study set it (blank = the model's own value) and,
    under "resolved", the value that ran. A knob counts as changed only if both differ:
    trm_mlp vs trm_act is a model contrast although the models' halting differs (the
    model factor includes its own defaults), and hrm at its default n=2 vs trm with n=2
    set by the study is a model contrast too (the value that ran is the same). A knob that
    one of the two cells' architectures never reads (trm.config.inert_knobs: n and T for a
    one-pass network, direct_layers for a recursive one) does not count either.
    """

    def changed(a: dict, b: dict, col: str) -> bool:
        if cell_tools.normalize(a.get(col)) == cell_tools.normalize(b.get(col)):
            return False
        if col in inert_knobs(a.get("arch")) | inert_knobs(b.get("arch")):
            return False  # a knob one of the two networks never reads
        ra, rb = (c.get("resolved", {}).get(col) for c in (a, b))
        if col == "model" or ra is None or rb is None:
            return True
        return cell_tools.normalize(ra) != cell_tools.normalize(rb)

    pairs = []
    for i in range(len(cells)):
        for j in range(i + 1, len(cells)):
            a, b = cells[i], cells[j]
            if a["task"] != b["task"]:
                continue
            differ = [f for f, cols in enumerate(factors) if any(changed(a, b, c) for c in cols)]
            if len(differ) == 1:
                pairs.append((i, j, differ[0]))
    pairs.sort(key=lambda p: (p[2], p[0], p[1]))
    return pairs


def _factor_values(raw: pd.DataFrame, cell: pd.Series, knobs: list[str]) -> dict:
    """The cell's knob values as the study set them, and (resolved) as they ran."""
    members = _members(raw, cell)
    values = {"task": cell["task"], "model": cell["model"], "resolved": {}, "arch": None}
    if len(members) and "spec_json" in members.columns:
        spec = parse_json_column(members["spec_json"].iloc[0])
        if isinstance(spec, dict):
            values["arch"] = (spec.get("model") or {}).get("arch")
    for k in knobs:
        v = members[k].dropna() if k in members.columns else pd.Series(dtype=object)
        values[k] = cell_tools.normalize(v.iloc[0]) if len(v) else None
        values["resolved"][k] = cell_tools.normalize(cell.get(k))
    return values


def _members(rows: pd.DataFrame, cell: pd.Series) -> pd.DataFrame:
    mask = np.ones(len(rows), dtype=bool)
    for c in cell_tools.CELL_KEYS:
        mask &= rows[c].map(lambda v, c=c: cell_tools.group_value(c, v)).to_numpy() == cell[c]
    return rows[mask]


def _data_section(spec_json: Any) -> Any:
    spec = parse_json_column(spec_json)
    return spec.get("data") if isinstance(spec, dict) else None


def paired_predictions(a_runs: pd.DataFrame, b_runs: pd.DataFrame, root: Path):
    """Per-seed boolean correctness arrays for seeds both cells finished with predictions
    on the same test set; (arrays_a, arrays_b, note)."""

    def usable(df):
        ok = df[
            (df["status"] == "ok")
            & df["has_predictions"].map(cell_tools.normalize).fillna(False).astype(bool)
        ]
        return {int(cell_tools.normalize(r["seed"])): r for r in ok.to_dict("records")}

    ra, rb = usable(a_runs), usable(b_runs)
    seeds = sorted(set(ra) & set(rb))
    xs, ys, notes = [], [], []
    for s in seeds:
        da, db = _data_section(ra[s].get("spec_json")), _data_section(rb[s].get("spec_json"))
        if da is not None and db is not None and da != db:
            notes.append(f"seed {s}: different test sets")
            continue
        x, y = load_correct(root, ra[s]["run_dir"]), load_correct(root, rb[s]["run_dir"])
        if x is None or y is None or len(x) != len(y):
            notes.append(f"seed {s}: unreadable or mismatched predictions")
            continue
        xs.append(x)
        ys.append(y)
    return xs, ys, "; ".join(notes)


def _by_seed(rows: pd.DataFrame, metric: str) -> dict[int, float]:
    """{seed: metric} over the cell's finished runs (a seed's NaN metric is dropped)."""
    ok = rows[rows["status"] == "ok"]
    vals = pd.to_numeric(ok[metric], errors="coerce")
    return {int(cell_tools.normalize(s)): float(v) for s, v in zip(ok["seed"], vals) if np.isfinite(v)}


def _sd(values: pd.Series) -> float:
    v = values.dropna().to_numpy(dtype=float)
    return float(v.std(ddof=1)) if len(v) >= 2 else math.nan


# A cell whose seeds spread this much (sd of the headline metric, as a fraction) is listed
# under the study's power line: with 5 seeds, one such cell alone puts a paired contrast's
# MDE above 10 points, so the reader should see its seeds, not only its mean.
WIDE_SD = 0.10


def wide_cells(study: dict, runs: pd.DataFrame, threshold: float = WIDE_SD) -> list[dict]:
    """The study's cells whose finished seeds spread by more than `threshold` (sd of the
    headline metric), with every seed's value: a cell on its learning curve's transition
    (some seeds past it, some before) shows here as seeds split between the floor and the
    rest."""
    metric = headline_metric(study, runs)
    if not cell_tools.is_accuracy(metric):
        return []  # the threshold is in accuracy points
    s = study_runs(study, runs)
    summary = summary_table(study, runs)
    out = []
    for _, cell in summary.iterrows():
        by_seed = _by_seed(_members(s.rows, cell), metric)
        sd = _sd(pd.Series(list(by_seed.values()), dtype=float))
        if np.isfinite(sd) and sd > threshold:
            out.append({"task": cell["task"], "cell": cell_tools.cell_label(cell, s.shown), "metric": metric,
                        "sd": sd, "seeds": dict(sorted(by_seed.items()))})
    return out


def _two_part_columns(a_seed: dict, b_seed: dict, threshold: float | None) -> dict:
    """The columns of the two-part reading for one contrast (twopart.py): every contrast gets
    the probability of improvement and the 90% CI of the across-seed difference (for
    equivalence); with a threshold, the success counts and Boschloo; where a cell has seeds
    on both sides of it, the seed test on the successful seeds and the two-part test."""
    a_vals, b_vals = list(a_seed.values()), list(b_seed.values())
    ci90 = stats.seed_test(a_seed, b_seed, confidence=twopart.EQUIVALENCE_CONFIDENCE)
    out = {"prob_improvement": twopart.probability_of_improvement(a_vals, b_vals),
           "seed_ci90_low": ci90.ci_low, "seed_ci90_high": ci90.ci_high,
           "reading": twopart.UNIMODAL}
    if threshold is None:
        return out
    out["success_threshold"] = threshold
    if not a_vals or not b_vals:
        return out
    sa, sb = twopart.cell_success(a_vals, threshold), twopart.cell_success(b_vals, threshold)
    out.update(a_success_k=sa.k, b_success_k=sb.k, a_success_rate=sa.rate, b_success_rate=sb.rate,
               boschloo_p=twopart.boschloo(sa.k, sa.n, sb.k, sb.n))
    if not (twopart.on_transition(a_vals, threshold) or twopart.on_transition(b_vals, threshold)):
        return out
    # Seeds past the threshold in both cells are paired by seed, as in the seed test.
    cond = stats.seed_test({k: v for k, v in a_seed.items() if v >= threshold},
                           {k: v for k, v in b_seed.items() if v >= threshold})
    tp = twopart.two_part_test(a_vals, b_vals, threshold)
    out.update(reading=twopart.TWO_PART, cond_test=cond.test, cond_n=cond.n, cond_diff=cond.diff,
               cond_ci_low=cond.ci_low, cond_ci_high=cond.ci_high, cond_p=cond.p_value,
               twopart_z_rate=tp.z_rate, twopart_z_rank=tp.z_rank, twopart_p=tp.p_value,
               twopart_method=tp.method)
    return out


def _decide(table: pd.DataFrame, seeds: list[tuple[dict, dict]], threshold: float | None,
            metric: str) -> pd.DataFrame:
    """Holm for Boschloo and the two-part test; `resolved` by each contrast's reading (today's
    rule for unimodal contrasts, the two-part test for the others); then decision, reason
    and the direction of resolved contrasts."""
    table["boschloo_p_holm"] = stats.holm(table["boschloo_p"].to_numpy(dtype=float))
    table["twopart_p_holm"] = stats.holm(table["twopart_p"].to_numpy(dtype=float))
    two_part = table["reading"] == twopart.TWO_PART
    table.loc[two_part, "resolved"] = table.loc[two_part, "twopart_p_holm"] < ALPHA
    decisions, reasons, directions = [], [], []
    for (_, t), (a_seed, b_seed) in zip(table.iterrows(), seeds):
        decision, reason = twopart.decide(
            list(a_seed.values()), list(b_seed.values()), resolved=bool(t["resolved"]),
            reading=t["reading"], ci90=(t["seed_ci90_low"], t["seed_ci90_high"]),
            threshold=threshold, accuracy=cell_tools.is_accuracy(metric))
        decisions.append(decision)
        reasons.append(reason)
        if decision != twopart.RESOLVED:
            directions.append("")
        elif t["reading"] == twopart.TWO_PART:
            rate_diff = t["a_success_rate"] - t["b_success_rate"]
            directions.append(twopart.direction(rate_diff, t["cond_diff"], math.nan))
            if rate_diff * t["cond_diff"] < 0:  # NaN compares False
                table.loc[t.name, "note"] = "; ".join(filter(None, [
                    t["note"], "success rate and accuracy among successful seeds point opposite ways"]))
        else:
            directions.append(twopart.direction(math.nan, math.nan, t["diff"]))
    table["decision"], table["reason"], table["direction"] = decisions, reasons, directions
    table["resolved"] = table["resolved"].astype(bool)
    return table


def comparisons_table(study: dict, runs: pd.DataFrame, root: Path | None = None,
                      threshold: Any = FROM_SCALE) -> pd.DataFrame:
    """One row per contrast: paired McNemar + paired bootstrap when per-puzzle predictions
    exist for shared seeds (test, p), and the across-seed test (seed_*: paired by seed when
    two or more seeds are shared, else Welch), which is also the only test without
    predictions. Holm across the study for each; `resolved` needs both. Where a cell has
    seeds on both sides of the success threshold the contrast is read in two parts, and
    `resolved` is the two-part test's (Holm); `decision` and `reason` say what each
    contrast decides (twopart.decide)."""
    root = runs_root(runs, root)
    s = study_runs(study, runs)
    metric = headline_metric(study, runs)
    threshold = success_threshold(runs, metric, threshold)
    summary = summary_table(study, runs, threshold)
    seeds = []
    factors = cell_tools.study_factors(s.study, s.knobs)
    values = [_factor_values(s.raw, summary.iloc[i], s.knobs) for i in range(len(summary))]
    out = []
    for i, j, f in contrasts(values, factors):
        a, b = summary.iloc[i], summary.iloc[j]
        a_runs, b_runs = _members(s.rows, a), _members(s.rows, b)
        a_seed, b_seed = _by_seed(a_runs, metric), _by_seed(b_runs, metric)
        a_vals, b_vals = (pd.Series(list(v.values()), dtype=float) for v in (a_seed, b_seed))
        rec = {
            "task": a["task"],
            "factor": cell_tools.factor_label(factors[f]),
            "a": cell_tools.cell_label(a, s.shown),
            "b": cell_tools.cell_label(b, s.shown),
            "a_n": len(a_seed),  # finished seeds with a finite metric
            "b_n": len(b_seed),
            "a_mean": a[f"{metric}_mean"],
            "b_mean": b[f"{metric}_mean"],
        }
        # Across seeds, the seed is the unit: seed k of both cells shares its data order
        # (and its initial weights where the shapes agree), so the test is paired by seed.
        seed = stats.seed_test(a_seed, b_seed)
        g, g_lo, g_hi = stats.hedges_g(a_vals, b_vals)
        a_sd, b_sd = _sd(a_vals), _sd(b_vals)
        # What this contrast could have detected: the seed test's minimum detectable effect
        # at 80% power (alpha 0.05, two-sided) from the observed spread.
        if seed.test == "paired_t":
            mde = stats.paired_min_detectable_effect(seed.sd_diff, seed.n, alpha=ALPHA, power=stats.POWER)
        else:
            mde = stats.min_detectable_effect(a_sd, b_sd, rec["a_n"], rec["b_n"], alpha=ALPHA, power=stats.POWER)
        rec.update(seed_test=seed.test, seed_n=seed.n, seed_diff=seed.diff, seed_ci_low=seed.ci_low,
                   seed_ci_high=seed.ci_high, seed_p=seed.p_value, sd_diff=seed.sd_diff,
                   hedges_g=g, g_ci_low=g_lo, g_ci_high=g_hi, a_sd=a_sd, b_sd=b_sd, mde=mde)
        rec.update(_two_part_columns(a_seed, b_seed, threshold))
        seeds.append((a_seed, b_seed))
        xs, ys, note = ([], [], "")
        if metric == HEADLINE and rec["a_n"] and rec["b_n"]:
            xs, ys, note = paired_predictions(a_runs, b_runs, root)
        if xs:
            mc = stats.mcnemar_exact(xs, ys)
            diff, lo, hi = stats.paired_bootstrap_diff(xs, ys)
            rec.update(
                test="mcnemar_exact",
                n_pairs=len(xs),
                a_only=mc.a_only,
                b_only=mc.b_only,
                diff=diff,
                diff_ci_low=lo,
                diff_ci_high=hi,
                p=mc.p_value,
            )
        elif rec["a_n"] and rec["b_n"]:
            # No per-puzzle predictions: the seed test is the only test.
            rec.update(
                test=seed.test,
                n_pairs=seed.n if seed.test == "paired_t" else 0,
                diff=seed.diff,
                diff_ci_low=seed.ci_low,
                diff_ci_high=seed.ci_high,
                p=seed.p_value,
            )
            if not np.isfinite(seed.p_value):
                note = "; ".join(filter(None, [note, "seed test undefined (n < 2 or no spread)"]))
        else:
            rec.update(test="none", n_pairs=0, p=math.nan)
            empty = [
                f"{lbl} ({cell['status']})"
                for lbl, cell, n in (("A", a, rec["a_n"]), ("B", b, rec["b_n"]))
                if n == 0
            ]
            note = f"no finished runs in {' and '.join(empty)}"
        rec["note"] = note
        out.append(rec)
    table = pd.DataFrame(out, columns=TEST_COLUMNS)
    if table.empty:
        return table
    table["p_holm"] = stats.holm(table["p"].to_numpy(dtype=float))
    table["seed_p_holm"] = stats.holm(table["seed_p"].to_numpy(dtype=float))
    table["significant"] = table["p_holm"] < ALPHA
    table["resolved"] = table["significant"] & (table["seed_p_holm"] < ALPHA)
    return _decide(table, seeds, threshold, metric)


def tests_markdown(tests: pd.DataFrame, metric: str) -> str:
    if tests.empty:
        return "_(no pairs of cells differ in exactly one factor)_"
    pct = cell_tools.is_accuracy(metric)

    def p(v):
        return DASH if not np.isfinite(v) else (f"{v:.2g}" if v >= 1e-4 else "<1e-4")

    view = pd.DataFrame(
        {
            "Task": tests["task"],
            "Factor": tests["factor"],
            "A": tests["a"],
            "B": tests["b"],
            "A − B (pp)" if pct else "A − B": [
                (
                    f"{_fmt_number(d, pct)} [{_fmt_number(lo, pct)}, {_fmt_number(hi, pct)}]"
                    if np.isfinite(d)
                    else DASH
                )
                for d, lo, hi in zip(tests["diff"], tests["diff_ci_low"], tests["diff_ci_high"])
            ],
            "Test": tests["test"],
            "p": tests["p"].map(p),
            "p (Holm)": tests["p_holm"].map(p),
            "Seeds": [
                (f"paired, {int(n)}" if t == "paired_t" else f"Welch, {int(n)}") if isinstance(t, str) else DASH
                for t, n in zip(tests["seed_test"], tests["seed_n"].fillna(0))
            ],
            "Across seeds p (Holm)": tests["seed_p_holm"].map(p),
            ("MDE (pp)" if pct else "MDE"): [_fmt_number(v, pct) for v in tests["mde"]],
            "Hedges g [95% CI]": [
                f"{g:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(g) else DASH
                for g, lo, hi in zip(tests["hedges_g"], tests["g_ci_low"], tests["g_ci_high"])
            ],
            "P(A>B)": [f"{v:.2f}" if np.isfinite(v) else DASH for v in tests["prob_improvement"]],
            "Reading": tests["reading"].fillna(DASH),
            "Decision": [_decision_text(t) for _, t in tests.iterrows()],
            "Note": tests["note"].fillna(""),
        }
    )
    if tests["success_threshold"].notna().any():
        at = list(view.columns).index("Reading") + 1
        view.insert(at, "Succeeded A / B (Boschloo p)", [
            f"{int(t['a_success_k'])}/{int(t['a_n'])} vs {int(t['b_success_k'])}/{int(t['b_n'])} "
            f"({p(t['boschloo_p'])})" if np.isfinite(t["boschloo_p"]) else DASH
            for _, t in tests.iterrows()])
    return view.to_markdown(index=False)


def _decision_text(t: pd.Series) -> str:
    """'resolved, A > B', 'equivalent' or 'indeterminate: <reason>'."""
    if not isinstance(t.get("decision"), str):
        return DASH
    if t["decision"] == twopart.RESOLVED:
        return f"resolved, {t['direction']}" if t.get("direction") else "resolved"
    return f"indeterminate: {t['reason']}" if t.get("reason") else str(t["decision"])


def decision_totals(tests: pd.DataFrame) -> str:
    """'N contrasts: r resolved, e equivalent, i indeterminate (reason: count, ...)'."""
    decided = tests["decision"].value_counts() if len(tests) else pd.Series(dtype=int)
    reasons = tests.loc[tests["decision"] == twopart.INDETERMINATE, "reason"].value_counts() \
        if len(tests) else pd.Series(dtype=int)
    why = ", ".join(f"{r}: {int(reasons[r])}" for r in twopart.REASONS if r in reasons)
    return (f"{len(tests)} contrasts: {int(decided.get(twopart.RESOLVED, 0))} resolved, "
            f"{int(decided.get(twopart.EQUIVALENT, 0))} equivalent, "
            f"{int(decided.get(twopart.INDETERMINATE, 0))} indeterminate" + (f" ({why})" if why else ""))


def _pp(x: float, pct: bool, signed: bool = False) -> str:
    if not np.isfinite(x):
        return "n/a"
    value = 100 * x if pct else x
    return (f"{value:+.1f}" if signed else f"{value:.1f}") + (" pp" if pct else "")


def _reading_text(t: pd.Series, pct: bool) -> str:
    """What the contrast's reading found, in one clause."""
    def p(v):
        return f"{v:.2g}" if np.isfinite(v) else "n/a"

    if t["reading"] == twopart.TWO_PART:
        cond = (f"among seeds past it {_pp(t['cond_diff'], pct, True)} "
                f"[{_pp(t['cond_ci_low'], pct, True)}, {_pp(t['cond_ci_high'], pct, True)}] "
                f"({'paired' if t['cond_test'] == 'paired_t' else 'Welch'}, {int(t['cond_n'])})")
        return (f"two-part reading: past the threshold {int(t['a_success_k'])}/{int(t['a_n'])} vs "
                f"{int(t['b_success_k'])}/{int(t['b_n'])} (Boschloo p = {p(t['boschloo_p'])}), {cond}; "
                f"two-part test p = {p(t['twopart_p'])}, Holm {p(t['twopart_p_holm'])} "
                f"({t['twopart_method']})")
    return (f"unimodal reading: A − B {_pp(t['diff'], pct, True)} (p Holm {p(t['p_holm'])}; across "
            f"seeds Holm {p(t['seed_p_holm'])}, MDE {_pp(t['mde'], pct)}), across-seed 90% CI "
            f"[{_pp(t['seed_ci90_low'], pct, True)}, {_pp(t['seed_ci90_high'], pct, True)}]")


def decisions_markdown(tests: pd.DataFrame, metric: str) -> str:
    """The study report's decisions: the totals, then each contrast with the reading it used,
    what that reading found and the decision."""
    if tests.empty:
        return "No contrasts to decide."
    pct = cell_tools.is_accuracy(metric)
    threshold = pd.to_numeric(tests["success_threshold"], errors="coerce").dropna()
    margin = _pp(twopart.EQUIVALENCE_MARGIN, pct)
    lines = [
        (f"Success threshold: {f'{100 * threshold.iloc[0]:g}%' if pct else f'{threshold.iloc[0]:g}'} "
         f"{metric.replace('_', ' ')} (set in the scale file before any run was read). A contrast "
         "with a cell whose seeds fall on both sides of it is read in two parts (seeds past it, "
         "and their accuracy), and decided by the two-part test (Holm); others keep the "
         "unimodal tests." if len(threshold) else
         "This scale sets no success threshold: every contrast is read as one distribution per cell."),
        "",
        f"Equivalent: the 90% CI of the across-seed difference lies within ±{margin} (two one-sided "
        "tests). Indeterminate reasons: on a transition (a cell's seeds on both sides of the "
        "threshold and the two-part test not significant), below its MDE, at a floor (no seed past "
        "the threshold in either cell, or both means below it), at a ceiling (both ≥ 99%), too few "
        "seeds (under 2 a side). P(A>B): the chance a seed of A beats a seed of B (ties half).",
        "",
        f"**Totals:** {decision_totals(tests)}.",
        "",
    ]
    for _, t in tests.iterrows():
        pi = f"P(A>B) = {t['prob_improvement']:.2f}" if np.isfinite(t["prob_improvement"]) else "P(A>B) n/a"
        lines.append(f"- {t['task']}: {t['a']} vs {t['b']} ({t['factor']}): **{_decision_text(t)}**; "
                     f"{_reading_text(t, pct)}; {pi}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

NOTES = (
    "Mean ± sd over the seeds with status 'ok' (Seeds); 95% CI: t-interval for n < 5, BCa bootstrap "
    "for n ≥ 5. Bold: best mean per task. Cells whose runs are missing, failed or diverged "
    "are listed with their status and no numbers. Comparisons: exact McNemar on discordant "
    "test puzzles (summed over shared seeds) with a paired-bootstrap CI of the accuracy "
    "difference when per-puzzle predictions exist; it conditions on the trained models. "
    "Across seeds (the seed as the unit): a paired t-test over the seeds both cells ran, since "
    "seed k of every cell shares its data order and, where shapes agree, its initial weights; "
    "Welch's t-test when fewer than two seeds are shared. p-values Holm-corrected across the "
    "study, each test separately; a contrast is resolved when both are significant. Hedges' g "
    "is across seeds (unpaired). MDE: the smallest true difference the across-seed test "
    "(two-sided, alpha 0.05, before Holm) would detect with 80% power, given the observed "
    "spread of the per-seed differences (or of the two cells, for Welch) and the seed count; "
    "`python -m trm plan-seeds` turns it into the seeds a target effect needs. Where the scale "
    "sets a success threshold: Succeeded, the seeds at or above it (k/n, Clopper-Pearson 95% "
    "interval in %); Among succeeded, those seeds' mean with a t-interval. P(A>B): the "
    "probability that a seed of A beats a seed of B (Mann-Whitney U / (n_A n_B), ties half). "
    "Decisions: see that section."
)


def write_study_tables(
    study: dict, runs: pd.DataFrame, out_dir: Path, *, root: Path | None = None,
    threshold: Any = FROM_SCALE,
) -> dict[str, Path]:
    """Write <name>.csv, .md, .tex and <name>_tests.csv; returns their paths. `threshold`:
    the success threshold (default: the runs' scale's)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study["name"]
    s = study_runs(study, runs)
    rows = s.raw
    metric = headline_metric(study, runs)
    summary = summary_table(study, runs, threshold)
    tests = comparisons_table(study, runs, root, threshold)
    display = display_table(summary, s.shown, metric)

    paths = {
        "csv": out_dir / f"{name}.csv",
        "md": out_dir / f"{name}.md",
        "tex": out_dir / f"{name}.tex",
        "tests": out_dir / f"{name}_tests.csv",
    }
    summary.to_csv(paths["csv"], index=False)
    tests.to_csv(paths["tests"], index=False)

    md = [f"# {name}", ""]
    for key in ("description", "question"):
        if study.get(key):
            md += [f"**{key.capitalize()}:** {str(study[key]).strip()}", ""]
    if rows.empty:
        md += ["_No runs of this study are in the runs table._", ""]
    md += [
        to_markdown(display),
        "",
        NOTES,
        "",
        "## Comparisons",
        "",
        tests_markdown(tests, metric),
        "",
        "## Decisions",
        "",
        decisions_markdown(tests, metric),
        "",
    ]
    paths["md"].write_text("\n".join(md))

    tex_display = display_table(summary, s.shown, metric, pm=" ± ")
    caption = f"{name}: {str(study.get('description', '')).strip()} {NOTES}".strip()
    paths["tex"].write_text(to_latex(tex_display, caption=caption, label=f"tab:{name}"))
    return paths
