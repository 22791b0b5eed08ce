"""Building blocks of the HRM/TRM networks: init, RMSNorm, SwiGLU (and URM's ConvSwiGLU),
RoPE, attention, the MLP token mixer, the post-norm block and a stack of blocks.

Every choice here follows the official code (HRM 42410da, TinyRecursiveModels e7b6871) because
the parameter counts and the training dynamics depend on it:
- no biases anywhere (only the Q-head has one, see heads.py);
- post-norm, RMSNorm without a learned scale, computed in float32;
- truncated-normal "LeCun" init (std 1/sqrt(fan_in)), JAX-style truncation at 2 std.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------
# Init
# --------------------------------------------------------------------------------------

# A standard normal truncated to [-2, 2] has std < 1; JAX (and the official code) divides by
# that std so the initialised tensor has exactly the requested std.
_TRUNC = 2.0
_PDF_AT_TRUNC = math.exp(-0.5 * _TRUNC**2) / math.sqrt(2 * math.pi)
_MASS_INSIDE = math.erf(_TRUNC / math.sqrt(2))
_TRUNC_STD = math.sqrt(1 - 2 * _TRUNC * _PDF_AT_TRUNC / _MASS_INSIDE)  # ~0.8796


@torch.no_grad()
def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Fill `tensor` from N(0, s^2) truncated to +-2s, with s chosen so the result has std `std`.

    Sampling by inverse CDF: u ~ U(erf(-2/sqrt2), erf(2/sqrt2)), x = sqrt2 * erfinv(u).
    std == 0 gives zeros (used for the puzzle-embedding table)."""
    if std == 0:
        return tensor.zero_()
    scale = std / _TRUNC_STD
    tensor.uniform_(-_MASS_INSIDE, _MASS_INSIDE)
    tensor.erfinv_().mul_(math.sqrt(2) * scale)
    return tensor.clamp_(-_TRUNC * scale, _TRUNC * scale)


