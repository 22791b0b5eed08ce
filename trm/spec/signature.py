"""Run and data signatures: short hashes naming run directories and datasets.

A run's signature hashes every key that changes what it computes (the seed, and keys whose
Knob says semantic=False, are left out; keys whose Knob says skip_at_default are hashed only
away from their default). Adding a knob therefore renames no existing run directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from trm.spec.fields import (NON_SEMANTIC, SIGNATURE_SKIPS_DEFAULT, RunSpec, field_names,
                             flat_fields, to_dict)


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


_NO_DEFAULT = object()


def signature(spec: RunSpec) -> str:
    """Short hash of everything that changes what a run computes (seed excluded).
    flat_fields(spec) is flatten(to_dict(spec)) without the copies (planning hashes every
    run); the hashed JSON, and so every existing run directory, is unchanged."""
    flat = {}
    for k, v in flat_fields(spec).items():
        if k in NON_SEMANTIC:
            continue
        if k in SIGNATURE_SKIPS_DEFAULT and v == SIGNATURE_SKIPS_DEFAULT[k]:
            continue
        flat[k] = to_dict(v) if isinstance(v, list) else v  # stages -> plain mappings
    return _hash(flat)


def data_signature(spec: RunSpec) -> str:
    """Datasets are shared by every run whose data section is equal."""
    data = spec.data
    fields = {name: getattr(data, name) for name in field_names(type(data))}
    return _hash({name: v for name, v in fields.items()
                  if SIGNATURE_SKIPS_DEFAULT.get(f"data.{name}", _NO_DEFAULT) != v}, 8)


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
