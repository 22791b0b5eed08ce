"""Build times of paper-scale datasets (goal: under 5 minutes each on 2 cores).

    .venv/bin/python benchmarks/bench_data.py [--only sudoku,maze,arc1] [--fraction 0.1]
        [--sudoku-seeds DIR] [--arc-path DIR] [--out DIR] [--keep]

sudoku: 9x9 Sudoku-Extreme-like mix, 1000 train x (1 + 1000 aug) + 1000 test puzzles
        (hard seeds from --sudoku-seeds, tdoku-format lists, when given)
maze  : 30x30 Lehnert mazes with >= 110 moves, 1000 train + 1000 test
arc1  : ARC-AGI-1 + ConceptARC (960 tasks) x (1 + 1000 aug) from --arc-path
        (toy generated tasks of the same count when no path is given)
--fraction scales every count (and n_aug) down for a quick look. Prints one table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trm.config import DataSpec  # noqa: E402
from trm.data.build import build_dataset  # noqa: E402


def specs(args) -> dict[str, DataSpec]:
    f = args.fraction

    def n(x):
        return max(1, int(round(x * f)))

    return {
        "sudoku": DataSpec(task="sudoku", source="generate", path=args.sudoku_seeds, grid=9,
                           blanks=0, n_train=n(1000), n_test=n(1000), n_aug=n(1000), seed=0),
        "maze": DataSpec(task="maze", source="generate", grid=30, min_path=110, n_train=n(1000),
                         n_test=n(1000), n_aug=0, seed=0),
        "arc1": DataSpec(task="arc1", source="path" if args.arc_path else "generate",
                         path=args.arc_path, n_train=n(560), n_test=n(400), n_aug=n(1000),
                         seed=0),
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="sudoku,maze,arc1")
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--sudoku-seeds", default=None)
    ap.add_argument("--arc-path", default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the built datasets")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_data_"))
    rows = []
    for name, spec in specs(args).items():
        if name not in args.only.split(","):
            continue
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        t0 = time.perf_counter()
        meta = build_dataset(spec, target)
        secs = time.perf_counter() - t0
        c = meta["provenance"]["counts"]
        rows.append((name, meta["provenance"]["kind"], c["train"]["groups"],
                     c["train"]["examples"], c["test"]["examples"], dir_size(target) / 2**20, secs))
        print(f"{name}: {secs:.1f}s", flush=True)
        if not args.keep:
            shutil.rmtree(target)
    head = ("dataset", "kind", "groups", "train ex", "test ex", "MiB", "seconds")
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:,} | {r[4]:,} | {r[5]:,.0f} | {r[6]:.1f} |")
    if not args.keep and args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
