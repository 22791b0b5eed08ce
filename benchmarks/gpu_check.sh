#!/usr/bin/env bash
# The prepared one-GPU check (benchmarks/gpu_check.py): at most 8 minutes, one JSON.
#   bash benchmarks/gpu_check.sh [--out benchmarks/results/gpu_check.json] [--train-s 180]
# The Python script keeps its own 450 s budget; the timeout is the hard stop behind it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
exec timeout --signal=INT --kill-after=10 480 python benchmarks/gpu_check.py "$@"
