from trm import retry as TRM_RETRY
from trm import slurm as TRM_SLURM


rule write_spec:
    output:
        "results/runs/{task}/{model}/{sig}/seed{seed}/spec.yaml",
    log:
        "results/runs/{task}/{model}/{sig}/seed{seed}/write_spec.log",
    conda:
        "../../environment.yml"
    params:
        spec=run_spec_json,
    # A shell job (a `run:` job would start a whole Snakemake process per run).
    shell:
        "python -m trm write-spec --json {params.spec:q} --out {output} > {log} 2>&1"


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
    # inline and local runs use one core each. (threads 0 would set OMP_NUM_THREADS=0,
    # which libgomp rejects: the launcher gets 1, a SLURM job its cpus_per_task.)
    threads: 0 if LAUNCHER == "slurm" else 1
    # SLURM resources per run (gpu, cpus_per_task, mem_mb, runtime, partition, ...) come
    # from the config's `slurm:` block (slurm/cluster.yaml) by scale and task; override one
    # with e.g. --set-resources train:runtime=120. See trm/slurm.py for the vocabulary.
    resources:
        **TRM_SLURM.snakemake_resources(config, SCALE),
        train_jobs=1,
        launcher=LAUNCHER,
    params:
        # A recorded failure (metrics.json status failed) is retried by the plain command
        # (trm/retry.py: the id of the last failure in RUN_DIR/failures.log).
        retry=lambda wc: TRM_RETRY.retry_param(
            f"results/runs/{wc.task}/{wc.model}/{wc.sig}/seed{wc.seed}"
        ),
    shell:
        "OMP_NUM_THREADS=1 python -m trm launch --spec {input.spec} --data {input.data} "
        "--out $(dirname {output}) --launcher {resources.launcher} "
        + TRM_SLURM.launch_args()
        + " > {log} 2>&1; rc=$?; python -m trm.progress $(dirname {output}); exit $rc"
