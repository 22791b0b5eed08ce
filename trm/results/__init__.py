"""Reporting: runs -> tidy table -> per-study tables, tests, reference comparisons, figures.

    collect.collect_runs(manifest, root)        the runs table (one row per study x run)
    collect.write_runs_table(runs, path)        results/tables/runs.csv, the source of truth
    tables.write_study_tables(study, runs, dir) <name>.csv/.md/.tex and <name>_tests.csv
    reference.reference_table(runs)             ours beside the published numbers
    figures.plot_study(study, runs, out_pdf)    the study's figure, PDF + PNG

Submodules are imported explicitly (figures pulls in matplotlib; the rest do not).
"""
