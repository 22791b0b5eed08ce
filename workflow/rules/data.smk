rule build_dataset:
    output:
        directory("results/data/{task}/{datasig}"),
    log:
        "results/logs/data/{task}-{datasig}.log",
    priority: data_priority
    params:
        data=lambda wc: DATA_SPECS[f"{wc.task}/{wc.datasig}"],
    run:
        from trm.data.build import build_dataset

        build_dataset(C.from_dict(C.DataSpec, params.data), Path(output[0]))
