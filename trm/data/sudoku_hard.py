"""9x9 "Sudoku-Extreme-like" mix (data.grid=9, data.blanks=0): easy minimal puzzles + searched puzzles.

Sudoku-Extreme (HRM) = community puzzle lists, each puzzle randomly re-permuted, ~27% from easy
sources and ~73% from hard ones (data notes 3.1/5.4). Offline we rebuild that mix:
  * easy (EASY_FRACTION): generated minimal puzzles (sudoku_gen, stands in for kaggle/unbiased);
  * the rest: puzzles from tdoku-format seed lists found in data.path (*.txt, one 81-char puzzle
    per line, '#' comments; e.g. the forum-hardest and magictour lists), each put through a
    random equivalence transform exactly as sapientinc did, and solved/rated by our solver. When
    a split's seed pool runs out - or no lists are given - puzzles come from VICINITY SEARCH:
    remove one given and add one or two cells of the parent's solution, keep the child if its
    solution is unique and, climbing greedily, until its rating reaches VICINITY_MIN_RATING.
  * Difficulty, measured (our solver's `rating` = guesses, sudoku_solver.RATING_VERSION): without
    seed lists the vicinity-search puzzles need ~17 guesses on average, the real hard lists 49-400
    (REAL_LIST_GUESSES). They are therefore called "vicinity-search puzzles", not hard puzzles;
    the build's provenance["difficulty"] reports the measured means of both, side by side.
  * Split hygiene, by FAMILY (the solution grid's class under the symmetry group,
    sudoku_symmetry.family_key, an exact canonical form): the seed lists are solved and split
    by family before any vicinity search (every puzzle of a family goes to one side - the forum
    lists hold whole families of related puzzles), vicinity children share their parent's
    family, test puzzles of a family already in train are never drawn, and a build in which a
    test puzzle still shares a family with a train puzzle is refused (FamilyLeakError).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from trm.data import sudoku_solver as solver
from trm.data.sources import log
from trm.data.sudoku_gen import GENERATOR_VERSION, Puzzle, make_distinct_puzzles
from trm.data.sudoku_symmetry import apply_transform, family_key, invariant_key, random_transform

EASY_FRACTION = 0.27
# v2: seeds split by solution-grid family (v1 split them at random, so families straddled).
MIX_VERSION = "trm-sudoku-mix-v2"
# guesses (RATING_VERSION); ~3.5% of random minimal puzzles reach this. A floor, not "hard": the
# searched puzzles land just above it (mean ~17) while the real hard lists average 49-400.
VICINITY_MIN_RATING = 10
# Our solver's mean guesses (RATING_VERSION, each puzzle under one random equivalence transform,
# as the builds rate them) on the real lists in shared/data/sudoku, measured 2026-12-01
# (forum_hardest_1905_11+: a random 3000 of its 48,766; the others whole). For the provenance.
REAL_LIST_GUESSES = {
    "puzzles3_magictour_top1465": 48.7,
    "puzzles5_forum_hardest_1905_11+": 178.4,
    "puzzles6_forum_hardest_1106": 393.9,
}
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


def climb_to_rating(start: Puzzle, rng: np.random.Generator, max_rounds: int = 200) -> Puzzle | None:
    """Greedy vicinity walk until the rating reaches VICINITY_MIN_RATING (None if it never does)."""
    cur = start
    for _ in range(max_rounds):
        if cur.rating >= VICINITY_MIN_RATING:
            return cur
        kids, ratings = vicinity_children(cur.puzzle, cur.solution, rng)
        if len(kids) and ratings.max() >= cur.rating:
            j = int(np.argmax(ratings))
            cur = Puzzle(kids[j].astype(np.int8), cur.solution, int(ratings[j]),
                         f"gen_vicinity:{start.source}")
    return cur if cur.rating >= VICINITY_MIN_RATING else None


@lru_cache(maxsize=1 << 17)
def _family_of_bytes(solution: bytes) -> bytes:
    return family_key(np.frombuffer(solution, np.int8), 9)


def family_of(solution: np.ndarray) -> bytes:
    """family_key of a 9x9 solution, memoised: vicinity children share their parent's solution,
    and the split, its check and the provenance all ask for the same grids (~3 ms each)."""
    return _family_of_bytes(np.asarray(solution, np.int8).tobytes())


class FamilyLeakError(ValueError):
    """A test puzzle shares its solution grid (up to symmetry) with a train puzzle."""


def _from_seed(source: str, seed_puzzle: np.ndarray, rng) -> Puzzle | None:
    t = random_transform(9, rng)
    puzzle = apply_transform(seed_puzzle, 9, t).astype(np.int8)
    sol, nsol, rating = solver.solve(puzzle[None], 9, cap=2)
    if nsol[0] != 1:
        return None  # not a proper puzzle: skip it
    return Puzzle(puzzle, sol[0], int(rating[0]), source)


def seed_families(seeds: list) -> list[bytes | None]:
    """Family key of every seed (None: no unique solution). Solved as given, in one batch:
    the family does not depend on the transform a split later applies."""
    if not seeds:
        return []
    sol, nsol, _ = solver.solve(np.stack([p for _, p in seeds]), 9, cap=2)
    return [family_of(sol[i]) if nsol[i] == 1 else None for i in range(len(seeds))]


def split_by_family(families: list, n_train: int) -> tuple[list[int], list[int]]:
    """Indices (in the given order) for train and test: whole families go to train, in order of
    first appearance, until train holds at least n_train items; every later family goes to
    test. A family that would straddle the split is thereby moved to train whole. Items with
    family None are unusable and dropped."""
    members: dict = {}
    for i, f in enumerate(families):
        if f is not None:
            members.setdefault(f, []).append(i)
    train, test = [], []
    for f, idx in members.items():
        (train if len(train) < n_train else test).extend(idx)
    return sorted(train), sorted(test)


def check_family_split(train: list[Puzzle], test: list[Puzzle]) -> int:
    """Refuse (FamilyLeakError) test puzzles whose solution grid is, up to symmetry, a train
    puzzle's; returns the number of families on the train side."""
    train_fams = {family_of(p.solution) for p in train}
    shared = [i for i, p in enumerate(test) if family_of(p.solution) in train_fams]
    if shared:
        raise FamilyLeakError(
            f"{len(shared)} of {len(test)} test puzzles share a solution grid (up to symmetry) "
            f"with a train puzzle (e.g. test #{shared[0]}); refusing the split")
    return len(train_fams)


