"""Glue between the Snakemake rules and the results package: every table and figure is
derived from the tidy runs table, rebuilt from the runs' own files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from trm.results.collect import collect_runs, write_runs_table
from trm.results.figures import plot_study
from trm.results.tables import write_study_tables


def runs_frame(manifest_rows: list[dict], scale: str, root: Path = Path(".")) -> pd.DataFrame:
    manifest = pd.DataFrame(manifest_rows)
    manifest.insert(3, "scale", scale)
    return collect_runs(manifest, root)


def runs_table(manifest_rows: list[dict], scale: str, out: Path) -> Path:
    return write_runs_table(runs_frame(manifest_rows, scale), out)


def study_tables(study: dict, manifest_rows: list[dict], scale: str, out_dir: Path):
    return write_study_tables(study, runs_frame(manifest_rows, scale), out_dir)


def study_figure(study: dict, manifest_rows: list[dict], scale: str, out_pdf: Path):
    return plot_study(study, runs_frame(manifest_rows, scale), out_pdf)
