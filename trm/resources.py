"""The resources a training job asks for: one vocabulary, checked before anything is submitted.

One resource vocabulary runs from `slurm/cluster.yaml` through the Snakemake `train` rule
(`resources:`) to `python -m trm launch --resource key=value` and into sbatch. The names are
those of Snakemake's SLURM executor plugin where it has one:

  key               sbatch / submitit                 meaning
  slurm_partition   --partition                       "" = the cluster's default partition
  slurm_account     --account                         "" = the user's default account
  qos               --qos
  constraint        --constraint                      e.g. "a100|h100"
  gpu               --gpus-per-node (or --gres)       GPUs per run; >1 = one task per GPU
  gpu_type          gpu:<type>:N                      "" = any GPU
  gpu_flag          gpus_per_node | gres              how GPUs are asked for
  cpus_per_task     --cpus-per-task                   per task, i.e. per GPU
  mem_mb            --mem (per node, MB)              0 = the partition's default
  runtime           --time (minutes)                  per attempt; a job requeued on its time
                                                      limit continues from its checkpoint
  slurm_extra       any other sbatch options          "--exclude=n[01-02] --reservation=r"
  slurm_setup       batch-script lines before srun    newline-separated (module load ...)
  slurm_python      python command on the node        "" = this interpreter
  signal_delay_s    --signal=USR2@N                   warning before the time limit
  max_num_timeout   requeues on the time limit        then the run fails
  poll_s            how often the waiter looks        metrics.json stat + one squeue call
  wait_deadline_min give up waiting after this        0 = runtime x (max_num_timeout+1) + 3 days
  held_grace_min    a job SLURM holds (JobHeldAdmin,  then the run is recorded failed (0 = wait)
                    launch failed requeued held, ...)

The values of one run come from the workflow config's `slurm:` block (slurm/cluster.yaml)
through `run_resources`; trm.slurm turns them into sbatch parameters.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from dataclasses import dataclass, fields
from typing import Any

from trm import config as C


@dataclass(frozen=True)
class Resources:
    slurm_partition: str = ""
    slurm_account: str = ""
    qos: str = ""
    constraint: str = ""
    gpu: int = 0
    gpu_type: str = ""
    gpu_flag: str = "gpus_per_node"
    cpus_per_task: int = 1
    mem_mb: int = 4000
    runtime: int = 60
    slurm_extra: str = ""
    slurm_setup: str = ""
    slurm_python: str = ""
    signal_delay_s: int = 120
    max_num_timeout: int = 3
    poll_s: float = 10.0
    wait_deadline_min: float = 0.0
    held_grace_min: float = 60.0

    @property
    def tasks(self) -> int:
        return max(1, self.gpu)

    def deadline_min(self) -> float:
        if self.wait_deadline_min > 0:
            return self.wait_deadline_min
        return self.runtime * (self.max_num_timeout + 1) + 3 * 24 * 60


KEYS = tuple(f.name for f in fields(Resources))
GPU_FLAGS = ("gpus_per_node", "gres")
# the smallest allowed value of each numeric key
MINIMUM = {"gpu": 0, "cpus_per_task": 1, "mem_mb": 0, "runtime": 1, "signal_delay_s": 0,
           "max_num_timeout": 0, "poll_s": 0.01, "wait_deadline_min": 0, "held_grace_min": 0}


def _bad(key: str, value: Any, want: str) -> C.SpecError:
    return C.SpecError(f"SLURM resource {key}={value!r}: {want}")


# Every string here is written into an sbatch script (#SBATCH lines, setup lines, paths): a
# carriage return, escape, NUL or a stray newline there would start a new line of the
# script, i.e. inject a directive or a command. Only setup may hold newlines (its line breaks).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def refuse_control(key: str, value: str) -> None:
    pattern = _CONTROL_BUT_NEWLINE if key == "slurm_setup" else _CONTROL
    bad = pattern.search(value)
    if bad:
        raise C.SpecError(f"SLURM {key}={value!r}: control character {bad.group()!r} is refused "
                          "(it would end up in the sbatch script)")


def parse_resources(raw: dict | None) -> Resources:
    """Validate `--resource key=value` pairs (values as parsed from YAML or given in Python).

    Unknown keys and bad values raise SpecError naming the key, before anything is submitted.
    None or "" leaves a key at its default.
    """
    out: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise C.SpecError(f"unknown SLURM resource '{key}'{hint}; valid: {', '.join(KEYS)}")
        if value is None or value == "":
            continue
        default = getattr(Resources, key)
        if isinstance(default, str):
            if isinstance(value, (dict, list)):
                raise _bad(key, value, "must be a string")
            value = str(value)
            refuse_control(key, value)
            if key == "gpu_flag" and value not in GPU_FLAGS:
                raise _bad(key, value, f"must be one of {', '.join(GPU_FLAGS)}")
            if key in ("slurm_partition", "slurm_account", "qos", "gpu_type") and re.search(r"\s", value):
                raise _bad(key, value, "must not contain spaces")
        else:
            if isinstance(value, bool):
                raise _bad(key, value, "must be a number")
            try:
                num = float(value)
            except (TypeError, ValueError):
                raise _bad(key, value, "must be a number") from None
            if isinstance(default, int):
                if num != int(num):
                    raise _bad(key, value, "must be a whole number")
                num = int(num)
            if num < MINIMUM[key]:
                raise _bad(key, value, f"must be >= {MINIMUM[key]}")
            value = num
        out[key] = value
    res = Resources(**out)
    extra_parameters(res.slurm_extra)  # parse errors surface here, before submission
    return res


def extra_parameters(text: str) -> dict:
    """'--exclude=n[1-2] --reservation r --exclusive' -> {'exclude': 'n[1-2]', ...}."""
    try:
        tokens = shlex.split(text or "")
    except ValueError as e:
        raise _bad("slurm_extra", text, f"cannot be split like a shell line: {e}") from None
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) < 3:
            raise _bad("slurm_extra", text, f"'{tok}': give long sbatch options (--name=value)")
        if "=" in tok:
            key, value = tok[2:].split("=", 1)
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
            key, value = tok[2:], tokens[i + 1]
            i += 1
        else:
            key, value = tok[2:], True
        out[key.replace("-", "_")] = value
        i += 1
    return out


# Defaults of the per-run resources when cluster.yaml says nothing (also the inline/local case).
JOB_DEFAULTS = {"gpu": 0, "cpus_per_task": 1, "mem_mb": 4000, "runtime": 60}
SITE_KEYS = {  # cluster.yaml `slurm:` key -> resource key
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "qos",
    "constraint": "constraint",
    "gpu_type": "gpu_type",
    "gpu_flag": "gpu_flag",
    "extra": "slurm_extra",
    "setup": "slurm_setup",
    "python": "slurm_python",
    "signal_delay_s": "signal_delay_s",
    "max_num_timeout": "max_num_timeout",
    "poll_s": "poll_s",
    "wait_deadline_min": "wait_deadline_min",
    "held_grace_min": "held_grace_min",
}


def run_resources(config: dict, scale: str, task: str) -> dict:
    """The resources of one training run from the workflow config's `slurm:` block
    (slurm/cluster.yaml): site settings, then resources.default, resources.<scale>,
    resources.<scale>.tasks.<task>, each overriding the one before."""
    s = config.get("slurm") or {}
    out: dict[str, Any] = {}
    for name, key in SITE_KEYS.items():
        value = s.get(name)
        if name == "setup" and isinstance(value, list):
            value = "\n".join(str(v) for v in value)
        if value is not None:
            out[key] = value
    table = s.get("resources") or {}
    per_scale = table.get(scale) or {}
    job = dict(JOB_DEFAULTS)
    for layer in (table.get("default") or {}, per_scale, (per_scale.get("tasks") or {}).get(task) or {}):
        job.update({k: v for k, v in layer.items() if k != "tasks"})
    out.update(job)
    return out


PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")  # survives YAML parsing as the same string
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def snakemake_value(config: dict, scale: str, task: str, key: str) -> int | str:
    """One resource of the train rule. Integers stay integers (Snakemake may schedule on
    them); other values are JSON-quoted unless they are plain words, so that they survive
    the shell (`:q`) and the YAML parsing of `--resource key=value` unchanged (spaces,
    colons, '#', the newlines of setup lines)."""
    value = run_resources(config, scale, task).get(key, getattr(Resources, key))
    if isinstance(getattr(Resources, key), str):
        value = "" if value is None else str(value)
        plain = PLAIN.match(value) and value.lower() not in YAML_WORDS
        return value if plain or value == "" else json.dumps(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise C.SpecError(f"slurm/cluster.yaml: resource {key}={value!r} must be a number")
    return value if isinstance(value, int) else json.dumps(value)


def snakemake_resources(config: dict, scale: str) -> dict:
    """`resources:` entries for the train rule: every key, computed per task wildcard.
    Snakemake asks for every key of every train job while planning; the answers depend only
    on the task, so each (task, key) is computed once."""
    known: dict[tuple[str, str], int | str] = {}

    def value(task: str, key: str) -> int | str:
        if (task, key) not in known:
            known[(task, key)] = snakemake_value(config, scale, task, key)
        return known[(task, key)]

    return {k: (lambda wildcards, k=k: value(wildcards.task, k)) for k in KEYS}


def launch_args() -> str:
    """The matching `--resource key={resources.key:q}` arguments of the train rule's shell."""
    return " ".join(f"--resource {k}={{resources.{k}:q}}" for k in KEYS)
