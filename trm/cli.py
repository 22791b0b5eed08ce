"""`python -m trm <command>`: the command-line surface.

  spec      print a resolved run spec           python -m trm spec --scale tiny --model trm_mlp --task sudoku model.n_cycles=3
  describe  params, depth and call counts        python -m trm describe --model hrm --task sudoku --scale paper
  data      build a dataset                      python -m trm data build --task sudoku --scale tiny [--out DIR]
  train     train one run in this process        python -m trm train --spec SPEC --out RUN_DIR
  eval      re-evaluate a finished run           python -m trm eval --run RUN_DIR --n-supervision 8 16
  launch    train through a launcher             python -m trm launch --spec SPEC --out RUN_DIR --launcher inline|local|slurm
  studies   the studies, their questions, cells  python -m trm studies [--scale S] [--runs | --json] [NAME ...]
  plan-seeds  seeds each contrast needs          python -m trm plan-seeds --study S --effect 10 [--scale S] [--write FILE]

Expected errors (a bad spec, data file, dataset folder or checkpoint) are one line on stderr
and exit 2; `--debug` (before the command) or TRM_DEBUG=1 shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from trm import config as C
from trm.data.resolve import ensure_data

DEBUG_ENV = "TRM_DEBUG"
ALLOW_CPU_ENV = "TRM_ALLOW_CPU"
# Scales sized for a GPU; a scale file that inherits one of them is too.
GPU_SIZED_SCALES = ("small", "paper")


class CommandError(Exception):
    """A command refused for a reason the user can act on: one line on stderr, exit 2."""


def _flag_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _overrides(items: list[str]) -> dict:
    return dict(C.parse_override(s) for s in items)


def cmd_spec(a) -> int:
    spec = C.resolve(a.model, a.task, a.scale, _overrides(a.overrides), seed=a.seed)
    text = yaml.safe_dump(C.to_dict(spec), sort_keys=False)
    if a.out:
        C.dump_spec(spec, Path(a.out))
        print(f"wrote {a.out} (sig {C.signature(spec)})", file=sys.stderr)
    else:
        print(f"# sig: {C.signature(spec)}  data: {C.data_signature(spec)}")
        print(text, end="")
    return 0


def cmd_write_spec(a) -> int:
    """Validate a resolved spec given as JSON and write it as YAML (used by the workflow)."""
    spec = C.from_dict(C.RunSpec, json.loads(a.json), where="--json: ")
    C.check_ranges(spec)
    C.dump_spec(spec, Path(a.out))
    return 0


def cmd_describe(a) -> int:
    from trm.describe import describe

    spec = C.resolve(a.model, a.task, a.scale, _overrides(a.overrides))
    print(json.dumps(describe(spec), indent=2))
    return 0


def _with_allocator(a, request: str) -> None:
    """Re-execute this command with train.allocator preloaded (before torch is imported);
    only for a real command line, never for main() called from Python."""
    if getattr(a, "from_command_line", False):
        from trm.train.allocator import AllocatorError, reexec_with

        try:
            reexec_with(request, a.from_command_line)
        except AllocatorError as e:
            raise C.SpecError(str(e)) from e


def cmd_train(a) -> int:
    spec = C.load_spec(Path(a.spec))
    if a.overrides:
        merged = C.deep_merge(C.to_dict(spec), C.expand_dotted(_overrides(a.overrides)))
        spec = C.from_dict(C.RunSpec, merged, where="override: ")
        C.check_ranges(spec)
    _with_allocator(a, spec.train.allocator)
    _refuse_gpu_sized_on_cpu(spec, "inline", a.allow_cpu)
    from trm.train.loop import run

    data_dir = ensure_data(spec, a.data)
    try:
        metrics = run(spec, Path(a.out), data_dir)
    except OSError as e:
        from trm.files import disk_error

        line = disk_error(e)
        if line is None:
            raise
        # A full or read-only disk: one line, and a failed record where it can be written.
        from trm.rundir import record_failure

        print(f"error: {line}", file=sys.stderr)
        record_failure(spec, Path(a.out), line)
        return 3
    _summary(metrics)
    return 0 if metrics["status"] == "ok" else 3


def cmd_eval(a) -> int:
    from trm.train.test_time import evaluate_run

    out = evaluate_run(Path(a.run), n_supervision=a.n_supervision, n_cycles=a.n_cycles,
                       n_latent_steps=a.n_latent_steps, arc_votes=a.arc_votes, data_dir=a.data)
    print(json.dumps(out, indent=2))
    return 0


def cmd_launch(a) -> int:
    # The launcher's processes inherit the allocator: inline training runs in this one.
    spec = C.load_spec(Path(a.spec))
    _with_allocator(a, spec.train.allocator)
    _refuse_gpu_sized_on_cpu(spec, a.launcher, a.allow_cpu)
    from trm.launch import launch

    return launch(Path(a.spec), Path(a.out), a.launcher, data_dir=a.data,
                  resources=_overrides(a.resource))


# --------------------------------------------------------------------------------------
# GPU-sized scales on a machine without a GPU
# --------------------------------------------------------------------------------------

def scale_is_gpu_sized(scale: str, config_dir: Path = C.CONFIG_DIR) -> bool:
    """small, paper, and every scale file whose `inherit:` chain reaches one of them."""
    seen = set()
    while isinstance(scale, str) and scale not in seen:
        if scale in GPU_SIZED_SCALES:
            return True
        seen.add(scale)
        path = Path(config_dir) / "scales" / f"{scale}.yaml"
        if not path.is_file():
            return False
        scale = (C.load_yaml(path) or {}).get("inherit")
    return False


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_scale_refusal(scale: str, launcher: str,
                      allow_hint: str = f"pass --allow-cpu (or set {ALLOW_CPU_ENV}=1)") -> str | None:
    """Why training `scale` with `launcher` should not start on this machine, or None.

    A GPU-sized scale (scale_is_gpu_sized) trained here (inline or local launcher) with no
    GPU visible would take days of CPU time; the SLURM launcher, TRM_ALLOW_CPU=1 or a
    visible GPU lift the refusal. `allow_hint` says how the caller's user allows it anyway
    (the workflow: --config allow_cpu=true)."""
    if launcher == "slurm" or _flag_env(ALLOW_CPU_ENV) or not scale_is_gpu_sized(scale):
        return None
    if _gpu_visible():
        return None
    return (f"scale {scale} is sized for a GPU and no GPU is visible here: training it with the "
            f"{launcher} launcher on this CPU would take days; use the SLURM profile "
            f"(snakemake --profile slurm), or {allow_hint} to run it on the CPU anyway")


def spec_scale(spec: C.RunSpec, config_dir: Path = C.CONFIG_DIR) -> str | None:
    """The GPU-sized scale this spec comes from, or None. A spec does not record its scale,
    but its data section tells small and paper from tiny and smoke (data.path aside: the same
    data may live anywhere); where two scales share the data (maze; reach, whose tiny data is
    its task file's), the width tells them apart, and a CPU-sized scale that fits both wins."""
    import dataclasses

    from trm.data.build import data_spec_for

    def key(data) -> dict:
        return {k: v for k, v in dataclasses.asdict(data).items() if k != "path"}

    def width(scale: str) -> int | None:
        try:
            return C.resolve(spec.name, spec.data.task, scale, config_dir=config_dir).model.hidden_size
        except C.SpecError:  # a hand-written spec whose name is no model file
            return None

    want, matches = key(spec.data), []
    for path in sorted((Path(config_dir) / "scales").glob("*.yaml")):
        try:
            if key(data_spec_for(spec.data.task, path.stem)) == want:
                matches.append(path.stem)
        except C.SpecError:  # a task this scale file cannot resolve
            continue
    same_width = [s for s in matches if width(s) == spec.model.hidden_size]
    candidates = same_width or matches
    if any(not scale_is_gpu_sized(s, config_dir) for s in candidates):
        return None
    return (candidates or [None])[0]


def _refuse_gpu_sized_on_cpu(spec: C.RunSpec, launcher: str, allow_cpu: bool) -> None:
    """An explicit train.device (cpu: asked for; cuda: fails on its own) is left alone."""
    if allow_cpu or spec.train.device != "auto" or launcher == "slurm":
        return
    scale = spec_scale(spec)
    hint = f"pass --allow-cpu (or set {ALLOW_CPU_ENV}=1, or train.device=cpu)"
    reason = cpu_scale_refusal(scale, launcher, hint) if scale else None
    if reason:
        raise CommandError(reason)


def _read_seed_plan(path: str | None, must_exist: bool = False) -> dict:
    """The `study_seeds` of a seed-plan file ({study_seeds: {scale: {study: n}}}; checked
    by studies.manifest); {} if none is named, or if it does not exist yet and need not
    (plan-seeds --write creates it)."""
    if not path:
        return {}
    if not Path(path).is_file():
        if must_exist:
            raise CommandError(f"{path}: no such seed-plan file (write one with "
                               "`python -m trm plan-seeds --study S --write FILE`)")
        return {}
    data = C.load_yaml(Path(path))
    if not isinstance(data, dict) or set(data) - {"study_seeds"}:
        raise C.SpecError(f"{path}: a seed plan holds one key, study_seeds, got "
                          f"{sorted(data) if isinstance(data, dict) else data!r}")
    return data.get("study_seeds") or {}


def cmd_studies(a) -> int:
    from trm.studies import describe, manifest, manifest_rows

    studies, runs = manifest(a.names or "all", a.scale,
                             seed_plan=_read_seed_plan(a.seed_plan, must_exist=True))
    if a.json:
        rows = [{"scale": a.scale, **row} for row in manifest_rows(runs)]
        print(json.dumps(rows, indent=1, default=str))
    elif a.runs:
        print(describe(runs))
    else:
        print(study_summary(studies, runs, a.scale))
    return 0


def study_summary(studies: dict, runs: list, scale: str) -> str:
    """Each study's question, then one line per cell (task, model, the knobs it sets, seeds,
    run signature)."""
    lines = [f"{len(runs)} runs, {len({r.run_dir for r in runs})} unique, at scale {scale} "
             "(one line per cell; the runs themselves: --runs)"]
    for name, study in studies.items():
        cells: dict[tuple, list] = {}
        for r in runs:
            if r.study == name:
                cells.setdefault((r.task, r.model, r.sig), []).append(r)
        question = " ".join(str(study.get("question") or "").split())
        lines += ["", f"{name}: {question}" if question else name]
        rows = [(task, model, " ".join(f"{k}={v}" for k, v in group[0].knobs.items()) or "-",
                 f"{len({r.seed for r in group})} seeds", f"sig {sig}")
                for (task, model, sig), group in cells.items()]
        widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths + [0])).rstrip()
                  for row in rows]
    return "\n".join(lines)


