"""The raw format of Sudoku and Maze data: sapientinc's CSV `source,question,answer,rating`.

Sudoku: question/answer are n*n chars row-major, '.' (or '0') = blank, digits 1-9.
Maze: question/answer are W*H chars over "# SGo" (wall, free, start, goal, path).
Generators write exactly this schema, so real files drop in and generated ones can be inspected.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HEADER = ("source", "question", "answer", "rating")


@dataclass(frozen=True)
class RawRow:
    source: str
    question: str
    answer: str
    rating: int
    line: int = field(default=0, compare=False)  # line in the file it came from (0 = not read)


MAX_LISTED = 20  # problems listed one per line in the error; the rest are counted


class RawDataError(ValueError):
    """Malformed rows of a raw file: every problem with its file, line and reason."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]):
        self.path, self.problems = Path(path), problems
        lines = [f"{path}: line {line}: {reason}" for line, reason in problems[:MAX_LISTED]]
        more = len(problems) - MAX_LISTED
        tail = [f"... and {more} more malformed rows"] if more > 0 else []
        super().__init__(f"{path}: {len(problems)} malformed row(s):\n" + "\n".join(lines + tail))


def _records(path: Path, n_cols: int) -> tuple[list[tuple], list[tuple[int, str]]]:
    """(records of the first 4 fields, problems) after the header. pandas' C parser is the
    fast path (sapientinc's train.csv has 3.8M rows); when it trips over a row with the wrong
    number of fields, the csv module re-reads the file to name every such row."""
    try:
        import pandas as pd

        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if df.shape[1] == n_cols:
            cols = [df[c].tolist() for c in df.columns[:4]]
            return list(zip(*cols)), []
    except ImportError:  # pragma: no cover - pandas is a project dependency
        pass
    except (ValueError, UnicodeDecodeError):  # pandas.errors.ParserError is a ValueError
        pass
    records, problems = [], []
    with path.open(newline="", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        for rec in reader:
            if len(rec) != n_cols:
                problems.append((reader.line_num, f"{len(rec)} fields, the header has {n_cols}"))
                rec = (list(rec) + [""] * 4)[:4]
            records.append(tuple(rec[:4]))
    return records, problems


def _rating(text: str) -> int:
    text = str(text).strip()
    if not text:
        return 0
    value = float(text)  # ValueError names the text
    if value != int(value) or value < 0:
        raise ValueError(f"rating {text!r} is not a whole number >= 0")
    return int(value)


def read_rows(path: Path, want: int | None = None, rng=None,
              check: Callable[[RawRow], str | None] | None = None) -> list[RawRow]:
    """All rows, or a seeded sample of `want` rows (file order kept) when the file has more.
    Every row with the wrong number of fields, and every picked row that is empty, has a bad
    rating, or fails `check` (the task's own rule: size, alphabet, answer vs givens), is
    reported at once, with its line and reason (RawDataError); nothing is silently dropped."""
    path = Path(path)
    with path.open(newline="") as f:
        header = next(csv.reader(f), None)
    if header is None or tuple(h.strip() for h in header[:4]) != HEADER:
        raise ValueError(f"{path}: expected CSV header {','.join(HEADER)}, got {header}")
    records, problems = _records(path, len(header))
    lines = list(range(2, len(records) + 2))  # header is line 1; one line per row
    if want is not None and want < len(records):
        idx = np.sort(rng.choice(len(records), size=want, replace=False))
        records, lines = [records[i] for i in idx], [lines[i] for i in idx]
    rows = []
    for line, rec in zip(lines, records):
        source, question, answer, rating = rec
        reason = None
        if not str(question).strip():
            reason = "empty question"
        elif not str(answer).strip():
            reason = "empty answer"
        else:
            try:
                value = _rating(rating)
            except ValueError as e:
                reason = f"rating {rating!r}: {e}" if "rating" not in str(e) else str(e)
        if reason is None:
            row = RawRow(source, question, answer, value, line)
            reason = check(row) if check else None
            if reason is None:
                rows.append(row)
        if reason is not None:
            problems.append((line, reason))
    if problems:
        raise RawDataError(path, sorted(set(problems)))
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