def searched_puzzles(count: int, seeds: list, rng, taken: set[bytes],
                     forbidden: set[bytes], families: set[bytes]) -> tuple[list[Puzzle], int]:
    """`count` puzzles from this split's seeds, topped up by vicinity search. Seeds and climbs
    whose family is in `forbidden` (the other split's) are skipped; the families used are added
    to `families`. Returns (puzzles, number of seeds skipped for their family)."""
    out: list[Puzzle] = []
    used = []
    skipped = 0
    for source, seed_puzzle in seeds:
        if len(out) == count:
            break
        p = _from_seed(source, seed_puzzle, rng)
        if p is None:
            continue
        fam = family_of(p.solution)
        key = invariant_key(p.puzzle, 9)
        if fam in forbidden:
            skipped += 1
            continue
        if key in taken:
            continue
        taken.add(key)
        families.add(fam)
        out.append(p)
        used.append(p)
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 20 * count + 100:
            raise RuntimeError(f"vicinity search found only {len(out)} of {count} puzzles")
        if used:  # every unique child rated >= VICINITY_MIN_RATING of a random seed of this split
            parent = used[int(rng.integers(len(used)))]
            kids, ratings = vicinity_children(parent.puzzle, parent.solution, rng)
            # Children keep the parent's solution, hence its family (already this split's).
            found = [Puzzle(kids[j].astype(np.int8), parent.solution, int(ratings[j]),
                            f"gen_vicinity:{parent.source}")
                     for j in np.flatnonzero(ratings >= VICINITY_MIN_RATING)]
        else:  # no seeds at all: climb from a generated minimal puzzle
            start = make_distinct_puzzles(9, 0, 1, rng, set())[0]
            if family_of(start.solution) in forbidden:
                continue
            found = [p for p in [climb_to_rating(start, rng)] if p is not None]
        for p in found:
            key = invariant_key(p.puzzle, 9)
            if len(out) < count and key not in taken:
                taken.add(key)
                families.add(family_of(p.solution))
                out.append(p)
    return out, skipped


# Beyond this many vicinity-search puzzles a build is refused (it would run for hours).
MAX_VICINITY_FILL = 20000


def _mean(xs) -> float | None:
    xs = list(xs)
    return round(float(np.mean(xs)), 1) if xs else None


