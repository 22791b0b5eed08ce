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
    model = RecursiveReasoningModel(spec, vocab_size, seq_len, num_puzzle_ids)
    # model.ffn_conv_kernel (URM's ConvSwiGLU) is added to the built networks, after every
    # other weight is drawn: with the same seed, a ConvSwiGLU model starts from exactly the
    # base model's weights plus its convs (a paired comparison), and kernel 0 adds nothing.
    for net in (model.net_L, model.net_H):
        if net is not None:
            net.add_ffn_conv(spec.ffn_conv_kernel)
    return model


__all__ = ["build_model", "RecursiveReasoningModel", "grad_call_count"]
