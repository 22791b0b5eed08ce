"""The CPU bf16 attention path (trm/model/layers.py): SDPA runs in fp32 under bf16 autocast
(the bf16 CPU flash-attention backward is ~10x slower), returns bf16, and fp32 never takes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trm.model.layers import Attention, Rotary

torch.set_num_threads(1)


def _seen_dtypes(monkeypatch):
    seen = []
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        out = real(q, k, v, **kw)
        # The output dtype tells whether autocast recast the inputs inside the call.
        seen.append((q.dtype, k.dtype, v.dtype, out.dtype))
        return out

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    return seen


def test_bf16_autocast_attention_runs_sdpa_in_fp32_and_stays_close(monkeypatch):
    torch.manual_seed(0)
    att, rot = Attention(64, 4), Rotary(16, 10, 10000.0)
    x = torch.randn(2, 10, 64, requires_grad=True)
    ref = att(x, rot)
    seen = _seen_dtypes(monkeypatch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = att(x, rot)
    assert seen == [(torch.float32,) * 4]  # fp32 in, and autocast did not recast them to bf16
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, atol=0.05, rtol=0.05)
    y.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_fp32_attention_calls_sdpa_unchanged(monkeypatch):
    att = Attention(64, 4)
    seen = _seen_dtypes(monkeypatch)
    att(torch.randn(2, 10, 64), None)
    assert seen == [(torch.float32,) * 4]


def test_autocast_caches_bf16_weights_only_when_grad_is_on():
    # Under no_grad (HRM's Q-target pass, eval) a cached bf16 copy of every weight would sit
    # beside the copies the training graph still holds (trm/train/evaluate.py autocast).
    from trm.train.evaluate import autocast

    cpu = torch.device("cpu")
    with autocast(cpu, True):
        assert torch.is_autocast_cache_enabled()
    with torch.no_grad(), autocast(cpu, True):
        assert not torch.is_autocast_cache_enabled()
