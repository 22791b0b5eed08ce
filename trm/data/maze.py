"""Maze-Hard instances: Lehnert et al. ("Beyond A*", 2024) random-wall mazes + HRM's length filter.

Recipe (data notes section 4.2/4.3, implemented from the description, no Searchformer code):
  * W x H grid, no border walls (outside the grid is impassable), 4-neighbour unit-cost moves.
  * A layout: shuffle all cells, draw num_walls uniformly from [floor(WH/10)*3, floor(WH/10)*5]
    (30-50% walls; [270, 450] at 30x30); the first num_walls shuffled cells are walls.
  * A task: start and goal are distinct free cells; kept if the shortest plan has at least
    max(W, H) states (Lehnert) and at least `min_moves` moves (HRM: >= 110 at 30x30).
  * Sampling, equivalent to Lehnert's uniform (start, goal) draws but ~100x cheaper: layouts whose
    double-sweep BFS diameter estimate is below the filter are skipped (they have no qualifying
    pair, up to the estimate being a lower bound); otherwise up to 100 tries per layout draw a
    uniform start, BFS from it, accept with probability n_far / n_free and pick the goal uniformly
    among the n_far cells at distance >= min_moves - exactly a uniform draw over pairs, rejected
    unless long enough. One task per layout (Lehnert may keep several), layouts never repeat, so
    layouts are disjoint across splits.
  * Label: the deterministic A* plan (Manhattan heuristic; pop the open cell with the smallest
    f = g + h, ties broken by the smaller position hash x + 100000 * y; a cell's parent changes
    only on a strictly lower g). Shortest paths are almost never unique, so the exact-match
    label encodes this tie-break; judge models also by valid-and-optimal paths (`path_is_optimal`).

Text format (sapientinc CSV): row-major chars over "# SGo"; token = index in that string + 1
(PAD 0, wall 1, free 2, start 3, goal 4, path 5; vocab 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trm.data.jit import njit, njit_parallel, prange

GENERATOR_VERSION = "trm-maze-lehnert-v1"
CHARSET = "# SGo"
WALL, FREE, START, GOAL, PATH = (CHARSET.index(c) + 1 for c in CHARSET)
VOCAB_SIZE = len(CHARSET) + 1
PAPER_GRID, PAPER_MIN_MOVES = 30, 110
TRIES_PER_LAYOUT = 100  # (start, goal) draws per layout, as Lehnert et al.
MAX_LAYOUTS = 20_000_000  # give up (clear error) past this many layouts


def proportional_min_path(grid: int) -> int:
    """HRM's 110-move filter scaled with the side length (30 -> 110, 15 -> 55, 9 -> 33)."""
    return int(round(PAPER_MIN_MOVES * grid / PAPER_GRID))


def wall_count_range(h: int, w: int) -> tuple[int, int]:
    tenth = (h * w) // 10
    return 3 * tenth, 5 * tenth


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


@njit
def _neighbour(c, k, h, w):
    """Cell c's k-th neighbour in the order (y+1, y-1, x-1, x+1) on an h x w grid (row-major),
    or -1 off the grid: the one move order of the BFS and of the A* tie-break."""
    r, col = c // w, c % w
    if k == 0:
        return c + w if r + 1 < h else -1
    if k == 1:
        return c - w if r > 0 else -1
    if k == 2:
        return c - 1 if col > 0 else -1
    return c + 1 if col + 1 < w else -1


@njit
def _bfs(free, start, h, w, dist, queue):
    """Distances (moves) from start over free cells; -1 = unreachable."""
    for c in range(h * w):
        dist[c] = -1
    dist[start] = 0
    queue[0] = start
    head, tail = 0, 1
    while head < tail:
        c = queue[head]
        head += 1
        for k in range(4):
            nb = _neighbour(c, k, h, w)
            if nb >= 0 and free[nb] and dist[nb] < 0:
                dist[nb] = dist[c] + 1
                queue[tail] = nb
                tail += 1


