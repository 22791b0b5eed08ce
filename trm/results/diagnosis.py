"""Failed seeds diagnosed: for every seed of a study below the success threshold, what its
train.jsonl and metrics.json show, classified by fixed rules so that two readers of the same
log reach the same class.

The rules read only what trm.train.loop logs: per logged step `lm_loss` (else `loss`),
`halted_frac`, `mean_segments` and `train_exact`; the periodic evaluations' exact accuracy;
metrics.json's status and final exact accuracy. A seed gets every class whose rule holds,
listed in this order, and the first is its class:

- diverged / failed: the run's status (metrics.json); its error is the evidence, and the
  rules below are not applied (they read the shape of a finished run's log).
- halted early: the halting head stops most samples after their first segment: on more than
  half the logged steps halted_frac >= 0.8 and mean_segments <= 1.5. Only where halting can
  act (N_sup > 1 and a halting head): without one every slot runs N_sup segments. This is the
  ACT initialisation trap's symptom (a shallow-halt equilibrium the model does not leave).
- label prior: the model predicts the label marginal and nothing of the input: its final cell
  accuracy is within half a point of what the best input-free prediction (each position's
  most common test label) scores, or, where the dataset cannot be read, every logged loss
  is within 2% of the first one.
- late crossing: exact accuracy was still rising at the end: over the last fifth of the
  budget a least-squares line through it rises by at least 1 point (periodic evaluations with
  the final one when three or more fall there, else the logged train_exact). More steps
  would probably take the seed past the threshold.
- loss plateau: the loss fell from its first value (not label prior) but changed by less
  than 5% over the last half of the run (mean of the first against the last third of the
  logged steps there), while exact accuracy stayed below the threshold.
- loss still falling: the loss fell by 5% or more over the last half while exact accuracy
  stayed below the threshold: the seed is still learning the cells and has not yet put
  whole puzzles together (more steps would tell whether it crosses).
- unclassified: none of the above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from trm.results import cells as cell_tools
from trm.results.collect import read_metrics, runs_root
from trm.rundir import TRAIN_LOG
from trm.results.learning import (DEFAULT_METRIC, budget, eval_records, metric_name, percent,
                                  read_train_log, study_cells)


# The rules' constants (see the module docstring).
HALT_FRAC = 0.8
HALT_SEGMENTS = 1.5
HALT_SHARE = 0.5
PRIOR_BAND = 0.02
PRIOR_CELL_GAP = 0.005  # half a point of cell accuracy from the input-free prediction
LATE_FRACTION = 0.2
LATE_RISE = 0.01  # 1 point of exact accuracy (a fraction)
PLATEAU_CHANGE = 0.05
MIN_POINTS = 3  # fewer logged values than this decide nothing

CLASSES = ("diverged", "failed", "halted early", "label prior", "late crossing", "loss plateau",
           "loss still falling", "unclassified")


@dataclass
class Diagnosis:
    classes: list[str]
    evidence: dict = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return self.classes[0]


def _series(log: pd.DataFrame, column: str) -> pd.DataFrame:
    """(step, value) of the training records that logged `column`, by step."""
    if log.empty or column not in log.columns:
        return pd.DataFrame({"step": pd.Series(dtype=float), "value": pd.Series(dtype=float)})
    out = log[["step", column]].apply(pd.to_numeric, errors="coerce").dropna()
    return out.rename(columns={column: "value"}).sort_values("step", kind="stable").reset_index(drop=True)


def _loss(log: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    for column in ("lm_loss", "loss"):
        s = _series(log, column)
        s = s[np.isfinite(s["value"])]
        if len(s):
            return column, s.reset_index(drop=True)
    return "", _series(log, "lm_loss")


def _halting_acts(metrics: dict | None) -> bool:
    model = ((metrics or {}).get("spec") or {}).get("model") or {}
    n_sup = model.get("n_supervision")
    halting = model.get("halting")
    # Without a recorded spec the rule is still applied: the numbers speak for themselves
    # unless the run is known to run every segment.
    return not (n_sup is not None and int(n_sup) <= 1) and halting != "none"


def halted_early(log: pd.DataFrame, metrics: dict | None) -> tuple[bool, dict]:
    frac, seg = _series(log, "halted_frac"), _series(log, "mean_segments")
    both = frac.merge(seg, on="step", suffixes=("_frac", "_seg"))
    if len(both) < MIN_POINTS:
        return False, {}
    early = (both["value_frac"] >= HALT_FRAC) & (both["value_seg"] <= HALT_SEGMENTS)
    ev = {"halted_frac_mean": float(both["value_frac"].mean()),
          "mean_segments_mean": float(both["value_seg"].mean()),
          "early_halt_steps": int(early.sum()), "logged_steps": int(len(both))}
    return bool(_halting_acts(metrics) and early.mean() > HALT_SHARE), ev


def prior_cell_accuracy(data_dir: Path) -> float | None:
    """Token accuracy of the best prediction that ignores the input: each position's most
    common label over the test split (ignored labels left out); None without the dataset."""
    from trm.data.dataset import load_split

    try:
        split = load_split(Path(data_dir), "test", mmap=True)
    except (OSError, ValueError, KeyError):
        return None
    labels = np.asarray(split.labels)
    ignore = int(split.meta.get("ignore_label_id") or 0)
    counts = np.stack([(labels == v).sum(0) for v in np.unique(labels) if v != ignore])
    total = counts.sum()
    return float(counts.max(0).sum() / total) if total else None


def label_prior(loss: pd.DataFrame, cell_accuracy: float | None = None,
                prior: float | None = None) -> tuple[bool, dict]:
    if cell_accuracy is not None and prior is not None:
        gap = abs(cell_accuracy - prior)
        return gap <= PRIOR_CELL_GAP, {"cell_accuracy": cell_accuracy, "prior_cell_accuracy": prior}
    if len(loss) < MIN_POINTS:
        return False, {}
    first = float(loss["value"].iloc[0])
    spread = float((loss["value"] - first).abs().max() / abs(first)) if first else math.inf
    return spread <= PRIOR_BAND, {"loss_first": first, "loss_last": float(loss["value"].iloc[-1]),
                                  "loss_max_dev": spread}


def _rise(points: pd.DataFrame) -> float:
    """Least-squares rise of `value` across the points' step span."""
    x, y = points["step"].to_numpy(float), points["value"].to_numpy(float)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0.0
    slope = np.polyfit(x, y, 1)[0]
    return float(slope * np.ptp(x))


