"""Tables and figures of a test-time study: the reporting layer of the test-time feature,
after planning (trm/studies/test_time.py: kind test_time, its settings and source runs) and
evaluating (trm/train/test_time.py, which writes the per-run records RUN_DIR/test_time/<study>.json
read here; `trm eval` writes the same format to RUN_DIR/test_time/eval.json).

    frame = collect(study)                     # one row per (source study, run, setting)
    write_tables(study, frame, out_dir)        # <name>.csv (per cell and setting), <name>_runs.csv, <name>.md
    plot_source(study, frame, source, pdf)     # one figure per source study
    plot_summary(study, frame, pdf)            # gain over plain evaluation, every sweep

Every run the study names is in the frame: a run without a record, one whose training did
not finish, or one whose evaluation failed gets its expected setting rows with no accuracy
and its status, so the tables list it (the project's rule: shown, never dropped).

Metric per sweep: exact accuracy (per example, every non-ignored token right) for the
N_sup, depth and trajectories sweeps; ARC voting: pass@2 with HRM's task all-or-nothing
scoring (what metrics.json calls pass@2). `gain_pp`: the setting minus the same run's plain
evaluation (trained n, T and N_sup; one trajectory, no noise; for votes: one variant), in
percentage points, averaged over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from trm.results import plotting
from trm.studies.test_time import result_path

SWEEP_TITLES = {
    "n_supervision": "Supervision steps at test\n(multiple of the trained N_sup)",
    "depth": "Depth at test: calls per step\nT·(n+1)·layers (trained N_sup)",
    "trajectories": "Noisy trajectories K, picked\nby the halting head (dashed: oracle)",
    "arc_votes": "ARC: augmented variants voted\n(pass@2, all-or-nothing)",
}
SWEEP_ORDER = ("n_supervision", "depth", "trajectories", "arc_votes")
ARC_TASKS = ("arc1", "arc2")


def _metric(sweep: str) -> str:
    return "pass@2" if sweep == "arc_votes" else "exact_accuracy"


def cell_label(entry: dict) -> str:
    """model plus the source study's knobs, e.g. 'trm_mlp n=2 T=2'."""
    short = {"model.n_latent_steps": "n", "model.n_cycles": "T"}
    order = {k: i for i, k in enumerate(short)}  # n before T, as the papers write them
    keys = sorted(entry["knobs"], key=lambda k: (order.get(k, len(order)), k))
    knobs = " ".join(f"{short.get(k, k.split('.')[-1])}={entry['knobs'][k]}" for k in keys)
    return f"{entry['model']} {knobs}".strip()


def expected_rows(settings: dict, task: str) -> list[dict]:
    """The setting rows of one run, without results (for runs that have none)."""
    rows = [{"sweep": "n_supervision", "multiplier": m} for m in settings["n_supervision_multipliers"]]
    rows += [{"sweep": "depth", **d} for d in settings["depths"]]
    rows += [{"sweep": "trajectories", "trajectories": k, "noise_sigma": s}
             for s in settings["noise_sigma"] for k in settings["trajectories"]]
    if task in ARC_TASKS:
        rows += [{"sweep": "arc_votes", "votes": m} for m in settings["arc_votes"]]
    return rows


def _x(row: dict) -> float:
    """Where a setting sits on its panel's x axis."""
    sweep = row["sweep"]
    if sweep == "n_supervision":
        return float(row["multiplier"])
    if sweep == "depth":
        d = row.get("depth_per_step")
        return float(d) if d is not None and d == d else float(row["n_cycles"] * (row["n_latent_steps"] + 1))
    if sweep == "trajectories":
        return float(row["trajectories"])
    return float(row["votes"])


def setting_label(row: dict) -> str:
    sweep = row["sweep"]
    if sweep == "n_supervision":
        return f"N_sup x{row['multiplier']}"
    if sweep == "depth":
        return f"n={row['n_latent_steps']} T={row['n_cycles']}"
    if sweep == "trajectories":
        return f"K={row['trajectories']} sigma={row['noise_sigma']:g}"
    return f"{row['votes']} variants"


def _plain(record: dict, row: dict) -> float:
    """The baseline of a row's gain: the run's plain evaluation (or one voted variant)."""
    if row["sweep"] == "arc_votes":
        ones = [r for r in record["rows"] if r["sweep"] == "arc_votes" and r["votes"] == 1]
        return ones[0]["pass@2"] if ones else np.nan
    k = record["trained"]["n_supervision_eval"]
    return record["per_step_exact_accuracy"][k - 1]


