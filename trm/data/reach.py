"""Reachability in a cut maze: a control task whose depth need is known per cell.

An instance is a perfect maze (a spanning tree of rooms, drawn by randomized depth-first
search) on an r x r lattice of rooms, laid out on a (2r-1) x (2r-1) grid: rooms on even
coordinates, the passages between them on the cells in between. One passage of the tree is
walled up ("the cut"), which splits the maze in two; one room is the source S. The label
marks every free cell reachable from S.

Why this task: in a tree, whether a cell is reachable depends only on whether the cut lies on
its unique path to S, so deciding a cell at corridor distance d from S takes d steps of
local propagation (flood fill). A network that spreads information one neighbourhood per
layer needs about d layers; the distance is the knob, recorded per cell, and the instance's
need is the largest distance of any free cell from S (the flood fill's rounds). Mazes with
branching paths, unlike straight corridors, leave no fixed-position shortcut for an MLP
token mixer: the route depends on the walls (see docs/control-tasks.md).

Tokens: inputs PAD 0, wall 1, free 2, source 3; labels 0 on walls (ignored by the loss and
the accuracies), 2 = free but cut off, 4 = reachable (S included). Vocabulary 5.
"""

from __future__ import annotations

import numpy as np

from trm.data.distinct import draw_distinct

GENERATOR_VERSION = "trm-reach-cutmaze-v1"
PAD, WALL, FREE, SOURCE = 0, 1, 2, 3
IGNORE, CUT_OFF, REACHED = 0, 2, 4
VOCAB_SIZE = 5
MAX_TRIES_FACTOR = 200  # draws per requested instance before giving up with a clear error
NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def rooms_for(grid: int) -> int:
    if grid < 3 or grid % 2 == 0:
        raise ValueError(f"reach grids are odd and >= 3 (rooms on even cells), got {grid}")
    return (grid + 1) // 2


def perfect_maze(rooms: int, rng: np.random.Generator) -> np.ndarray:
    """A (2r-1)^2 bool grid, True = free: rooms plus the passages of a random spanning tree
    (iterative randomized depth-first search from a random room)."""
    side = 2 * rooms - 1
    free = np.zeros((side, side), bool)
    seen = np.zeros((rooms, rooms), bool)
    start = (int(rng.integers(rooms)), int(rng.integers(rooms)))
    stack = [start]
    seen[start] = True
    free[2 * start[0], 2 * start[1]] = True
    while stack:
        i, j = stack[-1]
        options = [(i + di, j + dj) for di, dj in NEIGHBOURS
                   if 0 <= i + di < rooms and 0 <= j + dj < rooms and not seen[i + di, j + dj]]
        if not options:
            stack.pop()
            continue
        ni, nj = options[int(rng.integers(len(options)))]
        seen[ni, nj] = True
        free[2 * ni, 2 * nj] = True
        free[i + ni, j + nj] = True  # the passage between (2i, 2j) and (2ni, 2nj)
        stack.append((ni, nj))
    return free


def bfs_distance(free: np.ndarray, source: tuple[int, int]) -> np.ndarray:
    """Steps from source to every free cell through free cells (-1: wall or unreachable)."""
    dist = np.full(free.shape, -1, np.int32)
    dist[source] = 0
    frontier = [source]
    while frontier:
        nxt = []
        for i, j in frontier:
            for di, dj in NEIGHBOURS:
                a, b = i + di, j + dj
                if 0 <= a < free.shape[0] and 0 <= b < free.shape[1] and free[a, b] and dist[a, b] < 0:
                    dist[a, b] = dist[i, j] + 1
                    nxt.append((a, b))
        frontier = nxt
    return dist


def draw(grid: int, rng: np.random.Generator):
    """One instance: (inputs [g, g] uint8, labels [g, g] uint8, cell distance [g, g] int16,
    rounds). Cell distance: corridor steps from S in the maze before the cut, on every cell
    that stays free (-1 on walls, the cut included); rounds = its maximum."""
    rooms = rooms_for(grid)
    free = perfect_maze(rooms, rng)
    source = (2 * int(rng.integers(rooms)), 2 * int(rng.integers(rooms)))
    passages = np.argwhere(free & ((np.indices(free.shape).sum(0) % 2) == 1))
    tree_dist = bfs_distance(free, source)
    cut = tuple(passages[int(rng.integers(len(passages)))])
    free[cut] = False
    reached = bfs_distance(free, source) >= 0
    inputs = np.where(free, FREE, WALL).astype(np.uint8)
    inputs[source] = SOURCE
    labels = np.where(free, np.where(reached, REACHED, CUT_OFF), IGNORE).astype(np.uint8)
    cell_dist = np.where(free, tree_dist, -1).astype(np.int16)
    return inputs, labels, cell_dist, int(cell_dist.max())


def generate(grid: int, count: int, min_rounds: int, rng: np.random.Generator,
             taken: set[bytes]) -> list[tuple]:
    """count distinct instances (inputs never in `taken`, which grows) whose flood fill needs
    at least min_rounds rounds."""
    def one():
        instance = draw(grid, rng)
        return None if instance[3] < min_rounds else (instance[0].tobytes(), instance)

    return draw_distinct(one, count, taken, MAX_TRIES_FACTOR * max(count, 1), lambda kept, draws: (
        f"only {kept} of {count} distinct {grid}x{grid} reach instances with >= {min_rounds} "
        f"rounds after {draws} draws; lower data.min_path or data.n_train/n_test, or raise "
        f"data.grid"))
