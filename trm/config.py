"""The one run spec: every knob of a training run, typed, validated, and hashed.

The code lives in trm/spec/ (fields, signature, validate, layering); this module re-exports
its public names, so that callers keep `from trm import config as C` and `C.resolve(...)`.
"""

from trm.spec.fields import (FIELD_RANGES, NON_SEMANTIC, SIGNATURE_SKIPS_DEFAULT, DataSpec,
                             DepthStage, EvalSpec, ModelSpec, OptimSpec, RunSpec, TrainSpec,
                             effective_depth, to_dict)
from trm.spec.layering import (CONFIG_DIR, REPO_ROOT, SCALE_KEYS, SpecLoader, _layer, available,
                               check_seed_list, check_success_threshold, check_workflow_files,
                               copy_tree, deep_merge, dump_spec, expand_dotted, load_scale,
                               load_spec, load_yaml, parse_override, parse_yaml, refuse_yte,
                               resolve, with_seed, workflow_files)
from trm.spec.signature import (RECURSION_ONLY_KNOBS, data_signature, flatten, inert_knobs,
                                knob_keys, signature)
from trm.spec.validate import (SAFE_NAME, RangeError, SpecError, check_layer_ranges, check_ranges,
                               from_dict)
from trm.train.curriculum import depth_schedule

__all__ = [
    # fields
    "ModelSpec", "DataSpec", "OptimSpec", "DepthStage", "TrainSpec", "EvalSpec", "RunSpec",
    "FIELD_RANGES", "NON_SEMANTIC", "SIGNATURE_SKIPS_DEFAULT", "effective_depth", "to_dict",
    # signature
    "signature", "data_signature", "flatten", "knob_keys", "inert_knobs", "RECURSION_ONLY_KNOBS",
    # validate
    "SpecError", "RangeError", "from_dict", "check_ranges", "check_layer_ranges", "SAFE_NAME",
    # layering
    "REPO_ROOT", "CONFIG_DIR", "SCALE_KEYS", "SpecLoader", "resolve", "with_seed", "load_spec",
    "dump_spec", "load_yaml", "parse_yaml", "refuse_yte", "parse_override", "load_scale",
    "available", "expand_dotted", "copy_tree", "deep_merge", "workflow_files",
    "check_workflow_files", "check_seed_list", "check_success_threshold",
    "_layer",  # trm/data/build.py reads one task file without the rest of the layering
    # the depth curriculum at run time
    "depth_schedule",
]
