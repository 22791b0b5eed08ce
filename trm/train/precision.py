"""The numeric precision of a run: `train.precision` = fp32 | bf16 | auto.

bf16 means autocast to bfloat16 around the model (matmuls and the SwiGLU/attention
elementwise work in bf16; RMSNorm, RoPE and the losses stay float32/float64), on CUDA and on
CPU alike; on CPU the attention core (q, k, v after the projection, RoPE, SDPA) runs in
float32, because torch's bf16 CPU flash-attention backward is ~10x slower (trm/model/layers.py). It changes the numbers a run produces, so the *resolved* precision (never "auto")
is part of the run signature, the spec file, run_info.json and runs.csv.

`auto` picks bf16 where the hardware multiplies bf16 natively and fp32 elsewhere:
  CUDA: torch.cuda.is_bf16_supported() (Ampere and newer);
  CPU : AVX512-BF16 or AMX tiles, as torch's own CPU feature probe reports them.
Emulated bf16 (a CPU without those instructions) is slower than fp32 and is refused when asked
for explicitly. `auto` is resolved where the spec is resolved (the machine that plans the
runs), against `train.device`; the paper scale names bf16 explicitly, so planning on a CPU
login node for GPU jobs never depends on the login node's CPU.

This module is torch-free at import time (planning imports it); torch is imported only when
a probe is needed.
"""

from __future__ import annotations

import functools
import os

PRECISIONS = ("fp32", "bf16", "auto")


class PrecisionError(ValueError):
    """bf16 asked for where the device has no native bf16."""


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str) -> bool:
    """Whether `device_type` ("cpu" or "cuda") multiplies bf16 in hardware."""
    # A test (or a user) may pin the answer: TRM_NATIVE_BF16=0/1.
    forced = os.environ.get("TRM_NATIVE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    import torch

    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    probe = getattr(torch, "cpu", None)
    checks = [getattr(probe, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(callable(c) for c in checks):
        return any(bool(c()) for c in checks if callable(c))
    # Older torch without the probe: the kernel's CPU flags (x86 avx512_bf16/amx_bf16, Arm bf16).
    return bool(_cpuinfo_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


def planned_device_type(device: str) -> str:
    """The device type a run with `train.device` will use, seen from this machine."""
    if device in ("cpu", "cuda"):
        return device
    if os.environ.get("TRM_NATIVE_BF16") in ("0", "1"):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve(precision: str, device: str = "auto") -> str:
    """'auto' -> 'bf16' or 'fp32' for this machine; 'fp32'/'bf16' are returned as given."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"'train.precision' must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(planned_device_type(device)) else "fp32"


def check_supported(precision: str, device_type: str) -> None:
    """Refuse bf16 on a device without native bf16 (one clear line, before training)."""
    if precision == "bf16" and not native_bf16(device_type):
        what = ("this GPU has no bf16 support (needs compute capability 8.0+)" if device_type == "cuda"
                else "this CPU has neither AVX512-BF16 nor AMX, so bf16 would be emulated (slower than fp32)")
        raise PrecisionError(f"'train.precision' is bf16 but {what}; use train.precision=fp32 or auto")
