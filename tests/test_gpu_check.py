"""The GPU check's CPU path (benchmarks/gpu_check.py --cpu-tiny): same code as on the GPU, tiny
shapes, one JSON with every section filled and sane."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_cpu_path_writes_a_complete_json(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu-tiny", "--out", str(out),
         "--data-root", str(tmp_path / "data"), "--train-s", "1"],
        capture_output=True, text=True, timeout=240, cwd=REPO)
    assert out.exists(), proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert proc.returncode == 0 and r["ok"] is True, (r.get("sections_failed"), proc.stdout[-3000:])
    assert r["mode"] == "cpu_tiny" and r["sections_failed"] == []
    for d in ("bf16", "fp32"):
        assert r["matmul_peak"][d]["flops_per_s"] > 0
    assert set(r["steps"]) == {"trm_mlp", "trm_att", "hrm"}
    for name, s in r["steps"].items():
        assert "error" not in s, (name, s)
        assert s["batch"] == 8 and s["compile"] is True and s["precision"] in ("fp32", "bf16")
        assert s["median_step_ms"] > 0 and s["tokens_per_s"] > 0 and s["timed_steps"] >= 2
        # FLOPs from shapes: at least the forward of every network call's matmuls.
        assert s["matmul_flops_per_step"] > 0
        frac = s["fraction_of_bf16_matmul_peak"]
        assert math.isfinite(frac) and 0 < frac < 1.5
        assert s["peak_rss_mib"] > 0
    # HRM's 1-step gradient: 2 calls with gradient, whatever the depth.
    assert r["steps"]["hrm"]["grad_calls_per_step"] == 2
    ddp = r["ddp_smoke"]
    assert ddp["backend"] == "gloo" and ddp["collectives_forced"] and ddp["ok"]
    assert ddp["identical_to_single_process"] is True  # CPU: a 1-rank sum is a copy
    tr = r["train"]
    assert tr["steps"] >= 10 and len(tr["log"]) == tr["steps"]
    assert [e["step"] for e in tr["log"]] == list(range(1, tr["steps"] + 1))
    assert all(math.isfinite(e["loss"]) for e in tr["log"])
    assert tr["loss_fell"] is True and tr["loss_last_tenth"] < tr["loss_first_tenth"]
