"""Glue between the Snakemake rules and the results package: every table and figure is
derived from the tidy runs table, rebuilt from the runs' own files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trm.results.collect import collect_runs, write_runs_table
from trm.results.figures import (
    plot_accuracy_vs_compute,
    plot_learning_curves,
    plot_study,
    plot_test_time_depth,
)
from trm.results.reference import write_reference_table
from trm.results.tables import WIDE_SD, wide_cells, write_study_tables


def runs_frame(manifest_rows: list[dict], scale: str, root: Path = Path(".")) -> pd.DataFrame:
    manifest = pd.DataFrame(manifest_rows)
    manifest.insert(3, "scale", scale)
    return collect_runs(manifest, root)


def runs_table(manifest_rows: list[dict], scale: str, out: Path) -> Path:
    return write_runs_table(runs_frame(manifest_rows, scale), out)


def study_tables(study: dict, manifest_rows: list[dict], scale: str, out_dir: Path):
    runs = runs_frame(manifest_rows, scale)
    paths = write_study_tables(study, runs, out_dir)
    from trm.results import difficulty

    paths["difficulty"] = difficulty.write_table(study, runs,
                                                 Path(out_dir) / f"{study['name']}.difficulty.csv")
    section = resolution_section(study, scale, Path(paths["tests"]), spread_summary(wide_cells(study, runs)))
    with open(paths["md"], "a") as f:
        f.write("\n" + section)  # a blank line: the section must not run into the table above
        f.write("\n" + outcome_sections(study, runs, scale, Path(out_dir).parent / "figures"))
    return paths


def outcome_sections(study: dict, runs: pd.DataFrame, scale: str, figures_dir: Path) -> str:
    """The study report's 'Learning speed' (trm/results/learning.py) and 'Failed seeds'
    (trm/results/diagnosis.py) sections, at the scale's success threshold."""
    from trm.results import diagnosis, learning

    metric = learning.speed_metric(study, runs)
    threshold = learning.success_threshold(scale, metric)
    speed = learning.learning_speed(study, runs, threshold, metric=metric)
    figure = learning.figure_path(Path(figures_dir) / f"{study['name']}.pdf")
    failed = diagnosis.failed_seeds(study, runs, threshold, metric=metric)
    return learning.section(speed, str(figure)) + "\n" + diagnosis.section(failed, threshold, metric)


def learning_speed_figure(study: dict, runs: pd.DataFrame, scale: str, study_pdf: Path):
    """<study>.learning_speed.pdf/png beside the study's figure (learning.figure_path)."""
    from trm.results import learning

    metric = learning.speed_metric(study, runs)
    speed = learning.learning_speed(study, runs, learning.success_threshold(scale, metric), metric=metric)
    return learning.plot(speed, learning.figure_path(study_pdf))


def _finite(x) -> bool:
    try:
        return x == x and x is not None and abs(float(x)) != float("inf")
    except (TypeError, ValueError):
        return False


def _fmt_p(x) -> str:
    return f"{float(x):.3g}" if _finite(x) else "n/a"


def resolution_section(study: dict, scale: str, tests_csv: Path, spread: str = "") -> str:
    """Which of the study's contrasts this scale resolved (Holm-corrected p < 0.05), and the
    study's own note on what the scale can and cannot show; `spread` (spread_summary) follows
    the power line."""
    lines = [f"## What the `{scale}` scale resolves", ""]
    note = (study.get("notes") or {}).get(scale)
    if note:
        lines += [str(note).strip(), ""]
    try:
        tests = pd.read_csv(tests_csv)
    except (pd.errors.EmptyDataError, FileNotFoundError):
        tests = pd.DataFrame()
    if tests.empty or "significant" not in tests:
        lines += ["No comparisons could be made (too few finished runs).", ""]
        return "\n".join(lines) + "\n"
    lines += [
        "A contrast is *resolved* when it is significant both on the paired test puzzles "
        "(Holm-corrected) and across seeds (paired by seed, Holm-corrected); *paired only* "
        "means these trained models differ on these puzzles, but seed-to-seed spread could "
        "explain it. A contrast with a cell on its transition (seeds on both sides of the "
        "scale's success threshold) is read in two parts instead, and resolved when the "
        "two-part test is (Holm); the Decisions section above gives each contrast's reading.",
        "",
    ]
    for _, t in tests.iterrows():
        paired = bool(t["significant"])
        across = _finite(t.get("seed_p_holm")) and float(t["seed_p_holm"]) < 0.05
        verdict = "resolved" if paired and across else "paired only" if paired else "not resolved"
        if t.get("reading") == "two-part":
            verdict = ("resolved" if bool(t["resolved"]) else "not resolved") + " (two-part reading)"
        mde = t.get("mde")
        kind = "paired by seed" if t.get("seed_test") == "paired_t" else "Welch"
        lines.append(f"- {t['task']}: {t['a']} vs {t['b']} ({t['factor']}): {verdict} "
                     f"(diff {100 * t['diff']:+.1f} pp, paired Holm p = {t['p_holm']:.3g}, "
                     f"across seeds ({kind}) Holm p = {_fmt_p(t.get('seed_p_holm'))}, "
                     f"MDE {_fmt_pp(mde)})")
    lines += ["", power_summary(tests)]
    if spread:
        lines += ["", spread]
    return "\n".join(lines) + "\n"


