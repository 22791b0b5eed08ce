"""Learning speed as an outcome: the optimizer step at which each seed first reaches the success
threshold on its periodic evaluation, per cell the fraction of seeds that have crossed by each
step, per contrast a log-rank test of the crossing steps.

A seed *crosses* at the first periodic evaluation (train.jsonl records with
`eval_<metric>`, written every train.eval_interval steps) whose accuracy reaches the scale's
success threshold (the two-part reading's, trm.results.twopart; 5% without one); the metric is
the study's headline accuracy, exact accuracy unless its figure names another. The run's final
evaluation (metrics.json) is its last observation, at its final step. A seed that never
crosses is right-censored at its budget (total_steps): the time axis ends there for every
seed, so a run that diverged or failed before crossing has not crossed by any step of the
budget and is censored there too. The step is the first *evaluated*
step at or after the true crossing, so its resolution is the evaluation interval.

The fraction crossed is the Kaplan-Meier estimate (scipy.stats.ecdf on right-censored data);
with every seed censored at the same budget it equals the plain fraction of seeds crossed at
each step. Contrasts are the study tables' own (trm.results.tables.contrasts), tested with
scipy.stats.logrank and Holm-corrected across the study.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from trm.results import cells as cell_tools
from trm.results import stats
from trm.results.collect import read_metrics, runs_root
from trm.rundir import TRAIN_LOG

DEFAULT_METRIC = "exact_accuracy"
DEFAULT_SUCCESS_THRESHOLD = 0.05  # 5% of the metric (a fraction), when the scale sets none
# Accuracies are fractions of n examples; a fraction equal to the threshold must count as
# reaching it whatever the rounding of k / n.
_TOLERANCE = 1e-12


def speed_metric(study: dict, runs: pd.DataFrame) -> str:
    """The metric whose crossing is timed: the study's headline metric when it is an accuracy
    (trm.train.loop logs each periodic evaluation's accuracies as eval_<metric>), else exact
    accuracy."""
    from trm.results.tables import headline_metric

    metric = headline_metric(study, runs)
    return metric if cell_tools.is_accuracy(metric) else DEFAULT_METRIC


def success_threshold(scale: str | None, metric: str = DEFAULT_METRIC) -> float:
    """The scale's success threshold for `metric` as a fraction (the two-part reading's, from
    `success_threshold` in the scale file), else DEFAULT_SUCCESS_THRESHOLD."""
    from trm.results.twopart import scale_threshold

    value = scale_threshold(str(scale), metric) if scale else None
    return DEFAULT_SUCCESS_THRESHOLD if value is None else float(value)


def percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def metric_name(metric: str) -> str:
    return "exact" if metric == DEFAULT_METRIC else metric.replace("_", " ")


def read_train_log(path: Path) -> pd.DataFrame:
    """train.jsonl -> one row per readable record with a step (training and evaluation
    records alike; a line cut by a kill is skipped)."""
    from trm.results.figures import read_train_log as read

    return read(path)


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------


@dataclass
class Crossing:
    """One seed's crossing: `step` is the crossing step when `crossed`, else the budget at
    which it is censored. `evals` counts its periodic evaluations."""

    seed: int
    step: int
    crossed: bool
    evals: int
    status: str
    final_exact: float = math.nan  # the metric's final value; NaN without a final evaluation
    budget: int = 0  # the run's step budget (where a seed that never crosses is censored)


def eval_records(log: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """The periodic evaluations of `metric` in a train log: (step, exact) sorted by step."""
    key = f"eval_{metric}"
    if log.empty or key not in log.columns:
        return pd.DataFrame({"step": pd.Series(dtype=int), "exact": pd.Series(dtype=float)})
    ev = log[["step", key]].apply(pd.to_numeric, errors="coerce").dropna()
    ev = ev.rename(columns={key: "exact"}).sort_values("step", kind="stable")
    return ev.astype({"step": int}).reset_index(drop=True)


def budget(metrics: dict | None, log: pd.DataFrame) -> int:
    """The run's step budget: total_steps from metrics.json, else its steps, else the last
    logged step."""
    for key in ("total_steps", "steps"):
        value = (metrics or {}).get(key)
        if value is not None:
            return int(value)
    return int(pd.to_numeric(log["step"], errors="coerce").max()) if not log.empty else 0


def run_crossing(log: pd.DataFrame, metrics: dict | None, threshold: float,
                 seed: int = 0, status: str = "ok", metric: str = DEFAULT_METRIC) -> Crossing | None:
    """The seed's crossing of `threshold` (a fraction of `metric`), or None when its log has no
    periodic evaluation of the metric (its learning speed cannot be read)."""
    ev = eval_records(log, metric)
    if ev.empty:
        return None
    end = budget(metrics, log)
    # Only a finished run's final evaluation is an observation (a diverged run has none).
    final = (metrics or {}).get(metric) if status == "ok" else None
    final = math.nan if final is None else float(final)
    observations = list(zip(ev["step"], ev["exact"]))
    if np.isfinite(final):
        observations.append((int((metrics or {}).get("steps") or end), final))
    for step, exact in observations:
        if exact >= threshold - _TOLERANCE:
            return Crossing(seed, int(step), True, len(ev), status, final, end)
    return Crossing(seed, end, False, len(ev), status, final, end)


# --------------------------------------------------------------------------------------
# Cells and contrasts
# --------------------------------------------------------------------------------------


def km_crossed(crossings: list[Crossing]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, fraction crossed by each step): the Kaplan-Meier estimate as a step function
    starting at (0, 0) and ending at the last crossing or censoring step."""
    if not crossings:
        return np.array([0.0]), np.array([0.0])
    cdf = sps.ecdf(_censored(crossings)).cdf
    steps = np.concatenate([[0.0], cdf.quantiles])
    fraction = np.concatenate([[0.0], cdf.probabilities])
    return steps, fraction


