rule runs_table:
    input:
        ALL_STUDIES_DONE,
    output:
        "results/tables/runs.csv",
    log:
        "results/logs/runs_table.log",
    params:
        manifest=MANIFEST_JSON,
    run:
        from trm.results.pipeline import runs_table

        runs_table(json.loads(params.manifest), SCALE, Path(output[0]))


rule paper_reference:
    input:
        ALL_STUDIES_DONE,
    output:
        csv=report(
            "results/tables/paper_reference.csv",
            caption="../report/paper_reference.rst",
            category="Tables",
            subcategory="published numbers",
        ),
        md="results/tables/paper_reference.md",
    log:
        "results/logs/paper_reference.log",
    params:
        manifest=MANIFEST_JSON,
    run:
        from trm.results.pipeline import paper_reference

        paper_reference(json.loads(params.manifest), SCALE, Path(output.csv).parent)


rule study_tables:
    input:
        study_done_file,
    output:
        csv=report(
            "results/tables/{study}.csv",
            caption="../report/table.rst",
            category="Tables",
            subcategory="{study}",
        ),
        md="results/tables/{study}.md",
        tex="results/tables/{study}.tex",
        tests="results/tables/{study}_tests.csv",
        difficulty="results/tables/{study}.difficulty.csv",
    log:
        "results/logs/tables-{study}.log",
    priority: RESULTS_PRIORITY
    params:
        manifest=study_manifest,
        study=lambda wc: json.dumps(STUDIES[wc.study], sort_keys=True, default=str),
    run:
        from trm.results.pipeline import study_tables

        study_tables(
            STUDIES[wildcards.study],
            json.loads(params.manifest),
            SCALE,
            Path(output.csv).parent,
        )


rule study_figure:
    input:
        study_done_file,
    output:
        report(
            "results/figures/{study}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{study}",
        ),
        png="results/figures/{study}.png",
        learning_speed=report(
            "results/figures/{study}.learning_speed.pdf",
            caption="../report/learning_speed.rst",
            category="Figures",
            subcategory="{study}",
        ),
        learning_speed_png="results/figures/{study}.learning_speed.png",
        difficulty=report(
            "results/figures/{study}.difficulty.pdf",
            caption="../report/difficulty.rst",
            category="Figures",
            subcategory="{study}",
        ),
        difficulty_png="results/figures/{study}.difficulty.png",
    log:
        "results/logs/figure-{study}.log",
    priority: RESULTS_PRIORITY
    params:
        manifest=study_manifest,
        study=lambda wc: json.dumps(STUDIES[wc.study], sort_keys=True, default=str),
    run:
        from trm.results.pipeline import study_figure

        study_figure(
            STUDIES[wildcards.study],
            json.loads(params.manifest),
            SCALE,
            Path(output[0]),
        )


rule summary_figures:
    input:
        ALL_STUDIES_DONE,
    output:
        test_time_depth=report(
            "results/figures/test_time_depth.pdf",
            caption="../report/test_time_depth.rst",
            category="Figures",
            subcategory="all runs",
        ),
        learning_curves=report(
            "results/figures/learning_curves.pdf",
            caption="../report/learning_curves.rst",
            category="Figures",
            subcategory="all runs",
        ),
        accuracy_vs_compute=report(
            "results/figures/accuracy_vs_compute.pdf",
            caption="../report/accuracy_vs_compute.rst",
            category="Figures",
            subcategory="all runs",
        ),
    log:
        "results/logs/summary_figures.log",
    params:
        manifest=MANIFEST_JSON,
    run:
        from trm.results.pipeline import summary_figures

        summary_figures(json.loads(params.manifest), SCALE, dict(output.items()))


rule study_extra_figure:
    input:
        study_done_file,
    output:
        report(
            "results/figures/{study}/{extra}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{study}",
        ),
        png="results/figures/{study}/{extra}.png",
    log:
        "results/logs/figure-{study}-{extra}.log",
    priority: RESULTS_PRIORITY
    params:
        manifest=study_manifest,
        study=lambda wc: json.dumps(STUDIES[wc.study], sort_keys=True, default=str),
    run:
        from trm.results.pipeline import study_figure

        study_figure(
            STUDIES[wildcards.study],
            json.loads(params.manifest),
            SCALE,
            Path(output[0]),
            extra=wildcards.extra,
        )
