from trm import resources as TRM_RESOURCES
from trm import rundir as TRM_RUNDIR


rule train:
    # The run's spec.yaml is written by this job itself (params.spec, first line of the
    # shell), not by a job of its own: one job per run instead of two halves the plan.
    input:
        data=ancient(run_data_dir),
    output:
        f"{RUN_DIR_PATTERN}/{TRM_RUNDIR.METRICS}",
    log:
        f"{RUN_DIR_PATTERN}/{TRM_RUNDIR.LAUNCHER_LOG}",
    # The runs of the config's first_studies start first (common.smk, RUN_PRIORITY).
    priority: run_priority
    conda:
        "../../environment.yml"
    # Remote jobs only wait here (threads 0, capped by the profile's `train_jobs`);
    # inline and local runs use one core each. (threads 0 would set OMP_NUM_THREADS=0,
    # which libgomp rejects: the launcher gets 1, a SLURM job its cpus_per_task.)
    threads: 0 if LAUNCHER == "slurm" else 1
    # SLURM resources per run (gpu, cpus_per_task, mem_mb, runtime, partition, ...) come
    # from the config's `slurm:` block (slurm/cluster.yaml) by scale and task; override one
    # with e.g. --set-resources train:runtime=120. See trm/resources.py for the vocabulary.
    resources:
        **TRM_RESOURCES.snakemake_resources(config, SCALE),
        train_jobs=1,
        launcher=LAUNCHER,
    params:
        # The resolved spec as JSON, made only when the job starts; never a rerun trigger
        # (see SpecParam in common.smk: the signature in the path covers it).
        spec=run_spec_param,
        # A recorded failure (metrics.json status failed) is retried by the plain command
        # (trm/retry.py: the id of the last failure in RUN_DIR/failures.log).
        retry=run_retry_param,
    # write-spec validates the spec and writes spec.yaml atomically (what the launcher, a
    # SLURM job and the results read); only then does the launcher start.
    shell:
        "python -m trm write-spec --json {params.spec:q} "
        f"--out $(dirname {{output}})/{TRM_RUNDIR.SPEC} "
        "> {log} 2>&1 && OMP_NUM_THREADS=1 python -m trm launch "
        f"--spec $(dirname {{output}})/{TRM_RUNDIR.SPEC} --data {{input.data}} "
        "--out $(dirname {output}) --launcher {resources.launcher} "
        + TRM_RESOURCES.launch_args()
        + " >> {log} 2>&1; rc=$?; python -m trm.progress $(dirname {output}); exit $rc"


# A study's runs are all done: the one input of the study's tables and figures, and of the
# tables and figures of all runs, instead of each listing every metrics.json. Snakemake's
# planning pays per input file and rule, and five rules listing 5,000 runs each were a
# third of a 5,000-run plan. Its mtime does the work: a run that (re)trains makes it newer,
# so everything after it is rebuilt as before.
rule study_done:
    input:
        study_metrics,
    output:
        "results/index/{study}.done",
    log:
        "results/logs/done-{study}.log",
    priority: RESULTS_PRIORITY
    conda:
        "../../environment.yml"
    shell:
        "touch {output} > {log} 2>&1"
