"""What metrics.json holds (the metrics of record, written last by the trainer): the run's
header, its counts and depth, and the final evaluation at the evaluation N_sup with its
per-step curves and its extra step counts (eval.extra_n_supervision). Readers of older runs
(trm/results/collect.py) rely on these keys: add keys, never rename them."""

from __future__ import annotations

from trm import config as C
from trm import rundir
from trm.files import atomic_save_npz
from trm.train.evaluate import eval_record_at, task_metrics_at


SINK_KEYS = ("exact_accuracy", "cell_accuracy", "valid_optimal_accuracy", "pass@1", "pass@2")


def eval_summary(ev: dict, k: int) -> dict:
    """Scalars of one periodic evaluation, at the headline N_sup, for train.jsonl."""
    out = {"eval_n": ev["n"], "eval_exact_accuracy": ev["exact_accuracy"][k - 1],
           "eval_cell_accuracy": ev["cell_accuracy"][k - 1]}
    for key, value in task_metrics_at(ev, k).items():
        out[f"eval_{key}"] = value
    return out


def metrics_record(spec: C.RunSpec, trainer, status: str, diverged_at, error) -> dict:
    counts = trainer.model.param_counts()
    calls = trainer.training_call_counts()
    out = {
        **rundir.metrics_header(spec, status),
        "steps": trainer.step,
        "total_steps": trainer.total_steps,
        "diverged_at_step": diverged_at,
        "error": error,
        **counts,
        **calls,
        "effective_depth": C.effective_depth(spec.model),
        "train_flops": None,  # counted from the spec by trm.results.collect (trm/model/flops.py)
        "data_provenance": trainer.data_provenance,
        "spec": C.to_dict(spec),
    }
    if status != "ok":
        return out
    ev = trainer.evaluate()  # all ranks take part
    n_sup = trainer.n_sup_eval
    if trainer.comm.is_main:
        atomic_save_npz(trainer.run_dir / rundir.PREDICTIONS, correct=ev["correct"][n_sup - 1])
    per_step = {"exact_accuracy": ev["exact_accuracy"], "cell_accuracy": ev["cell_accuracy"]}
    if "maze" in ev["scorers"]:
        per_step["valid_optimal_accuracy"] = ev["scorers"]["maze"]["valid_optimal_accuracy"]
    out.update(
        {
            "n_test": ev["n"],
            "n_supervision_eval": n_sup,
            "exact_accuracy": ev["exact_accuracy"][n_sup - 1],
            "cell_accuracy": ev["cell_accuracy"][n_sup - 1],
            **task_metrics_at(ev, n_sup),
            "per_step": per_step,
            "test_time": [eval_record_at(ev, k) for k in trainer.eval_ks],
            "halting": ev["halting"],
        }
    )
    if "arc" in ev["scorers"]:
        out["arc"] = {"n_supervision": n_sup, **ev["scorers"]["arc"][n_sup]}
    # Accuracy per instance-difficulty bin after every step (datasets that record difficulty).
    for key in ("by_difficulty", "by_cell_difficulty"):
        if key in ev:
            out[key] = ev[key]
    return out
