# trm-bench: configs -> manifest of runs -> datasets -> training -> tables and figures.
# `snakemake` runs the embedded default (tiny scale, the default studies); see README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


# Config and profile files must be plain YAML: Snakemake would run a YTE template
# (`__use_yte__`, which evaluates Python), read an empty file as no settings and let the
# last of two equal keys win. Checked before the configfile line below reads
# configs/config.yaml; --profile and --configfile files Snakemake has read already, so a
# template there is refused here only after it ran (see README, RELIABILITY).
from trm import config as TRM_CONFIG

try:
    TRM_CONFIG.check_workflow_files(
        TRM_CONFIG.workflow_files(workflow.basedir, workflow.overwrite_configfiles),
        Path(workflow.basedir) / "configs",
    )
except TRM_CONFIG.SpecError as e:
    raise WorkflowError(f"invalid configuration: {e}")


configfile: os.path.join(workflow.basedir, "configs", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


conda: "environment.yml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/test_time.smk"
include: "workflow/rules/plan.smk"


localrules:
    all,
    study_done,
    study_tables,
    study_figure,
    study_extra_figure,
    runs_table,
    paper_reference,
    summary_figures,
    test_time_tables,
    test_time_figures,
    test_time_source_figure,


onstart:
    _refusal = gpu_scale_refusal()
    if _refusal:
        raise WorkflowError(_refusal)
    # What this invocation will do: its train jobs, and the studies whose results it makes.
    _jobs = list(workflow.dag.needrun_jobs())
    _todo = [str(Path(j.output[0]).parent) for j in _jobs if j.rule.name == "train"]
    _studies = sum(1 for j in _jobs if j.rule.name == "study_done")
    print(plan_line(_todo, _studies), file=sys.stderr)
    # For the progress lines (trm/progress.py): when this run started, which runs it has.
    TRM_PROGRESS.start(list(RUN_BY_DIR))


rule all:
    default_target: True
    input:
        all_targets(),
        TEST_TIME_TARGETS,