def cmd_plan_seeds(a) -> int:
    """Read a study's finished (pilot) runs and print the seeds each contrast needs."""
    from trm.results.cells import is_accuracy
    from trm.results.pipeline import runs_frame
    import pandas as pd

    from trm.results.power import format_cost, format_plan, plan_cost, plan_seeds
    from trm.results.tables import headline_metric
    from trm.studies import manifest, manifest_rows

    seed_plan = _read_seed_plan(a.write)
    studies, runs = manifest(a.study, a.scale, seed_plan=seed_plan)
    study = studies[a.study]
    frame = runs_frame(manifest_rows(runs), a.scale, Path(a.root))
    finished = int((frame["status"] == "ok").sum())
    if finished == 0:
        at = "" if a.scale == "tiny" else f" scale={a.scale}"
        raise CommandError(f"no finished runs of study {a.study} at scale {a.scale} under "
                           f"{Path(a.root) / 'results' / 'runs'}: train the study first "
                           f"(snakemake --config studies={a.study}{at})")
    pct = is_accuracy(headline_metric(study, frame))
    effect = a.effect / 100 if pct else a.effect
    print(f"# {a.study} at scale {a.scale}: {finished} of {len(frame)} runs finished; target "
          f"effect {a.effect:g}{' pp' if pct else ''}, 80% power, alpha 0.05 (paired by seed where seeds are shared, else Welch; "
          f"contrasts with a cell on its transition: Boschloo on the observed success rates)")
    plan = plan_seeds(study, frame, effect, Path(a.root))
    print(format_plan(plan, effect, pct))
    need = None
    if len(plan):
        need = pd.to_numeric(plan["seeds_needed"], errors="coerce")
        if "rate_seeds_needed" in plan.columns:
            # A contrast read in two parts is decided on its success counts, not on a t-test
            # of a mixture of two modes.
            rate = pd.to_numeric(plan["rate_seeds_needed"], errors="coerce")
            need = rate.where(plan["reading"] == "two-part", need)
    if need is not None and need.notna().all():
        print(format_cost(plan_cost(frame, int(need.max()), a.cores), a.cores))
    if a.write:
        return _write_seed_plan(Path(a.write), seed_plan, a.scale, a.study, frame, need)
    return 0


