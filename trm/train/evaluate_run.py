"""Test-time depth sweep of a trained run: `python -m trm eval --run RUN_DIR ...`.

    evaluate_run(run_dir, n_supervision=[16, 32], n_cycles=[3, 6], n_latent_steps=[6, 12])

loads RUN_DIR/spec.yaml and the run's checkpoint (the EMA weights when the run trained with
EMA, as its own final evaluation did), and evaluates the whole test split on the grid
n_cycles (T) x n_latent_steps (n), reading every requested number of supervision steps K from
one pass per (T, n). The trained (T, n) and the trained evaluation K are always in the grid:
that row reproduces metrics.json (same weights, examples, batch size and device type).
T and n are forward-time knobs (the weights do not depend on them); a model whose parameters
do depend on them (latents=multi_scale_z has one latent init per latent step) gets an
"error" row for any other n.

Writes RUN_DIR/test_time_depth.json atomically (replacing an earlier sweep) and returns it:
    {"run_dir", "sig", "seed", "task", "model", "checkpoint_step", "finished", "weights",
     "device", "eval_batch_size", "n_test", "trained": {n_cycles, n_latent_steps, n_supervision},
     "arc_voting", "grid": [{n_cycles, n_latent_steps, n_supervision, depth_per_step,
       total_depth, exact_accuracy, cell_accuracy, [valid_optimal_accuracy], [pass@K ...],
       halting: {...}, [arc: {...}], [error]} ...]}
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

from trm import config as C
from trm import rundir
from trm.data.dataset import load_split
from trm.model import build_model
from trm.train import checkpoint as ckpt
from trm.train.evaluate import build_scorers, evaluate, halting_stats
from trm.train import precision
from trm.train.loop import compile_networks, configure_backends, eval_record_at, pick_device

OUTPUT = rundir.TEST_TIME_DEPTH


def find_data_dir(run_dir: Path, spec: C.RunSpec, data_dir) -> Path:
    """The run's dataset: `data_dir` when given, else the one run_info.json recorded, else
    the default location of the spec's data (also used by trm.train.test_time)."""
    if data_dir is not None:
        return Path(data_dir)
    info = run_dir / rundir.RUN_INFO
    if info.is_file():
        recorded = json.loads(info.read_text()).get("data_dir")
        if recorded and (Path(recorded) / "test" / "dataset.json").is_file():
            return Path(recorded)
    from trm.data.resolve import default_data_dir

    fallback = default_data_dir(spec)
    if (fallback / "test" / "dataset.json").is_file():
        return fallback
    raise FileNotFoundError(f"{run_dir}: cannot find the run's dataset (run_info.json data_dir, "
                            f"{fallback}); name it with --data DIR (data_dir= from Python)")


def load_weights(model: torch.nn.Module, state: dict, use_ema: bool) -> None:
    """The checkpoint's weights into `model`; with use_ema its EMA shadow (what the run's
    own final evaluation used)."""
    model.load_state_dict(state["model"])
    if use_ema:
        shadow = state["ema"]["shadow"]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in shadow:
                    p.copy_(shadow[name])


@dataclasses.dataclass
class TrainedRun:
    """A finished (or checkpointed) run opened for evaluation, with every identity check
    training makes: its spec, checkpoint state, dataset and test split, and the device."""
    run_dir: Path
    spec: C.RunSpec
    state: dict
    data_dir: Path
    test: object  # PuzzleSplit
    device: torch.device


def open_trained_run(run_dir, data_dir=None, device=None) -> TrainedRun:
    """Load a run's spec and checkpoint and its test split, refusing weights or data that are
    not this run's; configures the backends (determinism, threads, precision) as training."""
    run_dir = Path(run_dir)
    spec = C.load_spec(run_dir / rundir.SPEC)
    state = ckpt.load(run_dir / rundir.CHECKPOINTS)
    if state is None:
        raise FileNotFoundError(f"{run_dir / rundir.LATEST_CHECKPOINT}: no checkpoint to evaluate")
    # The weights must be this run's (its spec.yaml), not a checkpoint copied from another.
    ckpt.check_identity(state, {"sig": C.signature(spec), "seed": spec.train.seed},
                        run_dir / rundir.LATEST_CHECKPOINT)
    data_dir = find_data_dir(run_dir, spec, data_dir)
    # The same identity checks as training: arrays match their content hash, built for this
    # run's data spec (an external dataset passes; its hash was recorded at training).
    from trm.data import identity

    identity.check_spec(data_dir, spec.data)
    identity.verify_content(data_dir)
    test = load_split(data_dir, "test")
    t = spec.train
    dev = torch.device(device) if device is not None else pick_device(t)
    configure_backends(t, dev)
    precision.check_supported(t.precision, dev.type)
    torch.set_num_threads(t.threads)
    return TrainedRun(run_dir, spec, state, data_dir, test, dev)


