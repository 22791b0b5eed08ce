"""train.depth_curriculum at run time: which (n, T) each optimizer step trains at, and what
the schedule costs in network calls.

A curriculum is a list of DepthStage (trm/spec/fields.py): each stage trains at its depth
until its fraction of the optimizer steps is done, the same weights throughout (the loop calls
model.set_depth). Without one, a run is one stage at the model's own depth. Whether a
curriculum is valid (fractions rising to 1.0, depth only growing, ending at the model's
depth) is checked with the rest of the spec (trm/spec/validate.py).

Torch-free and below the model in the import order: trm.model.flops counts FLOPs stage by
stage with depth_schedule. So the functions that need the model's count of gradient-carrying
calls take it as an argument (trm.model.grad_call_count).
"""

from __future__ import annotations

from typing import Callable

from trm.spec.fields import DepthStage, ModelSpec, RunSpec

# (model spec, n, T) -> network calls that carry gradient in one supervision step.
GradCalls = Callable[[ModelSpec, int, int], int]


def depth_schedule(spec: RunSpec, total_steps: int, steps_run: int | None = None) -> list[dict]:
    """train.depth_curriculum as optimizer-step ranges, for the loop and for compute
    accounting: [{start_step, end_step, n_latent_steps, n_cycles}], step indices 0-based and
    end-exclusive; a stage ends after round(until_fraction * total_steps) steps (a stage can
    be empty in a very short run). No curriculum: one stage at the model's depth.
    `steps_run` (a diverged or unfinished run) clips the ranges to the steps actually taken."""
    m = spec.model
    stages = spec.train.depth_curriculum or [DepthStage(1.0, m.n_latent_steps, m.n_cycles)]
    out, start = [], 0
    for st in stages:
        end = total_steps if st.until_fraction == 1.0 else round(st.until_fraction * total_steps)
        end = max(start, min(end, total_steps))
        if steps_run is not None:
            end = min(end, max(start, steps_run))
        out.append({"start_step": start, "end_step": end, "n_latent_steps": st.n_latent_steps,
                    "n_cycles": st.n_cycles})
        start = end
    return out


def depth_at(stages: list[dict], step: int, m: ModelSpec) -> tuple[int, int]:
    """(n, T) of the optimizer step that starts after `step` completed steps. A pure function
    of the step counter, so a resumed run (the counter comes from its checkpoint) continues
    at the right stage."""
    for stage in stages:
        if step < stage["end_step"]:
            return stage["n_latent_steps"], stage["n_cycles"]
    return m.n_latent_steps, m.n_cycles  # past the budget (evaluation, a re-evaluated finished run)


def mean_call_counts(spec: RunSpec, total_steps: int, steps_run: int,
                     grad_calls: GradCalls) -> dict | None:
    """Network calls per optimizer step averaged over the schedule, weighted by the steps
    taken in each stage (the first `steps_run`): what compute accounting must use when a
    depth curriculum runs, since the model reports the depth it is at now, the final one.
    None without a curriculum or before any step: the model's own counts apply."""
    m = spec.model
    stages = depth_schedule(spec, total_steps, steps_run)
    taken = sum(st["end_step"] - st["start_step"] for st in stages)
    if not spec.train.depth_curriculum or taken == 0:
        return None
    fwd = grad = 0
    for st in stages:
        k = st["end_step"] - st["start_step"]
        n, T = st["n_latent_steps"], st["n_cycles"]
        fwd += k * T * (n + 1)
        grad += k * grad_calls(m, n, T)
    return {"forward_calls_per_step": fwd / taken, "grad_calls_per_step": grad / taken}


def schedule_record(spec: RunSpec, total_steps: int, grad_calls: GradCalls) -> dict:
    """train.depth_curriculum as run_info.json shows it: each stage's step range, depth and
    calls per step, and the whole schedule's mean calls per step (a run with a curriculum;
    its budget is at least one step)."""
    m = spec.model
    stages = [dict(st, forward_calls_per_step=st["n_cycles"] * (st["n_latent_steps"] + 1),
                   grad_calls_per_step=grad_calls(m, st["n_latent_steps"], st["n_cycles"]))
              for st in depth_schedule(spec, total_steps)]
    mean = mean_call_counts(spec, total_steps, total_steps, grad_calls)
    return {"stages": stages,
            "mean_forward_calls_per_step": mean["forward_calls_per_step"],
            "mean_grad_calls_per_step": mean["grad_calls_per_step"]}