def _write_seed_plan(path: Path, seed_plan: dict, scale: str, study: str, frame, need) -> int:
    """Set the study's seeds per cell in the plan file to what its costliest contrast needs
    (never fewer than it has), keeping every other entry; written atomically."""
    import yaml

    from trm.files import atomic_write_text

    if need is None or not len(need):
        print(f"{path}: not written: {study} has no contrast with finished runs to plan from")
        return 1
    if need.isna().any():
        print(f"{path}: not written: a contrast of {study} needs more than 10000 seeds (or its "
              f"pilot has fewer than 2 finished seeds per cell); nothing to plan from")
        return 1
    have = int(frame.groupby(["task", "model", "sig"])["seed"].nunique().max())
    n = max(int(need.max()), have)
    plan = {s: dict(v) for s, v in seed_plan.items()}
    plan.setdefault(scale, {})[study] = n
    atomic_write_text(path, yaml.safe_dump({"study_seeds": plan}, sort_keys=True))
    print(f"wrote {path}: {study} at scale {scale}: {n} seeds per cell; run the new seeds with\n"
          f"  snakemake --configfile {path}" + (f" --config scale={scale}" if scale != "tiny" else ""))
    return 0


def _summary(m: dict) -> None:
    keys = ("status", "steps", "exact_accuracy", "cell_accuracy", "params")
    print(json.dumps({k: m.get(k) for k in keys}))


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("trm-bench")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        import trm

        return getattr(trm, "__version__", "unknown")


