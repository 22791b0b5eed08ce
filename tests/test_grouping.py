"""The injection sums are grouped as the official code groups them (trm/model/recursion.py,
"Grouping"): f_L(z + (y + x)), f_H(y + z); multi-scale s = ((z1 + z2) + ...) and f_L(s + (y + x)),
f_H(y + s); single z f_L(z + x), f_H(z).

Float addition is not associative, so the test records the input of every network call and
replays the recursion from the recorded outputs with the official grouping, requiring
bit-equality; the inputs are drawn at different scales so that the other grouping really gives
other bits (asserted too, so the test cannot pass vacuously)."""

from __future__ import annotations

import pytest
import torch

from trm.config import ModelSpec
from trm.model import build_model

torch.set_num_threads(1)

V, L, B, D = 11, 16, 3, 32


def _spec(**knobs) -> ModelSpec:
    base = dict(hidden_size=D, num_heads=4, layers=1, expansion=2.0, n_latent_steps=3,
                n_cycles=2, ffn_multiple=16, puzzle_emb_len=2, puzzle_emb_dim=D)
    base.update(knobs)
    return ModelSpec(**base)


def _record(model):
    """Every network call in order: (input h, output)."""
    calls = []

    def hook(module, args, out):
        calls.append((args[0].detach().clone(), out.detach().clone()))

    nets = {id(model.f_L): model.f_L, id(model.f_H): model.f_H}
    handles = [net.register_forward_hook(hook) for net in nets.values()]
    return calls, handles


def _run(spec):
    torch.manual_seed(0)
    model = build_model(spec, V, L, 4)
    n_pos = L + model.prefix_len
    # Latents at mixed scales (as after a few steps: y and z of different size than x), so
    # that the two groupings round differently.
    g = torch.Generator().manual_seed(1)
    latents = tuple(torch.randn(B, n_pos, D, generator=g) * s
                    for s, _ in zip((7.3, 0.031, 3.1, 0.57, 11.0), model.latent_names))
    inputs = torch.randint(1, V, (B, L), generator=g)
    pids = torch.randint(0, 4, (B,), generator=g)
    with torch.no_grad():
        model.puzzle_emb.weight.normal_(generator=g)  # a nonzero prefix too
        x = model.embed_inputs(inputs, pids)
    calls, handles = _record(model)
    model(latents, inputs, pids)
    for h in handles:
        h.remove()
    return model, latents, x, calls


def _left_sum(ts):
    h = ts[0]
    for t in ts[1:]:
        h = h + t
    return h


@pytest.mark.parametrize("knobs", [
    dict(),  # TRM, one shared net
    dict(share_weights=False, layers=2, n_latent_steps=2, n_cycles=2, grad_steps="one_step",
         halting="q_learning", puzzle_emb_len=1),  # HRM: separate L and H nets
], ids=["trm", "hrm"])
def test_y_z_inputs_are_z_plus_y_plus_x_grouped_officially(knobs):
    spec = _spec(**knobs)
    model, (y, z), x, calls = _run(spec)
    n, T = spec.n_latent_steps, spec.n_cycles
    assert len(calls) == T * (n + 1)
    # The constructed case discriminates: the other grouping gives other bits.
    assert not torch.equal((z + y) + x, z + (y + x))
    k = 0
    for _ in range(T):
        for _ in range(n):
            h, out = calls[k]
            assert torch.equal(h, z + (y + x)), f"call {k + 1}: f_L input is not z + (y + x)"
            z, k = out, k + 1
        h, out = calls[k]
        assert torch.equal(h, y + z), f"call {k + 1}: f_H input is not y + z"
        y, k = out, k + 1


def test_multi_scale_inputs_sum_the_zs_first_then_add_y_plus_x():
    spec = _spec(latents="multi_scale_z")
    model, (y, *zs), x, calls = _run(spec)
    n, T = spec.n_latent_steps, spec.n_cycles
    assert len(calls) == T * (n + 1)
    s = _left_sum(zs)
    assert not torch.equal(_left_sum([*zs, y, x]), s + (y + x))
    k = 0
    for _ in range(T):
        for step in range(n):
            h, out = calls[k]
            assert torch.equal(h, _left_sum(zs) + (y + x)), f"call {k + 1}: f_L input grouping"
            zs[step % len(zs)], k = out, k + 1
        h, out = calls[k]
        assert torch.equal(h, y + _left_sum(zs)), f"call {k + 1}: f_H input grouping"
        y, k = out, k + 1


def test_single_z_inputs_are_z_plus_x_then_z():
    spec = _spec(latents="single_z")
    model, (z,), x, calls = _run(spec)
    n, T = spec.n_latent_steps, spec.n_cycles
    k = 0
    for _ in range(T):
        for _ in range(n):
            h, out = calls[k]
            assert torch.equal(h, z + x)
            z, k = out, k + 1
        h, out = calls[k]
        assert torch.equal(h, z)
        z, k = out, k + 1
