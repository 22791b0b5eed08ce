# trm-bench: configs -> manifest of runs -> datasets -> training -> tables and figures.
# `snakemake` runs the embedded default (tiny scale, every study); see README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "configs", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


conda: "environment.yml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/results.smk"


localrules:
    all,
    write_spec,
    study_tables,
    study_figure,
    study_extra_figure,
    runs_table,
    paper_reference,
    summary_figures,


rule all:
    default_target: True
    input:
        all_targets(),