def median_step(crossings: list[Crossing]) -> float:
    """The first step by which half the seeds have crossed (Kaplan-Meier); NaN when fewer than
    half ever do ('not reached')."""
    if not crossings:
        return math.nan
    steps, fraction = km_crossed(crossings)
    reached = np.flatnonzero(fraction >= 0.5 - _TOLERANCE)
    return float(steps[reached[0]]) if len(reached) else math.nan


def _censored(crossings: list[Crossing]) -> sps.CensoredData:
    return sps.CensoredData.right_censored([c.step for c in crossings],
                                           [not c.crossed for c in crossings])


@dataclass
class LogRank:
    statistic: float  # signed z: positive when A crosses sooner than expected under the null
    p_value: float
    note: str = ""


def logrank(a: list[Crossing], b: list[Crossing]) -> LogRank:
    """Two-sided log-rank test of two cells' crossing steps (scipy.stats.logrank)."""
    if not a or not b:
        return LogRank(math.nan, math.nan, "no seed with a periodic evaluation on one side")
    if not any(c.crossed for c in a + b):
        return LogRank(math.nan, math.nan, "no seed crossed in either cell")
    with np.errstate(invalid="ignore", divide="ignore"):
        res = sps.logrank(_censored(a), _censored(b))
    if not np.isfinite(res.pvalue):  # zero variance: every seed at risk crossed at one step
        return LogRank(math.nan, math.nan, "every crossing at the same step")
    # scipy's z counts A's events beyond expectation: more events means A crosses sooner.
    return LogRank(float(res.statistic), float(res.pvalue))


@dataclass
class Cell:
    task: str
    label: str
    model: str
    crossings: list[Crossing] = field(default_factory=list)
    no_eval: list[str] = field(default_factory=list)  # seeds whose log has no periodic eval

    @property
    def crossed(self) -> int:
        return sum(c.crossed for c in self.crossings)

    @property
    def median(self) -> float:
        return median_step(self.crossings)


@dataclass
class LearningSpeed:
    study: str
    metric: str
    threshold: float  # a fraction of the metric
    cells: list[Cell]
    tests: pd.DataFrame

    @property
    def any_eval(self) -> bool:
        return any(c.crossings for c in self.cells)


def cell_crossings(rows: pd.DataFrame, root: Path, threshold: float,
                   metric: str = DEFAULT_METRIC) -> tuple[list, list]:
    """(crossings, seeds without a periodic evaluation) of a cell's runs; missing runs (no
    run directory output yet) are left out, as the tables' status column already shows them."""
    crossings, no_eval = [], []
    for run in rows.sort_values("seed", kind="stable").to_dict("records"):
        if run["status"] == "missing":
            continue
        run_dir = root / str(run["run_dir"])
        metrics, _ = read_metrics(run_dir)
        seed = int(cell_tools.normalize(run["seed"]))
        c = run_crossing(read_train_log(run_dir / TRAIN_LOG), metrics, threshold,
                         seed=seed, status=str(run["status"]), metric=metric)
        if c is None:
            no_eval.append(f"{seed} ({run['status']})")
        else:
            crossings.append(c)
    return crossings, no_eval