@njit_parallel
def _layouts(swap_u, n_walls, free):
    """free[b] = False on the first n_walls[b] cells of a uniform random shuffle (a partial
    Fisher-Yates driven by swap_u[b, i] in [0, 1)), i.e. a uniform random wall set."""
    cells = free.shape[1]
    for b in prange(free.shape[0]):
        perm = np.arange(cells)
        for i in range(n_walls[b]):
            j = i + int(swap_u[b, i] * (cells - i))
            perm[i], perm[j] = perm[j], perm[i]
        for c in range(cells):
            free[b, c] = True
        for i in range(n_walls[b]):
            free[b, perm[i]] = False


@njit_parallel
def _diameter_estimates(free_all, seed_u, h, w, min_moves, out):
    """Double-sweep BFS (random free cell -> farthest cell -> its eccentricity): a cheap lower
    bound on the longest shortest path in the seed cell's component, used to skip layouts with
    no long pair. The second sweep is skipped when 2 * ecc(seed) < min_moves (then no pair in
    that component can qualify: d(a, b) <= d(a, s) + d(s, b))."""
    cells = h * w
    for b in prange(free_all.shape[0]):
        free = free_all[b]
        dist = np.empty(cells, np.int32)
        queue = np.empty(cells, np.int32)
        n_free = 0
        for c in range(cells):
            n_free += free[c]
        k = int(seed_u[b] * n_free)
        s = -1
        for c in range(cells):
            if free[c]:
                if k == 0:
                    s = c
                    break
                k -= 1
        _bfs(free, s, h, w, dist, queue)
        ecc = dist.max()
        if 2 * ecc < min_moves:
            out[b] = 2 * ecc
            continue
        _bfs(free, np.argmax(dist), h, w, dist, queue)
        out[b] = dist.max()


@njit
def _pick_pair(free, tries_u, h, w, min_moves):
    """Rejection-sample one (start, goal) pair of a layout, uniform over pairs at distance
    >= min_moves: start uniform over free cells, accepted with probability n_far / n_free,
    goal uniform over its far cells. Returns (start, goal) or (-1, -1) if every try fails."""
    cells = h * w
    dist = np.empty(cells, np.int32)
    queue = np.empty(cells, np.int32)
    freelist = np.empty(cells, np.int32)
    far = np.empty(cells, np.int32)
    n_free = 0
    for c in range(cells):
        if free[c]:
            freelist[n_free] = c
            n_free += 1
    for t in range(tries_u.shape[0]):
        s = freelist[int(tries_u[t, 0] * n_free)]
        _bfs(free, s, h, w, dist, queue)
        n_far = 0
        for c in range(cells):
            if dist[c] >= min_moves:
                far[n_far] = c
                n_far += 1
        if n_far > 0 and tries_u[t, 1] * n_free < n_far:
            return s, far[int(tries_u[t, 2] * n_far)]
    return -1, -1


@njit
def _astar(free, start, goal, h, w, path):
    """Deterministic A* (see module docstring). Writes the plan start..goal into `path`,
    returns its number of cells (0 if unreachable)."""
    cells = h * w
    inf = 1 << 30
    g = np.full(cells, inf, np.int64)
    parent = np.full(cells, -1, np.int64)
    is_open = np.zeros(cells, np.bool_)
    closed = np.zeros(cells, np.bool_)
    gr, gc = goal // w, goal % w
    g[start] = 0
    is_open[start] = True
    n_open = 1
    found = False
    while n_open > 0:
        best = -1
        best_f = inf
        best_hash = inf
        for c in range(cells):
            if is_open[c]:
                r, col = c // w, c % w
                f = g[c] + abs(r - gr) + abs(col - gc)
                hsh = col + 100000 * r
                if f < best_f or (f == best_f and hsh < best_hash):
                    best, best_f, best_hash = c, f, hsh
        c = best
        is_open[c] = False
        n_open -= 1
        closed[c] = True
        if c == goal:
            found = True
            break
        for k in range(4):  # children in the order (y+1, y-1, x-1, x+1)
            nb = _neighbour(c, k, h, w)
            if nb < 0 or not free[nb] or closed[nb]:
                continue
            if g[c] + 1 < g[nb]:  # strictly lower cost only
                g[nb] = g[c] + 1
                parent[nb] = c
                if not is_open[nb]:
                    is_open[nb] = True
                    n_open += 1
    if not found:
        return 0
    n = 0
    c = goal
    while c != -1:
        path[n] = c
        n += 1
        c = parent[c]
    path[:n] = path[:n][::-1].copy()
    return n


