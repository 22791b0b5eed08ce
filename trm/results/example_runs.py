"""A small constructed study on disk (manifest + run directories) for tests and demos.

Nothing here is a result: accuracies come from a toy model in which each test puzzle has a
difficulty and a run solves the puzzles easier than its ability, so paired tests see
correlated predictions as they would with real models. Deterministic for a given seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from trm import config
from trm import rundir

EXAMPLE_STUDY = {
    "name": "example_depth",
    "description": "Constructed data: exact accuracy vs latent steps for two models.",
    "question": "Does more latent recursion help, and is TRM better than HRM at equal n?",
    "tasks": ["sudoku"],
    "models": ["hrm", "trm"],
    "seeds": [0, 1, 2],
    "base": {},
    "grid": {"model.n_latent_steps": [2, 4, 6]},
    "zip": {},
    "include": [],
    "exclude": [],
    "figure": {"x": "effective_depth", "y": "exact_accuracy", "hue": "model"},
}

# (model, n) -> what happened to each seed, for cells that are not all "ok".
SPECIAL_CELLS = {
    ("hrm", 6): ["ok", "diverged", "missing"],
    ("trm", 6): ["missing", "missing", "missing"],
}
MODEL_KNOBS = {
    "hrm": {
        "share_weights": False,
        "layers": 4,
        "n_cycles": 2,
        "grad_steps": "one_step",
        "halting": "q_learning",
        "mixer": "attention",
    },
    "trm": {
        "share_weights": True,
        "layers": 2,
        "n_cycles": 3,
        "grad_steps": "last_cycle",
        "halting": "bce",
        "mixer": "mlp",
    },
}
N_SUP = 4
TEST_TIME_STEPS = [1, 2, 4, 8, 16]


def _spec(model: str, n: int, seed: int, n_test: int) -> dict:
    spec = config.to_dict(config.RunSpec())
    spec["name"] = model
    spec["model"].update(MODEL_KNOBS[model], n_latent_steps=n, n_supervision=N_SUP)
    spec["data"].update(task="sudoku", grid=6, n_test=n_test)
    spec["train"]["seed"] = seed
    return spec


def _ability(model: str, n: int, seed_rng: np.random.Generator, k: float) -> float:
    """Fraction of puzzles solved after k supervision steps (saturating in k and n)."""
    base = {"hrm": 0.35, "trm": 0.55}[model] + 0.05 * n
    return float(np.clip(base * (1 - 0.6**k) / (1 - 0.6**N_SUP) + seed_rng.normal(0, 0.03), 0, 1))


def write_example_study(
    root: Path, n_test: int = 200, seed: int = 0, study: dict | None = None
) -> tuple[dict, pd.DataFrame]:
    """Write run dirs under `root` and return (study, manifest) with run_dir relative to root."""
    study = study or EXAMPLE_STUDY
    root = Path(root)
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n_test)  # shared test set: puzzles are the same for every run
    rows = []
    for model in study["models"]:
        for n in study["grid"]["model.n_latent_steps"]:
            fates = SPECIAL_CELLS.get((model, n), ["ok"] * len(study["seeds"]))
            for s, fate in zip(study["seeds"], fates):
                spec = _spec(model, n, s, n_test)
                sig = config.signature(config.from_dict(config.RunSpec, spec))
                run_dir = Path("runs") / "sudoku" / model / sig / f"seed{s}"
                rows.append(
                    {
                        "study": study["name"],
                        "task": "sudoku",
                        "model": model,
                        "scale": "example",
                        "sig": sig,
                        "seed": s,
                        "run_dir": str(run_dir),
                        "model.n_latent_steps": n,
                    }
                )
                if fate != "missing":
                    _write_run(root / run_dir, spec, model, n, s, fate, difficulty, seed)
    return study, pd.DataFrame(rows)


def _write_run(
    run_dir: Path,
    spec: dict,
    model: str,
    n: int,
    seed: int,
    fate: str,
    difficulty: np.ndarray,
    base_seed: int,
) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_rng = np.random.default_rng([base_seed, seed, n, len(model), ord(model[0])])
    offset = seed_rng.normal(0, 0.03)

    def acc(k: float) -> float:
        return _ability(model, n, np.random.default_rng(0), k) + offset

    correct = difficulty < acc(N_SUP)
    m = config.from_dict(config.ModelSpec, spec["model"])
    steps = 300
    fwd = m.n_cycles * (m.n_latent_steps + 1)
    grad = 2 if m.grad_steps == "one_step" else m.n_latent_steps + 1
    metrics = {
        "status": fate,
        "task": "sudoku",
        "model": model,
        "sig": config.signature(config.from_dict(config.RunSpec, spec)),
        "seed": seed,
        "params": 90_000 * (2 if not m.share_weights else 1),
        "puzzle_embedding_params": 0,
        "effective_depth": config.effective_depth(m),
        "forward_calls_per_step": fwd,
        "grad_calls_per_step": grad,
        "steps": steps if fate == "ok" else 120,
        "wall_time_s": 60.0 + 5 * fwd,
        "train_time_s": 55.0 + 5 * fwd,
        "n_test": len(difficulty),
        "exact_accuracy": float(correct.mean()) if fate == "ok" else 0.0,
        "cell_accuracy": float(min(1.0, 0.5 + correct.mean() / 2)) if fate == "ok" else 0.1,
        "per_step": {
            "exact_accuracy": [float(np.mean(difficulty < acc(k))) for k in range(1, N_SUP + 1)],
            "cell_accuracy": [
                float(0.5 + np.mean(difficulty < acc(k)) / 2) for k in range(1, N_SUP + 1)
            ],
        },
        "test_time": [
            {
                "n_supervision": k,
                "exact_accuracy": float(np.mean(difficulty < acc(k))),
                "cell_accuracy": float(0.5 + np.mean(difficulty < acc(k)) / 2),
            }
            for k in TEST_TIME_STEPS
        ],
        "diverged_at_step": 120 if fate == "diverged" else None,
        "error": "loss became non-finite at step 120" if fate == "diverged" else None,
        "n_supervision_eval": N_SUP,
        "data_provenance": {"kind": "generated", "source": "sudoku 6x6 generator (constructed)"},
        "spec": spec,
    }
    (run_dir / rundir.METRICS).write_text(json.dumps(metrics, indent=1))
    if fate == "ok":
        np.savez(run_dir / rundir.PREDICTIONS, correct=correct)
    with open(run_dir / rundir.TRAIN_LOG, "w") as f:
        for step in range(0, metrics["steps"] + 1, 20):
            loss = 2.0 * np.exp(-step / (80 + 20 * n)) + 0.1 + abs(seed_rng.normal(0, 0.02))
            if fate == "diverged" and step >= 100:
                loss = float("nan")
            f.write(json.dumps({"step": step, "loss": loss, "lr": 1e-3}) + "\n")
