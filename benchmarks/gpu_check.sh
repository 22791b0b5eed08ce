#!/usr/bin/env bash
# The prepared one-GPU check (benchmarks/gpu_check.py): at most 8 minutes, one JSON.
#   bash benchmarks/gpu_check.sh [--out benchmarks/results/gpu_check.json] [--train-s 180]
# The Python script keeps its own 450 s budget; the timeout is the hard stop behind it.
# On a lent device machine: bash benchmarks/gpu_check.sh --out "$OUT/gpu_check.json" (so the JSON
# comes back); the JSON is rewritten after every section, so a cut-off run still reports.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
exec timeout --signal=INT --kill-after=10 480 python benchmarks/gpu_check.py "$@"
