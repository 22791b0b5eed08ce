rule runs_table:
    input:
        [f"{d}/metrics.json" for d in RUN_BY_DIR],
    output:
        "results/tables/runs.csv",
    params:
        manifest=json.dumps(S.manifest_rows(RUNS), sort_keys=True),
    log:
        "results/logs/runs_table.log",
    run:
        from trm.results.pipeline import runs_table

        runs_table(json.loads(params.manifest), SCALE, Path(output[0]))


rule study_tables:
    input:
        study_metrics,
    output:
        csv="results/tables/{study}.csv",
        md="results/tables/{study}.md",
        tex="results/tables/{study}.tex",
    params:
        manifest=study_manifest,
    log:
        "results/logs/tables-{study}.log",
    run:
        from trm.results.pipeline import study_tables

        study_tables(STUDIES[wildcards.study], json.loads(params.manifest), SCALE, Path(output.csv).parent)


rule study_figure:
    input:
        study_metrics,
    output:
        report(
            "results/figures/{study}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{study}",
        ),
        png="results/figures/{study}.png",
    params:
        manifest=study_manifest,
    log:
        "results/logs/figure-{study}.log",
    run:
        from trm.results.pipeline import study_figure

        study_figure(STUDIES[wildcards.study], json.loads(params.manifest), SCALE, Path(output[0]))
