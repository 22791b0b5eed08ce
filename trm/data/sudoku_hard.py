"""9x9 "Sudoku-Extreme-like" mix (data.grid=9, data.blanks=0): easy minimal puzzles + hard puzzles.

Sudoku-Extreme (HRM) = community puzzle lists, each puzzle randomly re-permuted, ~27% from easy
sources and ~73% from hard ones (data notes 3.1/5.4). Offline we rebuild that mix:
  * easy (EASY_FRACTION): generated minimal puzzles (sudoku_gen, stands in for kaggle/unbiased);
  * hard: puzzles from tdoku-format seed lists found in data.path (*.txt, one 81-char puzzle per
    line, '#' comments; e.g. the forum-hardest and magictour lists), each put through a random
    equivalence transform exactly as sapientinc did, and solved/rated by our solver. When a
    split's seed pool runs out - or no lists are given - hard puzzles come from VICINITY SEARCH:
    remove one given and add one or two cells of the parent's solution, keep the child if its
    solution is unique and, climbing greedily, until its rating reaches HARD_MIN_RATING.
  * split hygiene: the seed pool is partitioned before use (train seeds, then test seeds), so a
    seed and its vicinity children never straddle the split; test puzzles whose equivalence
    fingerprint matches any train puzzle are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trm.data import sudoku_solver as solver
from trm.data.sources import log
from trm.data.sudoku_gen import GENERATOR_VERSION, Puzzle, make_distinct_puzzles
from trm.data.sudoku_symmetry import apply_transform, invariant_key, random_transform

EASY_FRACTION = 0.27
HARD_MIN_RATING = 10  # guesses (RATING_VERSION); ~3.5% of random minimal puzzles reach this
VICINITY_BATCH = 256
EASY_SOURCES = ("17_clue",)
PUZZLE_LINE = re.compile(r"[.0-9]{81}")  # list names treated as easy material, not hard seeds


def read_seed_lists(path: Path) -> list[tuple[str, np.ndarray]]:
    """(source tag, puzzle) for every puzzle in the *.txt lists under path (sorted by name)."""
    out = []
    for f in sorted(Path(path).glob("*.txt")):
        if any(tag in f.stem for tag in EASY_SOURCES):
            continue
        lines = [ln.strip() for ln in f.read_text().splitlines()]
        lines = [ln for ln in lines if PUZZLE_LINE.fullmatch(ln)]
        if not lines:
            continue
        grid = np.frombuffer("".join(lines).replace(".", "0").encode(), np.uint8) - ord("0")
        out += [(f.stem, g) for g in grid.reshape(-1, 81).astype(np.int8)]
    return out


def vicinity_children(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator,
                      count: int = VICINITY_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Unique-solution neighbours of a puzzle: one given removed, one or two cells of the
    solution added (remove-1/add-1 keeps ~1.5% of hard children unique, remove-1/add-2 ~5%;
    both mostly stay hard). Returns (children [m, 81], ratings [m])."""
    givens, blanks = np.flatnonzero(puzzle), np.flatnonzero(puzzle == 0)
    kids = np.repeat(puzzle[None], count, axis=0)
    for i in range(count):
        rm = rng.choice(givens, size=1)
        add = rng.choice(blanks, size=int(rng.integers(1, 3)), replace=False)
        kids[i, rm] = 0
        kids[i, add] = solution[add]
    _, nsol, rating = solver.solve(kids, 9, cap=2)
    keep = nsol == 1
    return kids[keep], rating[keep]


def climb_to_hard(start: Puzzle, rng: np.random.Generator, max_rounds: int = 200) -> Puzzle | None:
    """Greedy vicinity walk until the rating reaches HARD_MIN_RATING (None if it never does)."""
    cur = start
    for _ in range(max_rounds):
        if cur.rating >= HARD_MIN_RATING:
            return cur
        kids, ratings = vicinity_children(cur.puzzle, cur.solution, rng)
        if len(kids) and ratings.max() >= cur.rating:
            j = int(np.argmax(ratings))
            cur = Puzzle(kids[j].astype(np.int8), cur.solution, int(ratings[j]),
                         f"gen_vicinity:{start.source}")
    return cur if cur.rating >= HARD_MIN_RATING else None


def _from_seed(source: str, seed_puzzle: np.ndarray, rng) -> Puzzle | None:
    t = random_transform(9, rng)
    puzzle = apply_transform(seed_puzzle, 9, t).astype(np.int8)
    sol, nsol, rating = solver.solve(puzzle[None], 9, cap=2)
    if nsol[0] != 1:
        return None  # not a proper puzzle: skip it
    return Puzzle(puzzle, sol[0], int(rating[0]), source)


