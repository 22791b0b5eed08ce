"""Drawing distinct generated instances, with a bound on the draws.

    items = draw_distinct(draw, count, taken, max_draws, shortfall)

`draw()` returns (key, item), or None for a draw the task rejects (too easy, say); an item
is kept when its key is not in `taken`, which grows, so one set shared by the train and test
draws keeps the splits disjoint. After `max_draws` draws without `count` items the
generator gives up with `shortfall(kept, draws)` as a one-line ValueError instead of looping
forever on a request the task cannot meet.
"""

from __future__ import annotations

from typing import Any, Callable


def draw_distinct(draw: Callable[[], tuple[bytes, Any] | None], count: int, taken: set[bytes],
                  max_draws: int, shortfall: Callable[[int, int], str]) -> list:
    out, draws = [], 0
    while len(out) < count:
        if draws >= max_draws:
            raise ValueError(shortfall(len(out), draws))
        draws += 1
        drawn = draw()
        if drawn is None or drawn[0] in taken:
            continue
        taken.add(drawn[0])
        out.append(drawn[1])
    return out