TEST_COLUMNS = ["task", "factor", "a", "b", "a_crossed", "a_n", "b_crossed", "b_n",
                "a_median_step", "b_median_step", "logrank_z", "p", "p_holm", "note"]


@dataclass
class StudyCells:
    """A study's cells in its tables' order, each with its runs and label, and the study
    tables' contrasts between them ((i, j, factor label) over `cells`)."""

    cells: list[tuple[pd.Series, pd.DataFrame, str]]  # (summary row, member runs, label)
    contrasts: list[tuple[int, int, str]]


def study_cells(study: dict, runs: pd.DataFrame) -> StudyCells:
    """The cells and contrasts exactly as trm.results.tables enumerates them."""
    from trm.results import tables

    s = tables.study_runs(study, runs)
    summary = tables.summary_table(study, runs)
    cells = [(row, tables._members(s.rows, row), cell_tools.cell_label(row, s.shown)) for _, row in summary.iterrows()]
    factors = cell_tools.study_factors(s.study, s.knobs)
    values = [tables._factor_values(s.raw, summary.iloc[i], s.knobs) for i in range(len(summary))]
    pairs = [(i, j, cell_tools.factor_label(factors[f])) for i, j, f in tables.contrasts(values, factors)]
    return StudyCells(cells, pairs)


def learning_speed(study: dict, runs: pd.DataFrame, threshold: float,
                   root: Path | None = None, metric: str | None = None) -> LearningSpeed:
    """Every cell's crossings of `threshold` (a fraction of `metric`, by default
    speed_metric's) and every contrast's log-rank test."""
    root = runs_root(runs, root)
    metric = metric or speed_metric(study, runs)
    sc = study_cells(study, runs)
    cells = []
    for row, members, label in sc.cells:
        crossings, no_eval = cell_crossings(members, root, threshold, metric)
        cells.append(Cell(str(row["task"]), label, str(row["model"]), crossings, no_eval))
    out = []
    for i, j, factor in sc.contrasts:
        a, b = cells[i], cells[j]
        test = logrank(a.crossings, b.crossings)
        out.append({"task": a.task, "factor": factor, "a": a.label,
                    "b": b.label, "a_crossed": a.crossed, "a_n": len(a.crossings),
                    "b_crossed": b.crossed, "b_n": len(b.crossings),
                    "a_median_step": a.median, "b_median_step": b.median,
                    "logrank_z": test.statistic, "p": test.p_value, "note": test.note})
    tests = pd.DataFrame(out, columns=TEST_COLUMNS)
    if not tests.empty:
        tests["p_holm"] = stats.holm(tests["p"].to_numpy(dtype=float))
    return LearningSpeed(str(study["name"]), metric, threshold, cells, tests)


# --------------------------------------------------------------------------------------
# Report and figure
# --------------------------------------------------------------------------------------


def _fmt_step(x: float) -> str:
    return "not reached" if not np.isfinite(x) else f"{x:.0f}"


def _fmt_p(x: float) -> str:
    return "—" if not np.isfinite(x) else (f"{x:.2g}" if x >= 1e-4 else "<1e-4")


def _seed_steps(cell: Cell) -> str:
    parts = [f"{c.seed}: {c.step}" if c.crossed else f"{c.seed}: >{c.step}" for c in cell.crossings]
    parts += [f"{s}: no periodic evaluation" for s in cell.no_eval]
    return ", ".join(parts) or "—"


def figure_path(figure_pdf: Path | str) -> Path:
    """Where a study's learning-speed figure goes, beside its figure: <study>.learning_speed.pdf
    (a dot, which no study or extra-figure wildcard matches)."""
    p = Path(figure_pdf)
    return p.with_name(f"{p.stem}.learning_speed.pdf")