def hard_puzzles(count: int, seeds: list, rng, taken: set[bytes]) -> list[Puzzle]:
    """`count` hard puzzles from this split's seeds, topped up by vicinity search."""
    out: list[Puzzle] = []
    used = []
    for source, seed_puzzle in seeds:
        if len(out) == count:
            break
        p = _from_seed(source, seed_puzzle, rng)
        if p is None:
            continue
        key = invariant_key(p.puzzle, 9)
        if key in taken:
            continue
        taken.add(key)
        out.append(p)
        used.append(p)
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 20 * count + 100:
            raise RuntimeError(f"vicinity search found only {len(out)} of {count} hard puzzles")
        if used:  # every hard unique child of a random seed of this split
            parent = used[int(rng.integers(len(used)))]
            kids, ratings = vicinity_children(parent.puzzle, parent.solution, rng)
            found = [Puzzle(kids[j].astype(np.int8), parent.solution, int(ratings[j]),
                            f"gen_vicinity:{parent.source}")
                     for j in np.flatnonzero(ratings >= HARD_MIN_RATING)]
        else:  # no seeds at all: climb from a generated minimal puzzle
            start = make_distinct_puzzles(9, 0, 1, rng, set())[0]
            found = [p for p in [climb_to_hard(start, rng)] if p is not None]
        for p in found:
            key = invariant_key(p.puzzle, 9)
            if len(out) < count and key not in taken:
                taken.add(key)
                out.append(p)
    return out


# Beyond this many vicinity-search puzzles a build is refused (it would run for hours).
MAX_VICINITY_FILL = 20000


def extreme_mix(n_train: int, n_test: int, seed_path: str | None, rngs: dict) -> tuple:
    """(train puzzles, test puzzles, provenance info). rngs: 'train', 'test', 'seeds'."""
    seeds = read_seed_lists(Path(seed_path)) if seed_path else []
    order = rngs["seeds"].permutation(len(seeds))
    n_easy = {s: int(round(EASY_FRACTION * n)) for s, n in (("train", n_train), ("test", n_test))}
    n_hard = {"train": n_train - n_easy["train"], "test": n_test - n_easy["test"]}
    # Partition the seed pool by split before drawing anything (split hygiene): train gets what
    # it needs (+10% for unusable seeds) when the pool covers both splits, else a proportional
    # share; test gets the rest.
    need = n_hard["train"] + n_hard["test"]
    if len(seeds) >= need:
        cut = min(len(seeds), int(n_hard["train"] * 1.1) + 10)
    else:
        cut = int(round(len(seeds) * n_hard["train"] / max(1, need)))
    short = sum(max(0, n_hard[s] - len(p)) for s, p in
                (("train", seeds[:cut]), ("test", seeds[cut:])))
    if short > MAX_VICINITY_FILL:
        # Hours of search: refuse at once instead of looking hung.
        raise ValueError(
            f"sudoku: {short} hard 9x9 puzzles would have to come from vicinity search "
            f"(~0.05-0.1 s each per core, i.e. about {short * 0.07 / 3600:.1f} core-hours); "
            "give the real sapientinc CSVs or more seed lists in data.path, or lower data.n_test "
            f"(at most {MAX_VICINITY_FILL} puzzles are generated this way)")
    if short > 1000:
        log.warning("sudoku: %d hard puzzles beyond the seed pool come from vicinity search "
                    "(~0.05-0.1 s each per core); lower n_test or give real CSVs in data.path",
                    short)
    pools = {"train": [seeds[i] for i in order[:cut]], "test": [seeds[i] for i in order[cut:]]}
    taken: set[bytes] = set()
    out = {}
    for split in ("train", "test"):
        rng = rngs[split]
        hard = hard_puzzles(n_hard[split], pools[split], rng, taken)
        easy = make_distinct_puzzles(9, 0, n_easy[split], rng, taken, what=f"easy {split}")
        mixed = hard + easy
        out[split] = [mixed[i] for i in rng.permutation(len(mixed))]
    all_p = out["train"] + out["test"]
    info = {
        "kind": "generated",
        "source": f"generator+seeds:{seed_path}" if seeds else "generator",
        "version": GENERATOR_VERSION,
        "generator": "trm.data.sudoku_hard",
        "generator_version": GENERATOR_VERSION,
        "mix": {"easy_fraction": EASY_FRACTION, "hard_min_rating": HARD_MIN_RATING,
                "n_seeds": len(seeds),
                "sources": {s: sum(p.source == s for p in all_p)
                            for s in sorted({p.source for p in all_p})}},
        "rating": solver.RATING_VERSION,
    }
    return out["train"], out["test"], info