def extreme_mix(n_train: int, n_test: int, seed_path: str | None, rngs: dict) -> tuple:
    """(train puzzles, test puzzles, provenance info). rngs: 'train', 'test', 'seeds'."""
    seeds = read_seed_lists(Path(seed_path)) if seed_path else []
    order = rngs["seeds"].permutation(len(seeds))
    seeds = [seeds[i] for i in order]
    n_easy = {s: int(round(EASY_FRACTION * n)) for s, n in (("train", n_train), ("test", n_test))}
    n_search = {"train": n_train - n_easy["train"], "test": n_test - n_easy["test"]}
    # Train gets what it needs (+10% for unusable seeds) when the pool covers both splits, else
    # a proportional share; test gets the rest.
    need = n_search["train"] + n_search["test"]
    if len(seeds) >= need:
        cut = min(len(seeds), int(n_search["train"] * 1.1) + 10)
    else:
        cut = int(round(len(seeds) * n_search["train"] / max(1, need)))
    short = sum(max(0, n_search[s] - len(p)) for s, p in
                (("train", seeds[:cut]), ("test", seeds[cut:])))
    if short > MAX_VICINITY_FILL:
        # Hours of search: refuse at once instead of looking hung.
        raise ValueError(
            f"sudoku: {short} 9x9 puzzles would have to come from vicinity search "
            f"(~0.05-0.1 s each per core, i.e. about {short * 0.07 / 3600:.1f} core-hours); "
            "give the real sapientinc CSVs or more seed lists in data.path, or lower data.n_test "
            f"(at most {MAX_VICINITY_FILL} puzzles are generated this way)")
    if short > 1000:
        log.warning("sudoku: %d puzzles beyond the seed pool come from vicinity search "
                    "(~0.05-0.1 s each per core); lower n_test or give real CSVs in data.path",
                    short)
    # Split the seed pool by family BEFORE any vicinity search. Only the prefix that can be used
    # is solved (the whole 50k-seed pool takes minutes); seeds past it stay in the test pool and
    # are checked one by one against the train families when drawn.
    solved = min(len(seeds), need + need // 10 + 20)
    fams = seed_families(seeds[:solved])
    tr_idx, te_idx = split_by_family(fams, cut)
    pools = {"train": [seeds[i] for i in tr_idx],
             "test": [seeds[i] for i in te_idx] + seeds[solved:]}
    seed_fams_train = {fams[i] for i in tr_idx}
    taken: set[bytes] = set()
    families = {"train": set(), "test": set()}
    out, skipped = {}, {}
    for split in ("train", "test"):
        rng = rngs[split]
        forbidden = seed_fams_train | families["train"] if split == "test" else set()
        searched, skipped[split] = searched_puzzles(n_search[split], pools[split], rng, taken,
                                                    forbidden, families[split])
        # Easy puzzles each get a fresh random grid; a test one is redrawn (never seen so far)
        # if its grid's family is on the train side.
        accept = None
        if split == "test":
            accept = lambda p: family_of(p.solution) not in forbidden  # noqa: E731
        easy = make_distinct_puzzles(9, 0, n_easy[split], rng, taken, accept=accept,
                                     what=f"easy {split}")
        families[split].update(family_of(p.solution) for p in easy)
        mixed = searched + easy
        out[split] = [mixed[i] for i in rng.permutation(len(mixed))]
    n_train_families = check_family_split(out["train"], out["test"])
    all_p = out["train"] + out["test"]
    by_source: dict = {}
    for p in all_p:
        by_source.setdefault(p.source, []).append(p.rating)
    info = {
        "kind": "generated",
        "source": f"generator+seeds:{seed_path}" if seeds else "generator",
        "version": GENERATOR_VERSION,
        "generator": "trm.data.sudoku_hard",
        "generator_version": f"{GENERATOR_VERSION}+{MIX_VERSION}",
        "mix": {"easy_fraction": EASY_FRACTION, "vicinity_min_rating": VICINITY_MIN_RATING,
                "n_seeds": len(seeds),
                "sources": {s: len(r) for s, r in sorted(by_source.items())}},
        "rating": solver.RATING_VERSION,
        # Mean guesses of our solver, per source of this build, beside the real lists' (measured
        # once, REAL_LIST_GUESSES): generated "gen_vicinity:gen_minimal" puzzles are far easier
        # than the real hard lists, hence not called hard.
        "difficulty": {
            "unit": f"mean guesses ({solver.RATING_VERSION})",
            "this_build": {s: _mean(r) for s, r in sorted(by_source.items())},
            "vicinity_search": _mean(r for s, rs in by_source.items()
                                     if s.startswith("gen_vicinity") for r in rs),
            "real_lists": REAL_LIST_GUESSES,
        },
        "split_hygiene": ("by solution-grid family (exact canonical form under digit relabelling, "
                          "row/column permutations within bands/stacks, band/stack permutations, "
                          "transpose): seeds split by family before vicinity search; no test "
                          "family among the train families (checked)"),
        "families": {"train": n_train_families,
                     "test": len({family_of(p.solution) for p in out["test"]}),
                     "shared": 0, "test_seeds_skipped_family_in_train": skipped["test"]},
    }
    return out["train"], out["test"], info
