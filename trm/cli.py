"""`python -m trm <command>`: the command-line surface.

  spec      print a resolved run spec           python -m trm spec --scale tiny --model trm_mlp --task sudoku model.n_cycles=3
  describe  params, depth and call counts        python -m trm describe --model hrm --task sudoku --scale paper
  data      build a dataset                      python -m trm data build --task sudoku --scale tiny --out DIR
  train     train one run in this process        python -m trm train --spec SPEC --out RUN_DIR
  eval      re-evaluate a finished run           python -m trm eval --run RUN_DIR --n-supervision 8 16
  launch    train through a launcher             python -m trm launch --spec SPEC --out RUN_DIR --launcher inline|local|slurm
  studies   list the runs of the studies         python -m trm studies [--scale S] [NAME ...]
  plan-seeds  seeds each contrast needs          python -m trm plan-seeds --study S --effect 10 [--scale S] [--write FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from trm import config as C
from trm.data.resolve import default_data_dir, ensure_data


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


def cmd_data(a) -> int:
    if a.action != "build":
        raise C.SpecError(f"unknown data action '{a.action}' (valid: build)")
    spec = C.resolve(a.model, a.task, a.scale, _overrides(a.overrides))
    out = Path(a.out) if a.out else default_data_dir(spec)
    from trm.data.build import build_dataset

    meta = build_dataset(spec.data, out)
    print(json.dumps({"out": str(out), "provenance": meta.get("provenance")}, indent=2, default=str))
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
        from trm.launch import record_failure

        print(f"error: {line}", file=sys.stderr)
        record_failure(spec, Path(a.out), line)
        return 3
    _summary(metrics)
    return 0 if metrics["status"] == "ok" else 3


def cmd_eval(a) -> int:
    from trm.train.evaluate_run import evaluate_run

    out = evaluate_run(Path(a.run), n_supervision=a.n_supervision, n_cycles=a.n_cycles,
                       n_latent_steps=a.n_latent_steps)
    print(json.dumps(out, indent=2))
    return 0


def cmd_launch(a) -> int:
    # The launcher's processes inherit the allocator: inline training runs in this one.
    _with_allocator(a, C.load_spec(Path(a.spec)).train.allocator)
    from trm.launch import launch

    return launch(Path(a.spec), Path(a.out), a.launcher, data_dir=a.data,
                  resources=_overrides(a.resource))


def _read_seed_plan(path: str | None) -> dict:
    """The `study_seeds` of a seed-plan file ({study_seeds: {scale: {study: n}}}; checked
    by studies.manifest); {} if none is named or it does not exist yet."""
    if not path or not Path(path).exists():
        return {}
    data = C.load_yaml(Path(path))
    if not isinstance(data, dict) or set(data) - {"study_seeds"}:
        raise C.SpecError(f"{path}: a seed plan holds one key, study_seeds, got "
                          f"{sorted(data) if isinstance(data, dict) else data!r}")
    return data.get("study_seeds") or {}


def cmd_studies(a) -> int:
    from trm.studies import describe, manifest

    _, runs = manifest(a.names or "all", a.scale, seed_plan=_read_seed_plan(a.seed_plan))
    print(describe(runs))
    return 0


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
    pct = is_accuracy(headline_metric(study, frame))
    effect = a.effect / 100 if pct else a.effect
    print(f"# {a.study} at scale {a.scale}: {finished} of {len(frame)} runs finished; target "
          f"effect {a.effect:g}{' pp' if pct else ''}, 80% power, alpha 0.05 (paired by seed where seeds are shared, else Welch)")
    plan = plan_seeds(study, frame, effect, Path(a.root))
    print(format_plan(plan, effect, pct))
    need = pd.to_numeric(plan["seeds_needed"], errors="coerce") if len(plan) else None
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def named(sp, need_model=True):
        sp.add_argument("--scale", default="tiny", help="configs/scales/<scale>.yaml")
        sp.add_argument("--model", required=need_model, default="trm_mlp", help="configs/models/<model>.yaml")
        sp.add_argument("--task", required=True, help="configs/tasks/<task>.yaml")
        sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.n_cycles=3")

    sp = sub.add_parser("spec", help="print a resolved run spec")
    named(sp)
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--out", help="write the spec YAML here instead of printing it")
    sp.set_defaults(fn=cmd_spec)

    sp = sub.add_parser("write-spec", help=argparse.SUPPRESS)
    sp.add_argument("--json", required=True)
    sp.add_argument("--out", required=True)
    sp.set_defaults(fn=cmd_write_spec)

    sp = sub.add_parser("describe", help="params, puzzle-embedding params, depth, calls")
    named(sp)
    sp.set_defaults(fn=cmd_describe)

    sp = sub.add_parser("data", help="build a dataset: data build --task T --scale S --out DIR")
    sp.add_argument("action", choices=["build"])
    named(sp, need_model=False)
    sp.add_argument("--out", help="output folder (default results/data/<task>/<data sig>)")
    sp.set_defaults(fn=cmd_data)

    sp = sub.add_parser("train", help="train one run in this process")
    sp.add_argument("--spec", required=True)
    sp.add_argument("--out", required=True, help="run directory")
    sp.add_argument("--data", help="built dataset folder (default: built on demand)")
    sp.add_argument("overrides", nargs="*")
    sp.set_defaults(fn=cmd_train)

    sp = sub.add_parser("eval", help="evaluate a finished run at other depths")
    sp.add_argument("--run", required=True)
    sp.add_argument("--n-supervision", type=int, nargs="*", default=[])
    sp.add_argument("--n-cycles", type=int, nargs="*", default=[])
    sp.add_argument("--n-latent-steps", type=int, nargs="*", default=[])
    sp.set_defaults(fn=cmd_eval)

    sp = sub.add_parser("launch", help="train through a launcher (used by Snakemake)")
    sp.add_argument("--spec", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--data")
    sp.add_argument("--launcher", default="inline", choices=["inline", "local", "slurm"])
    sp.add_argument("--resource", action="append", default=[], help="key=value SLURM resource")
    sp.set_defaults(fn=cmd_launch)

    sp = sub.add_parser("studies", help="list the runs of the selected studies")
    sp.add_argument("--scale", default="tiny")
    sp.add_argument("--seed-plan", help="a seed-plan file (plan-seeds --write): list the planned seeds too")
    sp.add_argument("names", nargs="*")
    sp.set_defaults(fn=cmd_studies)

    sp = sub.add_parser("plan-seeds", help="seeds each contrast of a study needs (from pilot runs)")
    sp.add_argument("--study", required=True)
    sp.add_argument("--effect", type=float, default=10.0,
                    help="target difference, in percentage points for accuracies (default 10)")
    sp.add_argument("--scale", default="tiny")
    sp.add_argument("--root", default=".", help="repository root holding results/runs")
    sp.add_argument("--cores", type=int, default=2,
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
    if raw[:1] == ["data"]:
        # `data build --task T --scale S --out DIR [data.key=value ...]`: the data package's own
        # command line (data section only; no model layers).
        if raw[1:2] != ["build"]:
            print("usage: python -m trm data build --task T [--scale S] --out DIR [key=value ...]",
                  file=sys.stderr)
            return 2
        from trm.data.build import main as data_main

        return _reporting_errors(lambda: data_main(raw[2:]))
    args = build_parser().parse_args(argv)
    # The argv to re-execute with (trm/train/allocator.py), only when run as a program.
    args.from_command_line = raw if argv is None else None
    return _reporting_errors(lambda: args.fn(args))


def _reporting_errors(command) -> int:
    """Run a command; a bad spec (exit 2) or a full / read-only disk (exit 1) is one line
    on stderr, not a traceback."""
    try:
        return command()
    except C.SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        from trm.files import disk_error

        line = disk_error(e)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 1