def spread_summary(cells: list[dict]) -> str:
    """The cells whose seeds spread widely (tables.wide_cells), each with its seeds, so that a
    large MDE can be traced to the cell behind it."""
    if not cells:
        return ""
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = [f"**Wide cells:** these cells' seeds spread by more than {100 * WIDE_SD:.0f} pp (sd); "
             "every contrast with one of them inherits that spread. Seeds split between the floor "
             "and the rest mark a cell on its learning curve's transition at this budget; its "
             "contrasts need more seeds (`plan-seeds`) or a budget that takes every seed past it.", ""]
    for c in cells:
        seeds = ", ".join(f"seed {k}: {pct(v)}" for k, v in c["seeds"].items())
        lines.append(f"- {c['task']}: {c['cell']}: sd {pct(c['sd'])} pp ({seeds})")
    return "\n".join(lines)


def _fmt_pp(x) -> str:
    return f"{100 * float(x):.1f} pp" if _finite(x) else "n/a (fewer than 2 seeds)"


def power_summary(tests: pd.DataFrame) -> str:
    """One line: how large an effect this study's across-seed tests could detect."""
    mde = pd.to_numeric(tests.get("mde"), errors="coerce") if "mde" in tests else pd.Series(dtype=float)
    finite = mde[np.isfinite(mde)] if len(mde) else mde
    if finite.empty:
        return "**Power:** no contrast has two or more finished seeds on both sides."
    worst = tests.loc[finite.idxmax()]
    if worst.get("seed_test") == "paired_t":
        seeds = f"{int(worst['seed_n'])} seed pairs"
    else:
        seeds = f"{int(min(worst['a_n'], worst['b_n']))} seeds a side"
    return (f"**Power:** at 80% power (across seeds, alpha 0.05) the contrasts of this study could "
            f"detect differences of {100 * finite.min():.1f} to {100 * finite.max():.1f} pp "
            f"(median {100 * finite.median():.1f}); the least sensitive is {worst['a']} vs "
            f"{worst['b']} ({seeds}). Seeds needed for a given effect: "
            f"`python -m trm plan-seeds --study <name> --effect <pp>`.")


def study_figure(study: dict, manifest_rows: list[dict], scale: str, out_pdf: Path,
                 extra: str | None = None):
    """The study's figure, or with `extra` one of its `extra_figures` views."""
    if extra is not None:
        view = dict(study["extra_figures"][extra])
        view.setdefault("title", f"{study['name']}: {extra}")
        study = {**study, "figure": view}
    runs = runs_frame(manifest_rows, scale)
    paths = plot_study(study, runs, out_pdf)
    if extra is None:
        learning_speed_figure(study, runs, scale, out_pdf)
        difficulty_figure(study, runs, out_pdf)
    return paths


def difficulty_pdf(study_pdf: Path) -> Path:
    """results/figures/<study>.difficulty.pdf beside the study's figure <study>.pdf (a dot: study
    names cannot hold one, so the name never reads as another study's figure)."""
    return Path(study_pdf).with_name(f"{Path(study_pdf).stem}.difficulty.pdf")


def difficulty_figure(study: dict, runs: pd.DataFrame, study_pdf: Path):
    """Accuracy by instance difficulty (trm/results/difficulty.py), <study>.difficulty.pdf/png
    beside the study's figure."""
    from trm.results import difficulty

    return difficulty.plot_difficulty(study, runs, difficulty_pdf(study_pdf))


def paper_reference(manifest_rows: list[dict], scale: str, out_dir: Path):
    """Our numbers beside the published ones for the same settings."""
    return write_reference_table(runs_frame(manifest_rows, scale), out_dir)


def summary_figures(manifest_rows: list[dict], scale: str, outputs: dict) -> None:
    """Figures over every selected run: test-time depth, learning curves, accuracy vs compute.
    A run shared by several studies appears once."""
    runs = runs_frame(manifest_rows, scale).drop_duplicates("run_dir")
    plot_test_time_depth(runs, Path(outputs["test_time_depth"]))
    plot_learning_curves(runs, Path(outputs["learning_curves"]), root=Path("."))
    plot_accuracy_vs_compute(runs, Path(outputs["accuracy_vs_compute"]))


def test_time_tables(study: dict, out_dir: Path):
    """A test-time study's tables (trm/results/test_time.py), from its runs' records."""
    from trm.results import test_time

    return test_time.write_tables(study, test_time.collect(study), out_dir)


def test_time_figure(study: dict, out_pdf: Path, source: str | None = None):
    """A test-time study's summary figure, or with `source` the figure of one source study."""
    from trm.results import test_time

    frame = test_time.collect(study)
    if source is None:
        return test_time.plot_summary(study, frame, out_pdf)
    if source not in {s["study"] for s in study["source"]}:
        raise ValueError(f"{study['name']}: '{source}' is not one of its source studies")
    return test_time.plot_source(study, frame, source, out_pdf)
