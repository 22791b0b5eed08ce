# Before any job: the command line's targets and the scale against this machine. Dry runs
# only warn, and show the plan (Snakemake runs no onstart for them).
from trm import cli as TRM_CLI
from trm import guard as TRM_GUARD
from trm import progress as TRM_PROGRESS

TRM_INVOCATION = TRM_GUARD.invocation()
_refusal = TRM_GUARD.target_refusal(
    TRM_INVOCATION.targets,
    list(STUDIES),
    list(S.study_paths(CONFIG_DIR)),
    config["studies"],
)
if _refusal:
    raise WorkflowError(_refusal)


def gpu_scale_refusal():
    """Why this scale should not train here (GPU-sized, no GPU, local launcher), or None."""
    if str(config.get("allow_cpu")).lower() == "true":  # --config gives "true" as text
        return None
    return TRM_CLI.cpu_scale_refusal(SCALE, LAUNCHER, "pass --config allow_cpu=true")


def plan_line(run_dirs, n_studies, done=0):
    """The [plan] line: runs to train, their CPU-seconds and the wall time on these cores."""
    runs = [RUN_BY_DIR[d] for d in run_dirs]
    if LAUNCHER == "slurm":
        return f"[plan] {len(runs)} runs on SLURM (no local time estimate)"
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores (a dry run without the default profile)
        cores = os.cpu_count() or 1
    return TRM_PROGRESS.plan(runs, n_studies, cores, done=done)


if TRM_INVOCATION.dry_run:
    _refusal = gpu_scale_refusal()
    if _refusal:
        print(f"[warning] a real run would stop: {_refusal}", file=sys.stderr)
    # The default target's runs: those without metrics.json (a dry run has no onstart).
    if not TRM_INVOCATION.targets:
        _todo = [d for d in RUN_BY_DIR if not Path(d, "metrics.json").exists()]
        print(
            plan_line(_todo, len(STUDIES), done=len(RUN_BY_DIR) - len(_todo)),
            file=sys.stderr,
        )