def late_crossing(log: pd.DataFrame, metrics: dict | None, end: int,
                  metric: str = DEFAULT_METRIC) -> tuple[bool, dict]:
    start = (1 - LATE_FRACTION) * end
    ev = eval_records(log, metric).rename(columns={"exact": "value"})
    final = (metrics or {}).get(metric)
    if final is not None:
        ev = pd.concat([ev, pd.DataFrame({"step": [int(metrics.get("steps") or end)],
                                          "value": [float(final)]})], ignore_index=True)
    late, source = ev[ev["step"] >= start], "periodic evaluation"
    if len(late) < MIN_POINTS:
        late, source = _series(log, "train_exact"), "train_exact"
        late = late[late["step"] >= start]
    if len(late) < MIN_POINTS:
        return False, {}
    rise = _rise(late)
    return rise >= LATE_RISE, {"late_rise": rise, "late_source": source}


def loss_plateau(loss: pd.DataFrame, end: int) -> tuple[bool, dict]:
    second = loss[loss["step"] > end / 2]
    if len(second) < MIN_POINTS:
        return False, {}
    k = max(1, len(second) // 3)
    before, after = second["value"].iloc[:k].mean(), second["value"].iloc[-k:].mean()
    change = float((before - after) / abs(before)) if before else math.inf
    return abs(change) < PLATEAU_CHANGE, {"last_half_change": change}


def diagnose(log: pd.DataFrame, metrics: dict | None, status: str | None = None,
             metric: str = DEFAULT_METRIC, prior: float | None = None) -> Diagnosis:
    """The classes the run's log shows (see the module docstring), first the primary one;
    `status` defaults to metrics.json's, `metric` is the accuracy the seed failed on, `prior`
    the cell accuracy of the input-free prediction on its test split (prior_cell_accuracy)."""
    status = status or str((metrics or {}).get("status") or "ok")
    end = budget(metrics, log)
    classes, evidence = [], {}
    if status in ("diverged", "failed"):
        classes.append(status)
        error = (metrics or {}).get("error")
        if error:
            evidence["error"] = str(error)[:120]
        if (metrics or {}).get("diverged_at_step") is not None:
            evidence["diverged_at_step"] = int(metrics["diverged_at_step"])
    name, loss = _loss(log)
    if classes:  # the status says what happened; the shape rules read finished runs only
        if len(loss):
            evidence.update(loss_name=name, loss_first=float(loss["value"].iloc[0]),
                            loss_last=float(loss["value"].iloc[-1]), loss_max_dev=math.inf)
        return Diagnosis(classes, evidence)
    halted, ev = halted_early(log, metrics)
    if _halting_acts(metrics):  # without a halting head that can act, the numbers say nothing
        evidence.update(ev)
    cell = (metrics or {}).get("cell_accuracy")
    prior, ev = label_prior(loss, None if cell is None else float(cell), prior)
    evidence.update(ev)
    late, ev = late_crossing(log, metrics, end, metric)
    evidence.update(ev)
    plateau, ev = loss_plateau(loss, end) if not prior else (False, {})
    evidence.update(ev)
    falling = (not prior and not plateau
               and evidence.get("last_half_change", -math.inf) >= PLATEAU_CHANGE)
    for cls, holds in (("halted early", halted), ("label prior", prior),
                       ("late crossing", late), ("loss plateau", plateau),
                       ("loss still falling", falling)):
        if holds:
            classes.append(cls)
    if name:
        evidence["loss_name"] = name
    final = (metrics or {}).get(metric)
    if final is not None:
        evidence["final_exact"] = float(final)
    best = eval_records(log, metric)["exact"]
    if len(best):
        evidence["best_periodic_exact"] = float(best.max())
    return Diagnosis(classes or ["unclassified"], evidence)


# --------------------------------------------------------------------------------------
# A study's failed seeds
# --------------------------------------------------------------------------------------


def failed_seeds(study: dict, runs: pd.DataFrame, threshold: float,
                 root: Path | None = None, metric: str = DEFAULT_METRIC) -> list[dict]:
    """Every seed of the study below `threshold` (a fraction of `metric`), diverged or failed,
    with its diagnosis; missing runs are not seeds that failed and are left to the tables."""
    root = runs_root(runs, root)
    out, priors = [], {}
    for row, members, label in study_cells(study, runs).cells:
        for run in members.sort_values("seed", kind="stable").to_dict("records"):
            status = str(run["status"])
            if status == "missing":
                continue
            value = pd.to_numeric(pd.Series([run.get(metric)]), errors="coerce").iloc[0]
            if status == "ok" and np.isfinite(value) and value >= threshold - 1e-12:
                continue
            run_dir = root / str(run["run_dir"])
            metrics, _ = read_metrics(run_dir)
            data_dir = _data_dir(root, metrics)
            if data_dir is not None and data_dir not in priors:
                priors[data_dir] = prior_cell_accuracy(data_dir)
            d = diagnose(read_train_log(run_dir / TRAIN_LOG), metrics, status, metric,
                         priors.get(data_dir))
            out.append({"task": str(row["task"]), "cell": label,
                        "seed": int(cell_tools.normalize(run["seed"])), "status": status,
                        "classes": d.classes, "evidence": d.evidence})
    return out


def _data_dir(root: Path, metrics: dict | None) -> Path | None:
    """Where the workflow built the run's dataset (trm.data.location)."""
    from trm import config
    from trm.data.location import default_data_dir

    try:
        spec = config.from_dict(config.RunSpec, (metrics or {}).get("spec") or {})
    except (config.SpecError, TypeError, ValueError):
        return None
    return default_data_dir(spec, Path(root))


def _pct1(x) -> str:
    return f"{100 * x:.1f}%"


def evidence_text(ev: dict, metric: str = DEFAULT_METRIC) -> str:
    """The evidence numbers of one diagnosis, in words."""
    parts = []
    if "error" in ev:
        parts.append(f"error: {ev['error']}")
    if "diverged_at_step" in ev:
        parts.append(f"diverged at step {ev['diverged_at_step']}")
    if "final_exact" in ev:
        best = f", best periodic {_pct1(ev['best_periodic_exact'])}" if "best_periodic_exact" in ev else ""
        parts.append(f"final {metric_name(metric)} {_pct1(ev['final_exact'])}{best}")
    if "loss_first" in ev:
        flat = (f" (within {100 * ev['loss_max_dev']:.1f}% of the first throughout)"
                if ev["loss_max_dev"] <= 5 * PRIOR_BAND else "")
        parts.append(f"{ev.get('loss_name', 'loss')} {ev['loss_first']:.3g} → {ev['loss_last']:.3g}{flat}")
    if "prior_cell_accuracy" in ev:
        parts.append(f"cell accuracy {_pct1(ev['cell_accuracy'])} against "
                     f"{_pct1(ev['prior_cell_accuracy'])} for the input-free prediction")
    if "last_half_change" in ev:
        parts.append(f"loss fell {100 * ev['last_half_change']:.1f}% over the last half")
    if "logged_steps" in ev:
        parts.append(f"halted after ≤ {HALT_SEGMENTS:g} segments on {ev['early_halt_steps']}/"
                     f"{ev['logged_steps']} logged steps (mean halted_frac "
                     f"{ev['halted_frac_mean']:.2f}, mean segments {ev['mean_segments_mean']:.2f})")
    if "late_rise" in ev:
        parts.append(f"{metric_name(metric)} over the last fifth {100 * ev['late_rise']:+.1f} pp "
                     f"({ev['late_source']})")
    return "; ".join(parts) or "no log"


RULES = (
    "Classes (trm/results/diagnosis.py), every one that holds, the first in bold: "
    f"*diverged*/*failed* from the run's status; *halted early*: on more than half the logged "
    f"steps halted_frac ≥ {HALT_FRAC:g} and mean segments ≤ {HALT_SEGMENTS:g} (N_sup > 1 with a "
    f"halting head); *label prior*: final cell accuracy within {100 * PRIOR_CELL_GAP:g} point of "
    f"the input-free prediction's (each position's most common test label; without the dataset: "
    f"every logged loss within {100 * PRIOR_BAND:g}% of the first); "
    f"*late crossing*: exact accuracy rose ≥ {100 * LATE_RISE:g} point over the last fifth "
    f"(least-squares); *loss plateau*: loss fell from its first value but changed < "
    f"{100 * PLATEAU_CHANGE:g}% over the last half; *loss still falling*: it fell by "
    f"{100 * PLATEAU_CHANGE:g}% or more over the last half; *unclassified*: none of these."
)


def section(failed: list[dict], threshold: float, metric: str = DEFAULT_METRIC) -> str:
    """The study report's 'Failed seeds' section (Markdown); `threshold` a fraction."""
    thr = f"{percent(threshold)} {metric_name(metric)}"
    lines = ["## Failed seeds", ""]
    if not failed:
        lines += [f"Every finished seed reached {thr}; none diverged or failed.", ""]
        return "\n".join(lines) + "\n"
    counts: dict[str, int] = {}
    for f in failed:
        counts[f["classes"][0]] = counts.get(f["classes"][0], 0) + 1
    tally = ", ".join(f"{counts[c]} {c}" for c in CLASSES if c in counts)
    lines += [f"{len(failed)} seed(s) below {thr}, diverged or failed: {tally}.",
              "", RULES, ""]
    table = pd.DataFrame([{
        "Task": f["task"], "Cell": f["cell"], "Seed": f["seed"],
        "Class": ", ".join([f"**{f['classes'][0]}**", *f["classes"][1:]]),
        "Evidence": evidence_text(f["evidence"], metric),
    } for f in failed])
    lines += [table.to_markdown(index=False), ""]
    return "\n".join(lines) + "\n"