def linear(in_features: int, out_features: int, bias: bool = False) -> nn.Linear:
    """nn.Linear with the official truncated-LeCun init (std 1/sqrt(fan_in)) and zero bias."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    trunc_normal_(layer.weight, std=in_features**-0.5)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


# --------------------------------------------------------------------------------------
# Norm and feed-forward
# --------------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last axis, no learned scale, computed in float32 (stable under bf16)."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


def swiglu_inner_size(width: int, expansion: float, multiple: int = 256) -> int:
    """Official inner width: 2/3 of expansion*width (SwiGLU has 3 matrices, not 2), rounded
    up to a multiple of 256. E.g. width 512, expansion 4 -> 1536; width 97 -> 512."""
    inner = round(expansion * width * 2 / 3)
    return -(-inner // multiple) * multiple


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up share one matrix, as the official code.

    With a sequence conv (`add_sequence_conv(k)`, model.ffn_conv_kernel = k > 0) it is URM's
    ConvSwiGLU: down(silu(conv(silu(gate(x)) * up(x)))), see SequenceConv."""

    def __init__(self, width: int, expansion: float, multiple: int = 256):
        super().__init__()
        inner = swiglu_inner_size(width, expansion, multiple)
        self.gate_up = linear(width, 2 * inner)
        self.down = linear(inner, width)
        # None = the official SwiGLU: no module, so state_dict and numerics stay as they were.
        self.conv: SequenceConv | None = None

    def add_sequence_conv(self, kernel: int) -> None:
        """Turn this SwiGLU into a ConvSwiGLU (a no-op for kernel 0 or if it has one)."""
        if kernel > 0 and self.conv is None:
            self.conv = SequenceConv(self.down.in_features, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        h = F.silu(gate) * up
        if self.conv is not None:
            h = F.silu(self.conv(h))
        return self.down(h)


class SequenceConv(nn.Module):
    """URM's short depthwise convolution over the sequence axis (UbiquantAI/URM 41de2c3,
    models/layers.py ConvSwiGLU, read for its design, not copied): one kernel of `kernel` taps
    plus a bias per inner channel (groups = channels), applied to the gated SwiGLU activation
    [B, L, C] along L; the caller applies a SiLU to its output before the down projection.

    Geometry as URM: zero padding kernel // 2 on both sides, then the first L outputs are
    kept. So output t sees inputs t - kernel//2 .. t + (kernel-1) - kernel//2: kernel 2 (URM's
    default and the value it trains with) is causal, out[t] = w0 h[t-1] + w1 h[t] + b; an odd
    kernel is centred. The sequence is the flattened grid with the puzzle-prefix tokens in
    front (URM's too), so the first cell also sees the last prefix token.
    Init: PyTorch's Conv1d default (kaiming-uniform, U(+-1/sqrt(kernel)) for weight and bias),
    as URM leaves it. URM stores this conv's weights in bf16; we keep every parameter in fp32
    and let train.precision decide the compute dtype, as for the other layers.
    An nn.Conv1d on purpose: FLOP accounting walks nn.Linear and nn.Conv1d modules."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels,
                              bias=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        L = h.shape[1]
        y = self.conv(h.transpose(1, 2))[..., :L]  # [B, C, L + (1 if kernel even)] -> first L
        # Contiguous in [B, L, C]: SiLU and its backward on the strided view run ~5x slower
        # on CPU (not vectorised), which made a ConvSwiGLU step twice as slow.
        return y.transpose(1, 2).contiguous()


# --------------------------------------------------------------------------------------
# Token mixing: attention with RoPE, or the MLP over the sequence axis (official mlp_t)
# --------------------------------------------------------------------------------------


class Rotary(nn.Module):
    """RoPE tables over all positions (puzzle prefix included), half-split convention:
    channel i pairs with channel i + head_dim/2 (the official / Llama layout)."""

    def __init__(self, head_dim: int, n_positions: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(n_positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # [L, head_dim]
        # Not persistent: a pure function of the spec, so not part of checkpoints.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, heads, L, head_dim]; rotated in float32, returned in x's dtype."""
        half = x.shape[-1] // 2
        xf = x.float()
        rotated = torch.cat((-xf[..., half:], xf[..., :half]), dim=-1)
        return (xf * self.cos + rotated * self.sin).to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention via scaled_dot_product_attention (as official TRM)."""

    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = linear(hidden, 3 * hidden)
        self.out = linear(hidden, hidden)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, D // self.num_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, L, head_dim]
        # torch's CPU flash-attention BACKWARD in bf16 is ~10x slower than in fp32 (277 vs 26 ms
        # per call at paper shape, 1 thread; the forward is fine), and it was most of the bf16
        # step of trm_att/hrm. Attention is a small share of the FLOPs (L=97, head_dim 64), so
        # on CPU bf16 it runs in fp32 from the projection on: q, k, v go to fp32 once, RoPE
        # (fp32 anyway) keeps them there, SDPA runs with autocast off (CPU autocast lists SDPA
        # as a bf16 op and would cast them back), and bf16 is handed back. fp32 inputs never
        # take this branch, so fp32 numerics are untouched.
        cpu_bf16 = q.dtype == torch.bfloat16 and q.device.type == "cpu"
        if cpu_bf16:
            q, k, v = q.float(), k.float(), v.float()
        if rotary is not None:
            q, k = rotary(q), rotary(k)
        if cpu_bf16:
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
            y = y.to(torch.bfloat16)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class SequenceMLP(nn.Module):
    """The official `mlp_t` token mixer: a SwiGLU applied across the sequence axis (width =
    seq_len + prefix), with its own residual and an RMSNorm over the sequence axis.
    Replaces attention entirely (no position encoding is needed: positions are weights)."""

    def __init__(self, n_positions: int, expansion: float, eps: float, multiple: int = 256):
        super().__init__()
        self.mlp = SwiGLU(n_positions, expansion, multiple)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.transpose(1, 2)  # [B, D, L]: each channel is a length-L vector
        t = rms_norm(t + self.mlp(t), self.eps)
        return t.transpose(1, 2)


# --------------------------------------------------------------------------------------
# Block and network
# --------------------------------------------------------------------------------------


class Block(nn.Module):
    """Post-norm block: x = norm(x + mix(x)); x = norm(x + SwiGLU(x))."""

    def __init__(self, hidden: int, num_heads: int, expansion: float, eps: float,
                 mixer: str, n_positions: int, ffn_multiple: int = 256):
        super().__init__()
        self.eps = eps
        if mixer == "attention":
            self.attn = Attention(hidden, num_heads)
            self.seq_mlp = None
        else:
            self.attn = None
            self.seq_mlp = SequenceMLP(n_positions, expansion, eps, ffn_multiple)
        self.mlp = SwiGLU(hidden, expansion, ffn_multiple)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        if self.attn is not None:
            x = rms_norm(x + self.attn(x, rotary), self.eps)
        else:
            x = self.seq_mlp(x)  # residual and (sequence-axis) norm are inside
        return rms_norm(x + self.mlp(x), self.eps)


class Network(nn.Module):
    """A stack of blocks: one "network call" f(h) of the recursion (official ReasoningModule,
    whose input injection we do at the call site: f_L(z + y + x), f_H(y + z))."""

    def __init__(self, n_blocks: int, **block_kwargs):
        super().__init__()
        self.blocks = nn.ModuleList([Block(**block_kwargs) for _ in range(n_blocks)])

    def add_ffn_conv(self, kernel: int) -> None:
        """model.ffn_conv_kernel: make every block's channel SwiGLU a ConvSwiGLU (URM). Only
        the channel MLP: the mlp mixer's SwiGLU runs across the sequence already, and its
        "sequence" axis there would be the hidden channels."""
        for block in self.blocks:
            block.mlp.add_sequence_conv(kernel)

    def forward(self, h: torch.Tensor, rotary: Rotary | None = None) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, rotary)
        return h