def _positive(kind):
    """An argparse type: a finite number of `kind` above zero."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}")
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"trm-bench {_version()}")
    p.add_argument("--debug", action="store_true",
                   help=f"show the full traceback of an error (also: {DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="one of these (each has its own --help):")

    def named(sp):
        sp.add_argument("--scale", default="tiny", help="configs/scales/<scale>.yaml (default tiny)")
        sp.add_argument("--model", required=True, help="configs/models/<model>.yaml")
        sp.add_argument("--task", required=True, help="configs/tasks/<task>.yaml")
        sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.n_cycles=3")

    def allow_cpu(sp):
        sp.add_argument("--allow-cpu", action="store_true",
                        help="train a GPU-sized scale (small, paper) on this CPU although no GPU "
                             f"is visible (also: {ALLOW_CPU_ENV}=1)")

    sp = sub.add_parser("spec", help="print a resolved run spec")
    named(sp)
    sp.add_argument("--seed", type=int, default=None, help="train.seed (default: the scale's first)")
    sp.add_argument("--out", help="write the spec YAML here instead of printing it")
    sp.set_defaults(fn=cmd_spec)

    # Used by the workflow; no `help=`, so that it is left out of the command list.
    sp = sub.add_parser("write-spec", description="validate a resolved spec (JSON), write it as YAML")
    sp.add_argument("--json", required=True, help="the resolved spec as JSON")
    sp.add_argument("--out", required=True, help="spec YAML to write")
    sp.set_defaults(fn=cmd_write_spec)

    sp = sub.add_parser("describe", help="params, puzzle-embedding params, depth, calls")
    named(sp)
    sp.set_defaults(fn=cmd_describe)

    # Listed here for the help only: main() hands `data ...` to trm/data/build.py's own parser.
    sub.add_parser("data", help="build a dataset: data build --task T [--scale S] [--out DIR] "
                                "(see: data build --help)")

    sp = sub.add_parser("train", help="train one run in this process")
    sp.add_argument("--spec", required=True, help="run spec YAML (python -m trm spec --out)")
    sp.add_argument("--out", required=True, help="run directory")
    sp.add_argument("--data", help="built dataset folder (default: built on demand)")
    allow_cpu(sp)
    sp.add_argument("overrides", nargs="*", help="key=value overrides of the spec")
    sp.set_defaults(fn=cmd_train)

    sp = sub.add_parser("eval", help="evaluate a finished run at other depths")
    sp.add_argument("--run", required=True, help="run directory (with checkpoints/latest.pt)")
    sp.add_argument("--data", help="the run's dataset folder, if it moved (default: where it "
                                   "was trained from)")
    sp.add_argument("--n-supervision", type=int, nargs="*", default=[], help="supervision steps to try")
    sp.add_argument("--n-cycles", type=int, nargs="*", default=[], help="cycles T to try")
    sp.add_argument("--n-latent-steps", type=int, nargs="*", default=[], help="latent steps n to try")
    sp.add_argument("--arc-votes", type=int, nargs="*", default=[],
                    help="ARC: augmented variants voted per test input, to try")
    sp.set_defaults(fn=cmd_eval)

    sp = sub.add_parser("launch", help="train through a launcher (used by Snakemake)")
    sp.add_argument("--spec", required=True, help="run spec YAML")
    sp.add_argument("--out", required=True, help="run directory")
    sp.add_argument("--data", help="built dataset folder (default: built on demand)")
    sp.add_argument("--launcher", default="inline", choices=["inline", "local", "slurm"],
                    help="inline: this process; local: a submitit subprocess; slurm: a SLURM job")
    sp.add_argument("--resource", action="append", default=[], help="key=value SLURM resource")
    allow_cpu(sp)
    sp.set_defaults(fn=cmd_launch)

    sp = sub.add_parser("studies", help="the studies' questions and cells (--runs: every run)")
    sp.add_argument("--scale", default="tiny", help="configs/scales/<scale>.yaml (default tiny)")
    sp.add_argument("--seed-plan", help="a seed-plan file (plan-seeds --write): list the planned seeds too")
    shown = sp.add_mutually_exclusive_group()
    shown.add_argument("--runs", action="store_true", help="one line per run (study, run directory, knobs)")
    shown.add_argument("--json", action="store_true", help="one JSON record per run, for scripts")
    sp.add_argument("names", nargs="*", help="studies (configs/studies/<name>.yaml; default all)")
    sp.set_defaults(fn=cmd_studies)

    sp = sub.add_parser("plan-seeds", help="seeds each contrast of a study needs (from pilot runs)")
    sp.add_argument("--study", required=True, help="configs/studies/<study>.yaml")
    sp.add_argument("--effect", type=_positive(float), default=10.0,
                    help="target difference (> 0), in percentage points for accuracies (default 10)")
    sp.add_argument("--scale", default="tiny", help="configs/scales/<scale>.yaml (default tiny)")
    sp.add_argument("--root", default=".", help="repository root holding results/runs")
    sp.add_argument("--cores", type=_positive(int), default=2,
                    help="cores (one run each) for the wall-time estimate (default 2)")
    sp.add_argument("--write", metavar="FILE",
                    help="seed-plan file to update (read first, so seeds it planned count as pilot "
                         "runs): the study's seeds per cell for its costliest contrast; then run "
                         "`snakemake --configfile FILE`")
    sp.set_defaults(fn=cmd_plan_seeds)
    return p


def main(argv: list[str] | None = None) -> int:
    import signal

    if argv is None and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `python -m trm ... | head` exits quietly
    raw = sys.argv[1:] if argv is None else list(argv)
    debug = _flag_env(DEBUG_ENV) or raw[:1] == ["--debug"]
    rest = raw[1:] if raw[:1] == ["--debug"] else raw
    if rest[:1] == ["data"]:
        # `data build --task T [--scale S] [--out DIR] [data.key=value ...]`: the data
        # package's own command line (data section only; no model layers).
        from trm.data.build import main as data_main

        if rest[1:2] in (["-h"], ["--help"]):
            return data_main(["--help"])
        if rest[1:2] != ["build"]:
            print("usage: python -m trm data build --task T [--scale S] [--out DIR] [key=value ...]",
                  file=sys.stderr)
            return 2
        return _reporting_errors(lambda: data_main(rest[2:]), debug)
    args = build_parser().parse_args(raw)
    # The argv to re-execute with (trm/train/allocator.py), only when run as a program.
    args.from_command_line = raw if argv is None else None
    return _reporting_errors(lambda: args.fn(args), debug or args.debug)


def _expected_errors() -> tuple[type, ...]:
    """What bad input raises (a spec, a raw data file, a dataset folder, a checkpoint, a
    device the machine lacks): said in one line. Anything else is a bug: a traceback."""
    from trm.data.sources import SourceError
    from trm.train.distributed import DistributedSetupError

    # ValueError covers SpecError, RawDataError, ArcDataError, JSONDecodeError and numpy's
    # refusals of a damaged array file; OSError a missing or unwritable file.
    return (CommandError, ValueError, OSError, SourceError, DistributedSetupError)


def one_line(error: BaseException) -> str:
    """An error's message on one line (a list of malformed rows becomes '; '-separated)."""
    parts = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not parts:
        return type(error).__name__
    head, rest = parts[0], parts[1:]
    return head + (" " if head.endswith(":") else "; ") + "; ".join(rest) if rest else head


def _reporting_errors(command, debug: bool = False) -> int:
    """Run a command; an expected error is one line on stderr (exit 2; a full or read-only
    disk: exit 1), unless `debug` asks for the traceback."""
    try:
        return command()
    except Exception as e:  # noqa: BLE001 - sorted below; the rest re-raised
        if debug or not isinstance(e, _expected_errors()):
            raise
        if isinstance(e, OSError):
            from trm.files import disk_error

            line = disk_error(e)
            if line is not None:
                print(f"error: {line}", file=sys.stderr)
                return 1
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
