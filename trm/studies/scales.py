"""What every study file has, whatever its kind: `scales:` (per-scale tweaks) and `notes:`
(per-scale text), both keyed by scale name. Training studies (manifest.load_study) and
test-time studies (test_time.load) check them here."""

from __future__ import annotations

from pathlib import Path

from trm import config as C


def scale_tweaks(path: Path, data: dict) -> dict[str, dict]:
    """Check a study file's `scales:` and `notes:` (keyed by scale: a misspelt scale would be
    silently ignored) and return its per-scale tweaks that are set, each a mapping."""
    scales = set(C.available("scales", path.parent.parent))
    for section in ("scales", "notes"):
        block = data.get(section) or {}
        if not isinstance(block, dict):
            raise C.SpecError(f"{path}: '{section}' must be a mapping by scale")
        for scale in block:
            if scale not in scales:
                raise C.SpecError(f"{path}: '{section}.{scale}': no scale named '{scale}' "
                                  f"(available: {', '.join(sorted(scales))})")
    tweaks = {}
    for scale, tweak in (data.get("scales") or {}).items():
        if tweak is None:
            continue
        if not isinstance(tweak, dict):
            raise C.SpecError(f"{path}: 'scales.{scale}' must be a mapping, got {tweak!r}")
        tweaks[scale] = tweak
    return tweaks