def collect(study: dict, root: Path = Path(".")) -> pd.DataFrame:
    """One row per (source study, run, setting), every run the study names included."""
    settings = study["settings"]
    out = []
    for entry in study["source_runs"]:
        path = Path(root) / result_path(entry["run_dir"], study["name"])
        record = None
        if path.is_file():
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                record = None
        status = "missing" if record is None else str(record.get("status", "missing"))
        base = {"source_study": entry["source_study"], "task": entry["task"], "model": entry["model"],
                "cell": cell_label(entry), "sig": entry["sig"], "seed": entry["seed"],
                "run_dir": entry["run_dir"], "status": status,
                "error": (record or {}).get("error")}
        rows = record["rows"] if status == "ok" else expected_rows(settings, entry["task"])
        for row in rows:
            r = {**base, **row}
            r["x"] = _x(row)
            r["setting"] = setting_label(row)
            if status == "ok":
                metric = _metric(row["sweep"])
                value = row.get(metric)
                if value is None or row.get("error"):
                    r["status"] = "error"
                    r["error"] = row.get("error")
                    r["gain_pp"] = np.nan
                else:
                    r["gain_pp"] = 100.0 * (value - _plain(record, row))
                r["time_s"] = record["time_s"]["total"]
                r["n_test"] = record["n_test"]
            out.append(r)
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    frame["metric"] = frame["sweep"].map(_metric)
    frame["value"] = [r.get(r["metric"], np.nan) if r["status"] == "ok" else np.nan
                      for r in frame.to_dict("records")]
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


def _status_text(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    if set(counts.index) == {"ok"}:
        return "ok"
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "ok") + \
        (f", {counts['ok']} ok" if "ok" in counts else "")


