"""Evaluation as both official codes do it: every test example runs all supervision steps
(halting is never used to stop at test time), and accuracy is read after each step.

Reading accuracy after steps beyond training's N_sup is the test-time depth sweep: the
same trained weights, more recursion at inference.
"""

from __future__ import annotations

import numpy as np
import torch

from trm.data.dataset import PuzzleSplit


def example_puzzle_ids(split: PuzzleSplit) -> np.ndarray:
    counts = np.diff(split.puzzle_indices)
    return np.repeat(split.puzzle_identifiers, counts)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    split: PuzzleSplit,
    n_steps: int,
    batch_size: int,
    device: torch.device,
    max_examples: int = 0,
) -> dict:
    """Returns per-step exact/cell accuracy lists (index k = after k+1 steps), the per-example
    exact correctness after every step ([n_steps, N] bool), and halting statistics."""
    was_training = model.training
    model.eval()
    ignore = int(split.meta.get("ignore_label_id", 0) if split.meta.get("ignore_label_id") is not None else -100)
    n = len(split.inputs) if max_examples <= 0 else min(max_examples, len(split.inputs))
    pids_all = example_puzzle_ids(split)
    exact = np.zeros((n_steps, n), dtype=bool)
    cells_correct = np.zeros(n_steps, dtype=np.int64)
    cells_total = 0
    first_halt = np.full(n, n_steps + 1, dtype=np.int64)  # first step whose halt logit > 0
    q_halt_last = np.zeros(n, dtype=np.float32)
    for start in range(0, n, batch_size):
        end = min(start + batch_size, n)
        inputs = torch.as_tensor(split.inputs[start:end], dtype=torch.long, device=device)
        labels = torch.as_tensor(split.labels[start:end], dtype=torch.long, device=device)
        pids = torch.as_tensor(pids_all[start:end], dtype=torch.long, device=device)
        mask = labels != ignore
        latents = model.initial_latents(end - start, device)
        cells_total += int(mask.sum())
        for k in range(n_steps):
            latents, logits, q_halt, _ = model(latents, inputs, pids)
            pred = logits.argmax(-1)
            hit = (pred == labels) & mask
            exact[k, start:end] = (hit.sum(-1) == mask.sum(-1)).cpu().numpy()
            cells_correct[k] += int(hit.sum())
            halted_now = (q_halt > 0).cpu().numpy()
            fh = first_halt[start:end]
            fh[(fh > n_steps) & halted_now] = k + 1
            q_halt_last[start:end] = q_halt.float().cpu().numpy()
    model.train(was_training)
    return {
        "n": n,
        "exact_accuracy": exact.mean(axis=1).tolist(),
        "cell_accuracy": (cells_correct / max(cells_total, 1)).tolist(),
        "correct": exact,
        "halting": {
            "mean_first_halt_step": float(np.minimum(first_halt, n_steps).mean()),
            "frac_halted_by_last_step": float((first_halt <= n_steps).mean()),
        },
    }
