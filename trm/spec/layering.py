"""Layering: a run spec resolved from YAML files over the dataclass defaults.

    defaults < configs/models/<model>.yaml < configs/tasks/<task>.yaml
             < configs/scales/<scale>.yaml (base, then tasks.<task>, then models.<model>)
             < study cell overrides < command-line `key=value` overrides

Every layer is a nested mapping (or dotted `a.b=c` keys), checked on its own (trm/spec/validate.py)
so that an error names the file and section that introduced it. Parsed files and the merged
named layers are cached by file stamps: planning thousands of runs reads each file once.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

from trm.keys import check_keys
from trm.spec.fields import FIELD_RANGES, SECTIONS, RunSpec, to_dict
from trm.spec.signature import flatten
from trm.spec.validate import (SAFE_NAME, RangeError, SpecError, check_layer_ranges, check_ranges,
                               from_dict)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# The configs folder; TRM_CONFIG_DIR points elsewhere (e.g. a copy of the repo in a test).
CONFIG_DIR = Path(os.environ.get("TRM_CONFIG_DIR", REPO_ROOT / "configs"))


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
    check_keys(data, SCALE_KEYS, where.removesuffix(": "), error=SpecError)
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
    for section in SECTIONS:
        setattr(out, section, copy.copy(getattr(spec, section)))
    out.train.seed = seed
    return out


def _resolve_precision(spec: RunSpec) -> None:
    """'auto' -> the concrete precision for this machine (planning side, torch-free unless
    auto needs a probe); bf16 named for an explicit CPU run on a CPU without it is refused."""
    from trm.train import precision

    try:
        spec.train.precision = precision.resolve(spec.train.precision, spec.train.device)
        if spec.train.device == "cpu":
            precision.check_supported(spec.train.precision, "cpu")
    except precision.PrecisionError as e:
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