def section(result: LearningSpeed, figure: str = "") -> str:
    """The study report's 'Learning speed' section (Markdown)."""
    thr = f"{percent(result.threshold)} {metric_name(result.metric)}"
    lines = ["## Learning speed", ""]
    if not result.any_eval:
        lines += [f"No periodic evaluation logged (train.eval_interval is 0 for these runs), so the "
                  f"step at which each seed reaches {thr} cannot be read.", ""]
        return "\n".join(lines) + "\n"
    lines += [
        f"A seed *crosses* at the first periodic evaluation (or its final evaluation) at "
        f"≥ {thr} (the scale's success threshold); the step is the first evaluated step "
        f"at or after the crossing, so it is exact to the evaluation interval. A seed that never "
        f"crosses is censored at its budget ('>N'); diverged or failed seeds that had not crossed "
        f"count as not crossed. *Median step*: the step by which half the seeds had crossed "
        f"(Kaplan-Meier), 'not reached' when fewer than half did. Contrasts: two-sided log-rank "
        f"test of the crossing steps (scipy.stats.logrank; z > 0: A crosses sooner), "
        f"Holm-corrected across the study. A cell that crosses sooner at equal final accuracy "
        f"learns faster.",
        "",
    ]
    cells = pd.DataFrame(
        [{"Task": c.task, "Cell": c.label,
          "Crossed": f"{c.crossed}/{len(c.crossings)}" if c.crossings else "—",
          "Median step": _fmt_step(c.median) if c.crossings else "—",
          "Seeds (crossing step)": _seed_steps(c)} for c in result.cells])
    lines += [cells.to_markdown(index=False) if not cells.empty else "_(no cells)_", ""]
    t = result.tests
    if t.empty:
        lines += ["_(no pairs of cells differ in exactly one factor)_", ""]
    else:
        view = pd.DataFrame({
            "Task": t["task"], "Factor": t["factor"], "A": t["a"], "B": t["b"],
            "Crossed A": [f"{k}/{n}" for k, n in zip(t["a_crossed"], t["a_n"])],
            "Crossed B": [f"{k}/{n}" for k, n in zip(t["b_crossed"], t["b_n"])],
            "Median A": [_fmt_step(m) if n else "—" for m, n in zip(t["a_median_step"], t["a_n"])],
            "Median B": [_fmt_step(m) if n else "—" for m, n in zip(t["b_median_step"], t["b_n"])],
            "Log-rank z": [f"{z:+.2f}" if np.isfinite(z) else "—" for z in t["logrank_z"]],
            "p": t["p"].map(_fmt_p), "p (Holm)": t["p_holm"].map(_fmt_p),
            "Note": t["note"].fillna(""),
        })
        lines += [view.to_markdown(index=False), ""]
    if figure:
        lines += [f"Figure: `{figure}` (fraction of seeds crossed against the optimizer step, one "
                  f"line per cell).", ""]
    return "\n".join(lines) + "\n"


def plot(result: LearningSpeed, out_pdf: Path) -> tuple[Path, Path]:
    """One panel per task, one step line per cell: the fraction of its seeds that have crossed
    the threshold by each optimizer step (Kaplan-Meier); a cell without periodic evaluations
    is listed under the figure."""
    from trm.results import plotting

    tasks = list(dict.fromkeys(c.task for c in result.cells))
    thr = f"{percent(result.threshold)} {metric_name(result.metric)}"
    footnotes = [f"A seed crosses at its first evaluation at ≥ {thr}; seeds that never cross are "
                 f"censored at their budget."]
    with plotting.style():
        fig, axes = plotting.facet_grid(len(tasks), sharey=True)
        handles_by_label: dict = {}
        for ax, task in zip(axes, tasks):
            mine = [c for c in result.cells if c.task == task]
            style = plotting.hue_styles([c.label for c in mine], {c.label: c.model for c in mine})
            for c in mine:
                if not c.crossings:
                    why = "no periodic evaluation logged" if c.no_eval else "no runs (missing)"
                    footnotes.append(f"{task}: {c.label}: {why}")
                    continue
                steps, fraction = km_crossed(c.crossings)
                end = max(max(x.budget, x.step) for x in c.crossings)
                xs, ys = np.append(steps, end), np.append(fraction, fraction[-1])
                st = style[c.label]
                (line,) = ax.step(xs, 100 * ys, where="post", color=st.color, ls=st.ls, lw=1.5,
                                  label=f"{c.label} ({c.crossed}/{len(c.crossings)})")
                handles_by_label.setdefault(line.get_label(), line)
            if not any(c.crossings for c in mine):
                ax.text(0.5, 0.5, "no periodic evaluation logged", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="0.3")
            ax.set_ylim(-3, 103)
            ax.set_xlabel("Optimizer step")
            ax.set_ylabel(f"Seeds past {thr} (%)")
            ax.set_title(str(task))
        plotting.finish(fig, list(handles_by_label.values()), f"{result.study}: learning speed", footnotes)
        return plotting.save(fig, out_pdf)
