"""Optional mirrors of train.jsonl to TensorBoard and Weights & Biases. Never required.

train.jsonl stays the record; these are conveniences, switched on by environment variables
(they do not change what a run computes, so they are not in the run spec):

  TRM_TENSORBOARD=1       event files in RUN_DIR/tensorboard/ (needs the `tensorboard` package)
  TRM_TENSORBOARD=DIR     event files in DIR/<task>-<model>-<sig>-s<seed>/
  TRM_WANDB=1             a W&B run; offline unless WANDB_MODE says otherwise (sync later with
                          `wandb sync RUN_DIR/wandb/...`); project from WANDB_PROJECT (default
                          "trm-bench"); the run id is fixed per run directory, so a resumed or
                          requeued run appends to the same W&B run.
A package that is not installed gives one warning and the run goes on. Only rank 0 logs.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from trm import config as C
from trm import rundir

TRUE = {"1", "true", "yes", "on"}


def _numeric(record: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in record.items():
        if k == "step":
            continue
        if isinstance(v, bool):
            v = float(v)
        if isinstance(v, (int, float)):
            out[prefix + k] = float(v)
        elif isinstance(v, dict):
            out.update(_numeric(v, f"{prefix}{k}/"))
    return out


class Sinks:
    def __init__(self, sinks: list):
        self.sinks = sinks

    def log(self, record: dict, step: int) -> None:
        values = _numeric(record)
        for s in self.sinks:
            try:
                s.log(values, step)
            except Exception as e:  # noqa: BLE001 - a logging extra must never kill a run
                warnings.warn(f"{type(s).__name__} logging failed: {e}", stacklevel=2)

    def close(self) -> None:
        for s in self.sinks:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass


class _TensorBoard:
    def __init__(self, logdir: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(logdir))

    def log(self, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, spec: C.RunSpec, run_dir: Path):
        import wandb

        sig = C.signature(spec)
        where = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:6]
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "trm-bench"),
            name=f"{spec.data.task}-{spec.name}-{sig}-s{spec.train.seed}",
            id=f"{sig}-s{spec.train.seed}-{where}",
            resume="allow",
            mode=os.environ.get("WANDB_MODE", "offline"),
            dir=str(run_dir),
            config=C.to_dict(spec),
        )

    def log(self, values: dict, step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


def open_sinks(spec: C.RunSpec, run_dir: Path, enabled: bool = True) -> Sinks:
    """The sinks the environment asks for (none when `enabled` is False, e.g. rank > 0)."""
    sinks: list = []
    if not enabled:
        return Sinks(sinks)
    tb = os.environ.get("TRM_TENSORBOARD", "").strip()
    if tb and tb.lower() not in {"0", "false", "no", "off"}:
        if tb.lower() in TRUE:
            logdir = Path(run_dir) / rundir.TENSORBOARD
        else:
            logdir = Path(tb) / f"{spec.data.task}-{spec.name}-{C.signature(spec)}-s{spec.train.seed}"
        try:
            sinks.append(_TensorBoard(logdir))
        except ImportError as e:
            warnings.warn(f"TRM_TENSORBOARD is set but TensorBoard is unavailable ({e}); skipped",
                          stacklevel=2)
    if os.environ.get("TRM_WANDB", "").strip().lower() in TRUE:
        try:
            sinks.append(_WandB(spec, Path(run_dir)))
        except ImportError as e:
            warnings.warn(f"TRM_WANDB is set but wandb is not installed ({e}); skipped", stacklevel=2)
    return Sinks(sinks)
