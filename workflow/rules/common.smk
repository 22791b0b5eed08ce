# Load the selected studies at the chosen scale and expand them into runs. Every study file
# and every run spec is validated here, before any job is scheduled.
import json
import os

from trm import config as C
from trm import retry as TRM_RETRY
from trm import studies as S

CONFIG_DIR = Path(workflow.basedir) / "configs"
SCALE = str(config["scale"])
# "default" is the config's default_studies list (read from the config, so that a
# --configfile can set another list).
try:
    SELECTION = (
        config.get("default_studies") or S.default_studies(CONFIG_DIR)
        if config["studies"] in ("default", ["default"])
        else config["studies"]
    )
    # study_seeds: a seed plan (`python -m trm plan-seeds ... --write FILE`, then
    # `snakemake --configfile FILE`) tops the planned studies up to more seeds per cell.
    STUDIES, RUNS = S.manifest(SELECTION, SCALE, CONFIG_DIR, config.get("study_seeds"))
except C.SpecError as e:
    raise WorkflowError(f"invalid configuration: {e}")
FIRST_STUDIES = list(config.get("first_studies") or [])
for _name in FIRST_STUDIES:
    if _name not in S.study_paths(CONFIG_DIR):
        raise WorkflowError(
            f"invalid configuration: config 'first_studies': no study named '{_name}'; "
            f"available: {', '.join(S.study_paths(CONFIG_DIR))}"
        )

# One entry per unique run directory (cells shared between studies train once).
RUN_BY_DIR = {}
for _r in RUNS:
    RUN_BY_DIR.setdefault(_r.run_dir, _r)
# One entry per dataset (many runs share one: convert each data section once).
DATA_SPECS = {}
for _r in RUN_BY_DIR.values():
    _key = f"{_r.task}/{_r.data_sig}"
    if _key not in DATA_SPECS:
        DATA_SPECS[_key] = C.to_dict(_r.spec.data)
LAUNCHER = str(config["launcher"])

# Priorities: the greedy scheduler starts, among the jobs that are ready, those of highest
# priority first. The runs (and datasets) of the config's first_studies get 10 per place
# from the end of that list (the first study highest), every other run 0; a study's tables
# and figures get RESULTS_PRIORITY, above any run, so that each is made as soon as its
# study's runs are done instead of after every other run.
STUDY_PRIORITY = {
    name: 10 * (len(FIRST_STUDIES) - i) for i, name in enumerate(FIRST_STUDIES)
}
RESULTS_PRIORITY = 10 * len(FIRST_STUDIES) + 100
RUN_PRIORITY = {}
for _r in RUNS:
    RUN_PRIORITY[_r.run_dir] = max(
        RUN_PRIORITY.get(_r.run_dir, 0), STUDY_PRIORITY.get(_r.study, 0)
    )
DATA_PRIORITY = {}
for _r in RUN_BY_DIR.values():
    _key = f"{_r.task}/{_r.data_sig}"
    DATA_PRIORITY[_key] = max(DATA_PRIORITY.get(_key, 0), RUN_PRIORITY[_r.run_dir])
# What the tables and figures of all runs wait for: every study's study_done file (one
# input per study instead of one per run and rule; see rule study_done).
ALL_STUDIES_DONE = [f"results/index/{name}.done" for name in STUDIES]
# The manifest of every run, as the results rules pass it on (built once, not per rule).
MANIFEST_JSON = json.dumps(S.manifest_rows(RUNS), sort_keys=True)


wildcard_constraints:
    study=r"[A-Za-z0-9_\-]+",
    extra=r"[A-Za-z0-9_\-]+",
    task=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    seed=r"\d+",


def _planned(fn):
    """Give an input or params function its signature up front. Snakemake inspects the
    signature of every such function three times per job while planning (inspect.signature;
    for the train rule's three functions about 5% of a 5,000-run plan); the attribute it
    reads first instead is its own hook for this (snakemake.common.overwrite_function_params).
    Without that hook (another Snakemake) the function is inspected as before."""
    try:
        from snakemake.common import overwrite_function_params
    except ImportError:
        return fn
    import inspect

    overwrite_function_params(fn, inspect.signature(fn).parameters)
    return fn


# One run's directory (the manifest's run_dir); the names of its files are trm/rundir.py's.
RUN_DIR_PATTERN = "results/runs/{task}/{model}/{sig}/seed{seed}"


def _run(wildcards):
    return RUN_BY_DIR[RUN_DIR_PATTERN.format(**wildcards)]


def run_spec(wildcards):
    return C.to_dict(_run(wildcards).spec)


class SpecParam:
    """The train rule's `spec` param: the run's resolved spec, as JSON when the job's shell
    command is formatted (never while planning; str.format calls __format__, then __str__).

    Not a builtin type on purpose: Snakemake records and compares only builtin params
    (persistence._serialize_param), so the spec is no rerun trigger. Nothing that changes
    what a run computes can change in it without changing the run's directory: the
    signature in the path hashes every key of the resolved spec but the seed (in the path
    too) and the keys that change nothing computed (semantic=False in trm/spec/fields.py,
    and new keys at their default). So a finished run is never retrained or resubmitted
    because of its spec; its spec.yaml stays the one it trained with."""

    __slots__ = ("run",)

    def __init__(self, run):
        self.run = run

    def __str__(self):
        return self.run.spec_json

    def __repr__(self):
        return f"<spec of {self.run.run_dir}>"


@_planned
def run_spec_param(wildcards):
    return SpecParam(_run(wildcards))


@_planned
def run_retry_param(wildcards):
    # A recorded failure (metrics.json status failed) is retried by the plain command
    # (trm/retry.py: the id of the last failure in RUN_DIR/failures.log).
    return TRM_RETRY.retry_param(_run(wildcards).run_dir)


@_planned
def run_data_dir(wildcards):
    return _run(wildcards).data_dir


@_planned
def run_priority(wildcards):
    return RUN_PRIORITY[_run(wildcards).run_dir]


def data_priority(wildcards):
    return DATA_PRIORITY[f"{wildcards.task}/{wildcards.datasig}"]


def study_runs(name):
    return [r for r in RUNS if r.study == name]


@_planned
def study_metrics(wildcards):
    return [f"{r.run_dir}/metrics.json" for r in study_runs(wildcards.study)]


def study_done_file(wildcards):
    """What a study's tables and figures wait for: one file per study (rule study_done)."""
    return f"results/index/{wildcards.study}.done"


def study_manifest(wildcards):
    return json.dumps(S.manifest_rows(study_runs(wildcards.study)), sort_keys=True)


def all_targets():
    out = []
    for name in STUDIES:
        out += [f"results/tables/{name}.csv", f"results/figures/{name}.pdf"]
        for extra in STUDIES[name].get("extra_figures") or {}:
            out.append(f"results/figures/{name}/{extra}.pdf")
    out += ["results/tables/runs.csv", "results/tables/paper_reference.md"]
    out += [
        f"results/figures/{f}.pdf"
        for f in ("test_time_depth", "learning_curves", "accuracy_vs_compute")
    ]
    return out
