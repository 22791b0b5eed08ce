"""Planning: study files -> the runs to train (what to run, before anything runs).

  schema.py     what a study file may say (every vocabulary once) and the checks from it
  grid.py       a study's cells: grid x zip, plus include, minus exclude
  manifest.py   cells x seeds -> runs with their signatures; selecting and loading studies
  test_time.py  studies of kind test_time: sources and test-time settings
  scales.py     per-scale tweaks and notes, shared by both kinds

The names below are the package's public API: `from trm import studies; studies.manifest(...)`.
"""

from trm.studies.manifest import (
    Run,
    check_seed_plan,
    default_studies,
    describe,
    dump_manifest,
    expand,
    load_study,
    manifest,
    manifest_rows,
    plan_test_time,
    select_studies,
    study_paths,
    topped_up_seeds,
)
from trm.studies.schema import (
    CELL_KEYS,
    FIGURE_KEYS,
    FIGURE_KINDS,
    RUN_COLUMNS,
    STUDY_KEYS,
    VIEW_KEYS,
    check_keys,
    check_view,
)

__all__ = [
    "CELL_KEYS", "FIGURE_KEYS", "FIGURE_KINDS", "RUN_COLUMNS", "STUDY_KEYS", "VIEW_KEYS", "Run",
    "check_keys", "check_seed_plan", "check_view", "default_studies", "describe", "dump_manifest",
    "expand", "load_study", "manifest", "manifest_rows", "plan_test_time", "select_studies",
    "study_paths", "topped_up_seeds",
]
