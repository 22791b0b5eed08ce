rule write_spec:
    output:
        "results/runs/{task}/{model}/{sig}/seed{seed}/spec.yaml",
    log:
        "results/runs/{task}/{model}/{sig}/seed{seed}/write_spec.log",
    params:
        spec=run_spec,
    run:
        C.dump_spec(C.from_dict(C.RunSpec, params.spec), Path(output[0]))


rule train:
    input:
        spec=ancient("results/runs/{task}/{model}/{sig}/seed{seed}/spec.yaml"),
        data=ancient(run_data_dir),
    output:
        "results/runs/{task}/{model}/{sig}/seed{seed}/metrics.json",
    log:
        "results/runs/{task}/{model}/{sig}/seed{seed}/launcher.log",
    conda:
        "../../environment.yml"
    # Remote jobs only wait here (threads 0, capped by the profile's `train_jobs`);
    # inline and local runs use one core each.
    threads: 0 if LAUNCHER == "slurm" else 1
    resources:
        train_jobs=1,
        launcher=LAUNCHER,
    shell:
        "python -m trm launch --spec {input.spec} --data {input.data} "
        "--out $(dirname {output}) --launcher {resources.launcher} > {log} 2>&1"
