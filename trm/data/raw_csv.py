"""The raw format of Sudoku and Maze data: sapientinc's CSV `source,question,answer,rating`.

Sudoku: question/answer are n*n chars row-major, '.' (or '0') = blank, digits 1-9.
Maze: question/answer are W*H chars over "# SGo" (wall, free, start, goal, path).
Generators write exactly this schema, so real files drop in and generated ones can be inspected.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADER = ("source", "question", "answer", "rating")


@dataclass(frozen=True)
class RawRow:
    source: str
    question: str
    answer: str
    rating: int


def read_rows(path: Path, want: int | None = None, rng=None) -> list[RawRow]:
    """All rows, or a seeded sample of `want` rows (file order kept) when the file has more.
    Uses pandas' C parser when available: sapientinc's train.csv has 3.8M rows."""
    path = Path(path)
    with path.open(newline="") as f:
        header = next(csv.reader(f), None)
    if header is None or tuple(h.strip() for h in header[:4]) != HEADER:
        raise ValueError(f"{path}: expected CSV header {','.join(HEADER)}, got {header}")
    try:
        import pandas as pd

        df = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=range(4))
        cols = [df[c].tolist() for c in df.columns[:4]]
        records = list(zip(*cols))
    except ImportError:  # pragma: no cover - pandas is a project dependency
        with path.open(newline="") as f:
            records = [r for r in csv.reader(f)][1:]
    if want is not None and want < len(records):
        idx = np.sort(rng.choice(len(records), size=want, replace=False))
        records = [records[i] for i in idx]
    rows = []
    for i, rec in enumerate(records):
        if len(rec) < 4:
            raise ValueError(f"{path}: row {i + 2} has {len(rec)} columns, expected 4")
        rating = int(float(rec[3])) if str(rec[3]).strip() else 0
        rows.append(RawRow(rec[0], rec[1], rec[2], rating))
    return rows


def write_rows(path: Path, rows) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for r in rows:
            w.writerow((r.source, r.question, r.answer, int(r.rating)))


def find_split_csvs(path: Path) -> dict[str, Path]:
    """{train,test} CSVs under a directory (train.csv / test.csv), as sapientinc lays them out."""
    path = Path(path)
    found = {s: path / f"{s}.csv" for s in ("train", "test") if (path / f"{s}.csv").is_file()}
    if set(found) != {"train", "test"}:
        raise FileNotFoundError(f"{path}: expected train.csv and test.csv "
                                f"(columns {','.join(HEADER)})")
    return found
