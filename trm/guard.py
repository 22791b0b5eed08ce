"""Checks the workflow makes before any job starts (Snakefile): which command line it was
given, and whether its file targets name studies that exist and are selected.

Snakemake tells a Snakefile neither its targets nor whether it is a dry run while the file
is read, so both are read from the command line with Snakemake's own argument parser.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field

# Outputs that belong to no study (workflow/rules/results.smk).
ALL_RUNS_OUTPUTS = frozenset({"runs", "paper_reference", "test_time_depth", "learning_curves",
                              "accuracy_vs_compute"})
# results/tables/<study>.csv, <study>_tests.csv, <study>_runs.csv, ...; results/figures/
# <study>.pdf or <study>/<extra>.pdf; results/index/<study>.done.
STUDY_TARGET = re.compile(
    r"^results/(?:tables/(?P<table>[^/]+?)(?:_tests|_runs)?\.(?:csv|md|tex)"
    r"|figures/(?P<figure>[^/]+?)(?:/[^/]+)?\.(?:pdf|png)"
    r"|index/(?P<done>[^/]+)\.done)$")


@dataclass
class Invocation:
    dry_run: bool = False
    targets: list[str] = field(default_factory=list)


def invocation(argv: list[str] | None = None) -> Invocation:
    """Dry run and targets of the `snakemake ...` command line that reads the Snakefile; a
    default Invocation when Snakemake runs from Python (its API) or the line does not parse."""
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0]) if argv else ""
    if program != "snakemake" and not argv[0].endswith(os.path.join("snakemake", "__main__.py")):
        return Invocation()
    try:
        from snakemake.cli import get_argument_parser

        args, _ = get_argument_parser().parse_known_args(argv[1:])
    except (ImportError, SystemExit):
        return Invocation()
    return Invocation(bool(getattr(args, "dryrun", False)), list(getattr(args, "targets", None) or []))


def study_of_target(target: str) -> str | None:
    """The study a results file belongs to, or None (a run, a rule name, an all-runs output)."""
    match = STUDY_TARGET.match(os.path.normpath(target))
    if not match:
        return None
    name = next(v for v in match.groupdict().values() if v)
    return None if name in ALL_RUNS_OUTPUTS else name


def target_refusal(targets: list[str], selected: list[str], available: list[str],
                   selection: object) -> str | None:
    """Why a file target cannot be built, or None: it names no study file (a typo), or a
    study the `studies` setting leaves out."""
    for target in targets:
        name = study_of_target(target)
        if name is None or name in selected:
            continue
        if name not in available:
            return (f"{target}: no study named '{name}'; available: {', '.join(available)}")
        return (f"{target}: study '{name}' is not selected (studies: {selection}); "
                f"add --config studies={name}")
    return None