SUMMARY_KEYS = ["source_study", "task", "cell", "model", "sweep", "setting", "x", "noise_sigma"]


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (source study, cell, setting): runs, finished runs, mean and sd over seeds of the
    metric, mean gain over plain evaluation, the oracle for trajectories, status."""
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_KEYS + ["metric", "n_runs", "n_ok", "mean", "sd",
                                                    "gain_pp", "oracle_mean", "status"])
    f = frame.copy()
    for col in ("noise_sigma", "oracle_accuracy", "gain_pp"):
        if col not in f:
            f[col] = np.nan
    f["noise_sigma"] = f["noise_sigma"].fillna(-1.0)  # groupby drops NaN keys
    rows = []
    for key, g in f.groupby(SUMMARY_KEYS, sort=False):
        ok = g[g["status"] == "ok"]
        vals = ok["value"].dropna()
        rows.append({**dict(zip(SUMMARY_KEYS, key)), "metric": g["metric"].iloc[0],
                     "n_runs": len(g), "n_ok": len(vals),
                     "mean": vals.mean() if len(vals) else np.nan,
                     "sd": vals.std(ddof=1) if len(vals) > 1 else np.nan,
                     "gain_pp": ok["gain_pp"].mean() if len(vals) else np.nan,
                     "oracle_mean": pd.to_numeric(ok["oracle_accuracy"], errors="coerce").mean()
                     if len(vals) else np.nan,
                     "status": _status_text(g["status"])})
    s = pd.DataFrame(rows)
    s["noise_sigma"] = s["noise_sigma"].where(s["noise_sigma"] >= 0)
    order = {k: i for i, k in enumerate(SWEEP_ORDER)}
    s = s.assign(_o=s["sweep"].map(order)).sort_values(
        ["source_study", "task", "cell", "_o", "noise_sigma", "x"], kind="stable").drop(columns="_o")
    return s.reset_index(drop=True)


def _fmt(mean, sd, n_ok) -> str:
    if n_ok == 0 or not np.isfinite(mean):
        return "—"
    text = f"{100 * mean:.1f}"
    if np.isfinite(sd):
        text += f" ± {100 * sd:.1f}"
    return text + f" (n={n_ok})"


def write_tables(study: dict, frame: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = study["name"]
    s = summary(frame)
    paths = {"csv": out_dir / f"{name}.csv", "runs": out_dir / f"{name}_runs.csv",
             "md": out_dir / f"{name}.md"}
    s.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["runs"], index=False)
    md = [f"# {name}", ""]
    for key in ("description", "question"):
        if study.get(key):
            md += [f"**{key.capitalize()}:** {str(study[key]).strip()}", ""]
    st = study["settings"]
    md += [f"Settings: {st['max_examples'] or 'all'} test examples per run (a fixed seeded "
           f"subsample), N_sup x {st['n_supervision_multipliers']}, depths "
           f"{[(d['n_latent_steps'], d['n_cycles']) for d in st['depths']]} (n, T), "
           f"K = {st['trajectories']} trajectories at sigma {st['noise_sigma']} "
           f"(noise seed {st['noise_seed']}), ARC votes {st['arc_votes'] or '-'}.", "",
           "Cells: metric in % as mean ± sd over seeds (n = finished runs); gain: percentage "
           "points over the same run's plain evaluation (trained n, T, N_sup; one trajectory; "
           "for votes, one variant). Trajectories: oracle = any of the K right.", ""]
    if frame.empty:
        md += ["_No runs selected._", ""]
    if not frame.empty and "time_s" in frame:
        times = frame[frame["status"] == "ok"].drop_duplicates("run_dir")["time_s"]
        if len(times):
            md += [f"Cost: {times.mean():.1f} s per run on average ({times.min():.1f}-"
                   f"{times.max():.1f} s, {len(times)} runs), all settings in one process.", ""]
    for source, g in s.groupby("source_study", sort=False):
        md += [f"## Source: {source}", ""]
        show = pd.DataFrame({
            "task": g["task"], "cell": g["cell"], "setting": g["setting"], "metric": g["metric"],
            "value %": [_fmt(a, b, n) for a, b, n in zip(g["mean"], g["sd"], g["n_ok"])],
            "gain pp": [f"{v:+.1f}" if np.isfinite(v) else "—" for v in g["gain_pp"]],
            "oracle %": [f"{100 * v:.1f}" if np.isfinite(v) else "" for v in g["oracle_mean"]],
            "status": g["status"],
        })
        md += [show.to_markdown(index=False, disable_numparse=True), ""]
    not_ok = frame[frame["status"] != "ok"].drop_duplicates("run_dir") if not frame.empty else frame
    if len(not_ok):
        md += ["## Runs without results", ""]
        md += [f"- {r['run_dir']}: {r['status']}" + (f" ({r['error']})" if r.get("error") else "")
               for r in not_ok.to_dict("records")]
        md.append("")
    paths["md"].write_text("\n".join(md))
    return paths


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def _sweeps(frame: pd.DataFrame) -> list[str]:
    present = set(frame["sweep"]) if not frame.empty else set()
    return [s for s in SWEEP_ORDER if s in present]


def _draw_series(ax, g: pd.DataFrame, column: str, style, label, linestyle=None, scale=100.0):
    ok = g[g["status"] == "ok"]
    if ok.empty:
        return
    by_x = ok.groupby("x")[column].agg(["mean", "std", "count"]).sort_index()
    xs = by_x.index.to_numpy(dtype=float)
    ax.errorbar(xs, scale * by_x["mean"], yerr=scale * by_x["std"].fillna(0.0), color=style.color,
                marker=style.marker, linestyle=linestyle or style.ls, capsize=2,
                markersize=4, label=label)


def _log2_axis(ax, xs, sweep: str) -> None:
    """Multipliers, K and votes double: a log2 axis. Depth (calls per step) stays linear."""
    xs = sorted({float(x) for x in xs if np.isfinite(x)})
    if sweep != "depth" and len(xs) > 1 and xs[0] > 0 and xs[-1] / xs[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()


def plot_source(study: dict, frame: pd.DataFrame, source: str, out_pdf: Path):
    """One source study: a row of panels per task, one panel per sweep, one line per cell
    (mean ± sd over finished seeds)."""
    f = frame[frame["source_study"] == source] if not frame.empty else frame
    tasks = sorted(set(f["task"])) if not f.empty else []
    sweeps = _sweeps(f)
    with plotting.style():
        import matplotlib.pyplot as plt

        nrows, ncols = max(len(tasks), 1), max(len(sweeps), 1)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), squeeze=False)
        cells = sorted(set(f["cell"])) if not f.empty else []
        # Cells are (model, knob) levels: the knob palette (not the per-model colours).
        styles = plotting.hue_styles(cells)
        handles = {}
        for i, task in enumerate(tasks):
            for j, sweep in enumerate(sweeps):
                ax = axes[i][j]
                g = f[(f["task"] == task) & (f["sweep"] == sweep)]
                if g.empty:
                    ax.set_visible(False)
                    continue
                sigmas = sorted(g["noise_sigma"].dropna().unique()) if sweep == "trajectories" else [None]
                for cell in cells:
                    gc = g[g["cell"] == cell]
                    for k, sigma in enumerate(sigmas):
                        gs = gc if sigma is None else gc[gc["noise_sigma"] == sigma]
                        label = cell if sigma is None or len(sigmas) == 1 else f"{cell}, sigma={sigma:g}"
                        ls = plotting.LINESTYLES[k % len(plotting.LINESTYLES)] if len(sigmas) > 1 else None
                        _draw_series(ax, gs, "value", styles[cell], label, ls)
                        if sweep == "trajectories":
                            _draw_series(ax, gs, "oracle_accuracy", styles[cell], None, "--")
                for h, lbl in zip(*ax.get_legend_handles_labels()):
                    handles.setdefault(lbl, h)
                if not (g["status"] == "ok").any():
                    ax.text(0.5, 0.5, "no finished runs", transform=ax.transAxes, ha="center",
                            fontsize=8, color="0.4")
                _log2_axis(ax, g["x"], sweep)
                ax.set_title(f"{task}: {SWEEP_TITLES[sweep]}" if i == 0 else task, fontsize=8)
                ax.set_ylabel("pass@2 (%)" if sweep == "arc_votes" else "Exact accuracy (%)")
        if not tasks:
            axes[0][0].text(0.5, 0.5, "no runs", transform=axes[0][0].transAxes, ha="center")
        not_ok = f[f["status"] != "ok"].drop_duplicates("run_dir") if not f.empty else f
        notes = [f"{len(not_ok)} run(s) without results: "
                 + ", ".join(sorted(set(not_ok["status"])))] if len(not_ok) else []
        notes.append("Mean ± sd over seeds; same trained weights, no retraining; "
                     f"{study['settings']['max_examples'] or 'all'} test examples per run.")
        return _finish(fig, handles, f"{study['name']}: test-time compute on the runs of {source}",
                       notes, out_pdf)


def _finish(fig, handles: dict, title: str, notes: list[str], out_pdf: Path):
    """Legend to the right, title, footnotes under the axes; save PDF and PNG."""
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="center left",
                   bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.text(0.0, -0.02, "\n".join(notes), fontsize=6.5, va="top", ha="left")
    return plotting.save(fig, out_pdf)


def plot_summary(study: dict, frame: pd.DataFrame, out_pdf: Path):
    """Every sweep in one panel each: gain over plain evaluation (pp), mean over every
    finished run of a task (a run named by two sources counted once), one line per task."""
    f = frame.drop_duplicates(["run_dir", "sweep", "setting"]) if not frame.empty else frame
    sweeps = _sweeps(f)
    with plotting.style():
        fig, axes = plotting.facet_grid(len(sweeps), sharey=False)
        tasks = sorted(set(f["task"])) if not f.empty else []
        styles = plotting.hue_styles(tasks)
        for ax, sweep in zip(axes, sweeps):
            g = f[f["sweep"] == sweep]
            for task in tasks:
                gt = g[g["task"] == task]
                if sweep == "trajectories" and gt["noise_sigma"].nunique() > 1:
                    for k, sigma in enumerate(sorted(gt["noise_sigma"].dropna().unique())):
                        _draw_series(ax, gt[gt["noise_sigma"] == sigma], "gain_pp", styles[task],
                                     f"{task}, sigma={sigma:g}", plotting.LINESTYLES[k % len(plotting.LINESTYLES)], 1.0)
                else:
                    _draw_series(ax, gt, "gain_pp", styles[task], task, None, 1.0)
            ax.axhline(0.0, color="0.5", linewidth=0.8)
            _log2_axis(ax, g["x"], sweep)
            # The summary draws no oracle line.
            ax.set_title(SWEEP_TITLES[sweep].replace(" (dashed: oracle)", ""), fontsize=8)
            ax.set_ylabel("Gain over plain evaluation (pp)")
            if not (g["status"] == "ok").any():
                ax.text(0.5, 0.5, "no finished runs", transform=ax.transAxes, ha="center", fontsize=8)
        if not sweeps:
            axes[0].text(0.5, 0.5, "no runs", transform=axes[0].transAxes, ha="center")
        handles = {}
        for ax in axes:
            for h, lbl in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lbl, h)
        n_ok = f[f["status"] == "ok"]["run_dir"].nunique() if not f.empty else 0
        n_all = f["run_dir"].nunique() if not f.empty else 0
        notes = [f"{n_ok} of {n_all} runs evaluated; mean ± sd over runs (cells and seeds) of "
                 "each task; votes: gain over one voted variant."]
        return _finish(fig, handles, f"{study['name']}: what test-time compute buys, every source",
                       notes, out_pdf)
