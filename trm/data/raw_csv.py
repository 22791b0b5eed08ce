"""The raw format of Sudoku and Maze data: sapientinc's CSV `source,question,answer,rating`.

Sudoku: question/answer are n*n chars row-major, '.' (or '0') = blank, digits 1-9.
Maze: question/answer are W*H chars over "# SGo" (wall, free, start, goal, path).
Generators write exactly this schema, so real files drop in and generated ones can be inspected.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

HEADER = ("source", "question", "answer", "rating")


@dataclass(frozen=True)
class RawRow:
    source: str
    question: str
    answer: str
    rating: int


def read_rows(path: Path) -> list[RawRow]:
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header[:4]) != HEADER:
            raise ValueError(f"{path}: expected CSV header {','.join(HEADER)}, got {header}")
        rows = []
        for i, rec in enumerate(reader, start=2):
            if not rec:
                continue
            if len(rec) < 4:
                raise ValueError(f"{path}:{i}: expected 4 columns, got {len(rec)}")
            rating = int(float(rec[3])) if rec[3].strip() else 0
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
