"""Where a run computes and how: the device, deterministic kernels, TF32, torch.compile.
Shared by the trainer and the test-time evaluator, so that both run the same weights the
same way."""

from __future__ import annotations

import os

import torch

from trm import config as C


def pick_device(spec: C.TrainSpec) -> torch.device:
    if spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def configure_backends(t: C.TrainSpec, device: torch.device) -> None:
    """Determinism everywhere; TF32 only when asked for and on CUDA."""
    if device.type == "cuda":
        # cuBLAS needs this for deterministic algorithms (set before its first use).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = bool(t.tf32)
        torch.backends.cudnn.allow_tf32 = bool(t.tf32)
    if t.compile:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # The public call also sets inductor's `deterministic` flag, and importing inductor
        # (with dynamo) costs ~1.5 s of every run's start-up; without torch.compile that flag
        # is never read, so eager runs set only the ATen switch the public call sets.
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def compile_networks(model: torch.nn.Module) -> None:
    """torch.compile the recursion's networks in place (nn.Module.compile): the hot loop is
    compiled, the state_dict keys and the Python control flow around it are unchanged."""
    backend = os.environ.get("TRM_COMPILE_BACKEND", "inductor")
    for name in ("net_L", "net_H"):
        net = getattr(model, name, None)
        if net is not None:
            net.compile(backend=backend)
