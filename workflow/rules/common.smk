# Load the selected studies at the chosen scale and expand them into runs. Every study file
# and every run spec is validated here, before any job is scheduled.
import json
import os

from trm import config as C
from trm import studies as S

CONFIG_DIR = Path(workflow.basedir) / "configs"
SCALE = str(config["scale"])
try:
    STUDIES, RUNS = S.manifest(config["studies"], SCALE, CONFIG_DIR)
except C.SpecError as e:
    raise WorkflowError(f"invalid configuration: {e}")

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
# The manifest of every run, as the results rules pass it on (built once, not per rule).
MANIFEST_JSON = json.dumps(S.manifest_rows(RUNS), sort_keys=True)


wildcard_constraints:
    study=r"[A-Za-z0-9_\-]+",
    extra=r"[A-Za-z0-9_\-]+",
    task=r"[A-Za-z0-9_]+",
    model=r"[A-Za-z0-9_]+",
    seed=r"\d+",


def run_spec(wildcards):
    key = f"results/runs/{wildcards.task}/{wildcards.model}/{wildcards.sig}/seed{wildcards.seed}"
    return C.to_dict(RUN_BY_DIR[key].spec)


def run_spec_json(wildcards):
    """The resolved spec as the write_spec job gets it (built once per run: Snakemake
    evaluates params more than once per job while planning)."""
    key = f"results/runs/{wildcards.task}/{wildcards.model}/{wildcards.sig}/seed{wildcards.seed}"
    return RUN_BY_DIR[key].spec_json


def run_data_dir(wildcards):
    key = f"results/runs/{wildcards.task}/{wildcards.model}/{wildcards.sig}/seed{wildcards.seed}"
    return RUN_BY_DIR[key].data_dir


def study_runs(name):
    return [r for r in RUNS if r.study == name]


def study_metrics(wildcards):
    return [f"{r.run_dir}/metrics.json" for r in study_runs(wildcards.study)]


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
