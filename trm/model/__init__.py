"""The model package: one recursive-reasoning model configured by ModelSpec.

    model = build_model(spec, vocab_size, seq_len, num_puzzle_ids)
    lat = model.initial_latents(batch_size, device)
    lat = model.reset_latents(lat, halted)             # halted samples back to the init
    lat, logits, q_halt, q_continue = model(lat, inputs, puzzle_ids)   # one supervision step
"""

from __future__ import annotations

from trm.config import ModelSpec
from trm.model.recursion import RecursiveReasoningModel, grad_call_count


def build_model(
    spec: ModelSpec, vocab_size: int, seq_len: int, num_puzzle_ids: int
) -> RecursiveReasoningModel:
    """Build on the current default device (wrap in `with torch.device("meta"):` to count
    parameters of huge configs without allocating them)."""
    return RecursiveReasoningModel(spec, vocab_size, seq_len, num_puzzle_ids)


__all__ = ["build_model", "RecursiveReasoningModel", "grad_call_count"]
