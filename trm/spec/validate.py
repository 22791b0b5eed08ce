"""Validation: a nested mapping -> spec dataclasses, with strict keys, types and ranges.

Every error is a SpecError naming the full dotted key, and the file and layer it came from
when the caller passes `where` (a YAML file, a section of a scale file, an override).
"""

from __future__ import annotations

import dataclasses
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

from trm.spec.fields import (FIELD_RANGES, STAGE_RANGES, DepthStage, ModelSpec, RunSpec,
                             flat_fields, schema)
from trm.keys import check_keys
from trm.spec.signature import flatten


class SpecError(ValueError):
    """A config value or key is invalid; the message names the key (and file when known)."""


class RangeError(SpecError):
    """A value outside its allowed range; `key` is the dotted key, so that the caller can
    name the file (layer) that set it."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------------------
# Keys and types
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


def from_dict(cls: type, data: dict, prefix: str = "", where: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, naming the bad key on any error."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}{prefix.rstrip('.') or 'spec'}: expected a mapping, got {data!r}")
    names, fields = schema(cls)
    check_keys(data, names, where.removesuffix(": "), prefix, error=SpecError)
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


# --------------------------------------------------------------------------------------
# Ranges, and the checks that relate fields
# --------------------------------------------------------------------------------------

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
    values = flat_fields(spec)
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
    fraction, depth = STAGE_RANGES["until_fraction"], STAGE_RANGES["n_latent_steps"]
    previous = None
    for i, st in enumerate(stages):
        f = st.until_fraction
        if not (isinstance(f, float) and fraction.holds(f)):
            raise bad(f"stage {i}: until_fraction must be {fraction}, got {f!r}")
        if not (depth.holds(st.n_latent_steps) and depth.holds(st.n_cycles)):
            raise bad(f"stage {i}: n_latent_steps and n_cycles must be {depth}, got "
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
