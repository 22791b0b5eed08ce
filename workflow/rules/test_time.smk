# Studies of kind test_time (trm/studies/test_time.py): more compute at test time on runs that
# training studies trained. One job per (run, test-time study) writes the run's record;
# tables and figures are built from the records. Their outputs share the names of the
# training studies' rules (results/tables/<study>.csv, results/figures/<study>.pdf), so the
# ruleorder below gives them to these rules, for test-time study names only.
from trm.studies import test_time as TRM_TEST_TIME

TEST_TIME_STUDIES = TRM_TEST_TIME.selected(STUDIES)
# A wildcard pattern of the test-time study names ("(?!)" matches nothing when none is selected).
TEST_TIME_NAMES = "|".join(TEST_TIME_STUDIES) or "(?!)"
# What `rule all` needs beyond all_targets(): one figure per source study.
TEST_TIME_TARGETS = TRM_TEST_TIME.all_targets(TEST_TIME_STUDIES)


ruleorder: test_time_tables > study_tables
ruleorder: test_time_figures > study_figure
ruleorder: test_time_source_figure > study_extra_figure


rule test_time_eval:
    input:
        # Not ancient: a re-evaluated run (a new metrics.json) is evaluated again here too.
        "results/runs/{task}/{model}/{sig}/seed{seed}/metrics.json",
    output:
        "results/runs/{task}/{model}/{sig}/seed{seed}/test_time/{study}.json",
    log:
        "results/runs/{task}/{model}/{sig}/seed{seed}/test_time/{study}.log",
    wildcard_constraints:
        study=TEST_TIME_NAMES,
    conda:
        "../../environment.yml"
    threads: 1
    params:
        settings=lambda wc: json.dumps(
            TEST_TIME_STUDIES[wc.study]["settings"], sort_keys=True
        ),
    # Every setting of the run in this one process (one model load, one data load).
    shell:
        "OMP_NUM_THREADS=1 python -m trm.train.test_time --run $(dirname {input}) "
        "--study {wildcards.study} --settings {params.settings:q} --out {output} > {log} 2>&1"


rule test_time_tables:
    input:
        lambda wc: TRM_TEST_TIME.records(TEST_TIME_STUDIES[wc.study]),
    output:
        csv=report(
            "results/tables/{study}.csv",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{study}",
        ),
        runs="results/tables/{study}_runs.csv",
        md="results/tables/{study}.md",
    log:
        "results/logs/tables-{study}.log",
    wildcard_constraints:
        study=TEST_TIME_NAMES,
    priority: RESULTS_PRIORITY
    params:
        study=lambda wc: json.dumps(
            TEST_TIME_STUDIES[wc.study], sort_keys=True, default=str
        ),
    run:
        from trm.results.pipeline import test_time_tables

        test_time_tables(json.loads(params.study), Path(output.csv).parent)


rule test_time_figures:
    input:
        lambda wc: TRM_TEST_TIME.records(TEST_TIME_STUDIES[wc.study]),
    output:
        report(
            "results/figures/{study}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{study}",
        ),
        png="results/figures/{study}.png",
    log:
        "results/logs/figure-{study}.log",
    wildcard_constraints:
        study=TEST_TIME_NAMES,
    priority: RESULTS_PRIORITY
    params:
        study=lambda wc: json.dumps(
            TEST_TIME_STUDIES[wc.study], sort_keys=True, default=str
        ),
    run:
        from trm.results.pipeline import test_time_figure

        test_time_figure(json.loads(params.study), Path(output[0]))


rule test_time_source_figure:
    input:
        lambda wc: TRM_TEST_TIME.records(TEST_TIME_STUDIES[wc.study]),
    output:
        report(
            "results/figures/{study}/{source}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{study}",
        ),
        png="results/figures/{study}/{source}.png",
    log:
        "results/logs/figure-{study}-{source}.log",
    wildcard_constraints:
        study=TEST_TIME_NAMES,
    priority: RESULTS_PRIORITY
    params:
        study=lambda wc: json.dumps(
            TEST_TIME_STUDIES[wc.study], sort_keys=True, default=str
        ),
    run:
        from trm.results.pipeline import test_time_figure

        test_time_figure(
            json.loads(params.study), Path(output[0]), source=wildcards.source
        )
