"""Which dataset folder a run uses: the one named with `--data`, checked, or the spec's own,
built on demand in the default place.

This lives with the data package (not in the command line, trm/cli.py) because the launcher
and the evaluator need it too: the command line sits on top and nothing imports it.
"""

from __future__ import annotations

from pathlib import Path

from trm import config as C
from trm.data.location import default_data_dir


def ensure_data(spec: C.RunSpec, data_dir: Path | None) -> Path:
    """An explicit dataset folder must exist and be complete (it may come from the official
    builders); one of ours must have been built for this spec (the content hash is checked
    where the arrays are loaded, in the training process). Without one, the spec's dataset is
    built in the default place (at once if already complete)."""
    from trm.data import identity

    if data_dir:
        identity.require_built(Path(data_dir))
        identity.check_spec(Path(data_dir), spec.data)
        return Path(data_dir)
    from trm.data.build import build_dataset

    data_dir = default_data_dir(spec)
    build_dataset(spec.data, data_dir)
    return data_dir