# --------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------


@dataclass
class Maze:
    free: np.ndarray  # bool [h, w]
    start: int  # flat cell index
    goal: int
    path: np.ndarray  # flat cell indices start..goal (the A* label)

    @property
    def moves(self) -> int:
        return len(self.path) - 1

    def question(self) -> np.ndarray:
        """Token grid [h, w] of the puzzle."""
        q = np.where(self.free, FREE, WALL).astype(np.uint8)
        q.flat[self.start] = START
        q.flat[self.goal] = GOAL
        return q

    def answer(self) -> np.ndarray:
        a = self.question()
        a.flat[self.path[1:-1]] = PATH
        return a


def astar_path(free: np.ndarray, start: int, goal: int) -> np.ndarray:
    h, w = free.shape
    path = np.empty(h * w, np.int64)
    n = _astar(np.ascontiguousarray(free.reshape(-1)), start, goal, h, w, path)
    return path[:n].copy()


def bfs_distances(free: np.ndarray, start: int) -> np.ndarray:
    h, w = free.shape
    dist = np.empty(h * w, np.int32)
    _bfs(np.ascontiguousarray(free.reshape(-1)), start, h, w, dist, np.empty(h * w, np.int32))
    return dist


def generate_mazes(grid: int, count: int, min_moves: int, rng: np.random.Generator,
                   taken_layouts: set[bytes] | None = None, batch: int = 4096) -> list[Maze]:
    """`count` mazes on distinct layouts (not in taken_layouts, which is updated)."""
    h = w = grid
    cells = h * w
    min_moves = max(int(min_moves), max(h, w) - 1)  # Lehnert: plans of >= max(W, H) states
    lo, hi = wall_count_range(h, w)
    taken = taken_layouts if taken_layouts is not None else set()
    out: list[Maze] = []
    tried = 0
    while len(out) < count:
        n_walls = rng.integers(lo, hi + 1, size=batch).astype(np.int32)
        free_all = np.empty((batch, cells), np.bool_)
        _layouts(rng.random((batch, hi)), n_walls, free_all)
        diam = np.empty(batch, np.int32)
        _diameter_estimates(free_all, rng.random(batch), h, w, min_moves, diam)
        tried += batch
        for b in np.flatnonzero(diam >= min_moves):
            # Drawn per candidate layout, in order: deterministic whatever the kernels run on.
            start, goal = _pick_pair(free_all[b], rng.random((TRIES_PER_LAYOUT, 3)), h, w,
                                     min_moves)
            if start < 0:
                continue
            free = free_all[b].copy()
            key = np.packbits(free).tobytes()
            if key in taken:
                continue
            taken.add(key)
            free = free.reshape(h, w)
            out.append(Maze(free, int(start), int(goal), astar_path(free, int(start), int(goal))))
            if len(out) == count:
                break
        if tried >= MAX_LAYOUTS and len(out) < count:
            raise RuntimeError(f"only {len(out)} of {count} {grid}x{grid} mazes with >= "
                               f"{min_moves} moves in {tried} layouts; lower data.min_path")
    return out


def path_is_optimal(answer: np.ndarray, question: np.ndarray) -> bool:
    """Valid-and-optimal check of a predicted answer grid (tokens) against its question:
    the marked cells plus S and G form a single 4-connected simple path from S to G over free
    cells, with exactly the shortest-path length."""
    q = np.asarray(question)
    a = np.asarray(answer)
    if a.shape != q.shape:
        return False
    keep = (q == WALL) | (q == START) | (q == GOAL)
    if np.any(a[keep] != q[keep]) or np.any((a != PATH) & (a != q)):
        return False  # walls/S/G changed, or free cells got other tokens
    free = q != WALL
    start = int(np.flatnonzero(q.reshape(-1) == START)[0])
    goal = int(np.flatnonzero(q.reshape(-1) == GOAL)[0])
    best = bfs_distances(free, start)[goal]
    on = (a == PATH) | (a == START) | (a == GOAL)
    if best < 0 or int(on.sum()) != best + 1:
        return False
    # With exactly best+1 cells, S and G connected through marked cells means a shortest path.
    return bfs_distances(on, start)[goal] == best
