"""The training process's memory allocator (`train.allocator`): system | tcmalloc | jemalloc | auto.

Why: on CPU, torch takes every tensor from the C allocator, and glibc's keeps freed blocks of
mixed sizes in its heap. Paper-scale HRM at batch 8 peaked at 946 MiB RSS in fp32 and 980 MiB
in bf16 with glibc although bf16 holds fewer tensors (its live peak is the lower one); with
tcmalloc the peaks were 849 / 811 MiB (benchmarks/bench_step.py, README "Benchmarks").
Results do not depend on the allocator (the same bits with each, tested), so the key is not
part of the run signature; run_info records the allocator that was actually loaded.

An allocator can only be chosen before the process starts (LD_PRELOAD), so `python -m trm
train` and `python -m trm launch` re-execute themselves once with it preloaded, before torch
is imported (`reexec_with`). Processes they start (the `local` launcher's worker, torchrun's)
inherit it; a SLURM job inherits the variable where the node has the same library (else the
dynamic loader ignores it with a warning and run_info says `system`). `auto` takes tcmalloc
where installed (Debian: libtcmalloc-minimal4), else the system allocator; jemalloc
(libjemalloc2) only when named. Naming one that is not installed is an error before
anything runs.

Torch-free: imported by the command line before deciding whether to re-execute.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CHOICES = ("system", "tcmalloc", "jemalloc", "auto")
# Shared-object names, most specific first; searched in the usual library folders.
LIBRARIES = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}
# Set on the re-executed process: the choice has been made once (no second exec, no loop).
DECIDED = "TRM_ALLOCATOR_DECIDED"


class AllocatorError(ValueError):
    pass


def _folders() -> list[Path]:
    machine = os.uname().machine
    return [Path(p) for p in (f"/usr/lib/{machine}-linux-gnu", "/usr/lib64", "/usr/lib",
                              "/usr/local/lib", os.path.join(sys.prefix, "lib"))]


def find(name: str) -> str | None:
    """The path of the named allocator's library, or None if it is not installed."""
    for folder in _folders():
        for lib in LIBRARIES[name]:
            path = folder / lib
            if path.exists():
                return str(path)
    return None


def choose(request: str) -> tuple[str, str | None]:
    """(allocator, library path or None for the system one) for a `train.allocator` value."""
    if request not in CHOICES:
        raise AllocatorError(f"train.allocator: unknown allocator {request!r} (valid: {', '.join(CHOICES)})")
    if request == "system":
        return "system", None
    if request == "auto":
        # tcmalloc only: jemalloc also lowers the peak but made paper-scale HRM's bf16 step
        # ~1.3x slower here (5.5-5.8 s vs 4.3-4.5 s with glibc and 3.4-4.2 s with tcmalloc, b32).
        path = find("tcmalloc")
        return ("tcmalloc", path) if path else ("system", None)
    path = find(request)
    if path is None:
        raise AllocatorError(
            f"train.allocator: {request} is not installed here (looked for "
            f"{', '.join(LIBRARIES[request])} in {', '.join(map(str, _folders()))}); install it "
            f"(Debian: {'libtcmalloc-minimal4' if request == 'tcmalloc' else 'libjemalloc2'}) or use "
            f"train.allocator=auto or system")
    return request, path


def active() -> str:
    """The allocator loaded in this process: read from its memory map, not from the request."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for name, libs in LIBRARIES.items():
        if any(lib.split(".so")[0] in maps for lib in libs):
            return name
    return "system"


def _without_ours(preload: str) -> str:
    keep = [p for p in preload.replace(" ", ":").split(":")
            if p and not any(lib.split(".so")[0] in p for libs in LIBRARIES.values() for lib in libs)]
    return ":".join(keep)


def reexec_with(request: str, module_argv: list[str]) -> None:
    """Re-execute `python -m trm <module_argv>` with the requested allocator preloaded, unless
    it is loaded already or this process was re-executed before. Returns only if no exec is
    needed (Linux only; elsewhere the system allocator stays)."""
    if os.environ.get(DECIDED) or not sys.platform.startswith("linux"):
        return
    name, path = choose(request)
    if name == active():
        os.environ[DECIDED] = name  # children (local launcher, torchrun) need not decide again
        return
    env = environment(name, path)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "trm", *module_argv], env)


def environment(name: str, path: str | None, base: dict | None = None) -> dict:
    """`base` (default: this process's environment) for a process that runs with allocator
    `name` (library `path`, None for the system one): our libraries replaced in LD_PRELOAD,
    other preloads kept, and the choice marked as made."""
    env = dict(os.environ if base is None else base)
    env[DECIDED] = name
    rest = _without_ours(env.get("LD_PRELOAD", ""))
    preload = ":".join(p for p in (path, rest) if p)
    if preload:
        env["LD_PRELOAD"] = preload
    else:
        env.pop("LD_PRELOAD", None)
    return env