def evaluate_run(run_dir, n_supervision=(), n_cycles=(), n_latent_steps=(), *, data_dir=None,
                 device=None, batch_size: int | None = None, verbose: bool = True) -> dict:
    run = open_trained_run(run_dir, data_dir, device)
    run_dir, spec, state, data_dir, test, dev = (run.run_dir, run.spec, run.state, run.data_dir,
                                                 run.test, run.device)
    meta = test.meta
    m, t = spec.model, spec.train
    k_trained = spec.eval.n_supervision or m.n_supervision
    ks = sorted({k_trained, *(int(k) for k in n_supervision)})
    ts = sorted({m.n_cycles, *(int(x) for x in n_cycles)})
    ns = sorted({m.n_latent_steps, *(int(x) for x in n_latent_steps)})
    if min(ks + ts + ns) <= 0:
        raise C.SpecError("n_supervision, n_cycles and n_latent_steps must all be > 0")
    use_ema = bool(t.ema and state.get("ema"))
    bs = batch_size or spec.eval.batch_size
    metrics_path = run_dir / rundir.METRICS
    finished = metrics_path.is_file() and json.loads(metrics_path.read_text()).get("status") == "ok"
    scorers = build_scorers(spec.data.task, test, data_dir, ks)
    grid = []
    for T in ts:
        for n in ns:
            mspec = dataclasses.replace(m, n_cycles=T, n_latent_steps=n)
            per_step = C.effective_depth(mspec)
            base = {"n_cycles": T, "n_latent_steps": n, "depth_per_step": per_step}
            model = build_model(mspec, vocab_size=int(meta["vocab_size"]), seq_len=int(meta["seq_len"]),
                                num_puzzle_ids=int(meta.get("num_puzzle_identifiers", 1))).to(dev)
            try:
                load_weights(model, state, use_ema)
            except RuntimeError as e:  # parameters/buffers that depend on T or n
                grid += [base | {"n_supervision": k, "error": str(e).splitlines()[0]} for k in ks]
                continue
            if t.compile:
                compile_networks(model)
            if verbose:
                print(f"eval T={T} n={n} K<={max(ks)} on {len(test.inputs)} examples", file=sys.stderr)
            ev = evaluate(model, test, max(ks), bs, dev, scorers=scorers, bf16=t.precision == "bf16")
            for k in ks:
                row = base | eval_record_at(ev, k) | {"total_depth": k * per_step,
                                                      "halting": halting_stats(ev["correct"], ev["halted"], k)}
                if "arc" in ev["scorers"]:
                    row["arc"] = ev["scorers"]["arc"][k]
                grid.append(row)
    out = {
        "run_dir": str(run_dir),
        "sig": C.signature(spec),
        "seed": t.seed,
        "task": spec.data.task,
        "model": spec.name,
        "checkpoint_step": int(state["step"]),
        "finished": finished,
        "weights": "ema" if use_ema else "live",
        "device": str(dev),
        "eval_batch_size": bs,
        "n_test": int(len(test.inputs)),
        "trained": {"n_cycles": m.n_cycles, "n_latent_steps": m.n_latent_steps,
                    "n_supervision": m.n_supervision, "n_supervision_eval": k_trained},
        # ARC: this sweep votes per checkpoint, whatever the run's eval.arc_aggregated_voting.
        "arc_voting": "per_checkpoint" if spec.data.task in ("arc1", "arc2") else None,
        "grid": grid,
    }
    ckpt.atomic_write_json(run_dir / OUTPUT, out)
    return out
