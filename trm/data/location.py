"""Where a spec's dataset is built when no folder is named: results/data/<task>/<data sig>.
The workflow's data rule, `trm data build` (trm/data/build.py) and the run-time resolution
(trm/data/resolve.py) all build or look there; this module is the one place that says so."""

from __future__ import annotations

from pathlib import Path

from trm import config as C


def default_data_dir(spec: C.RunSpec, root: Path = Path(".")) -> Path:
    return root / "results" / "data" / spec.data.task / C.data_signature(spec)
