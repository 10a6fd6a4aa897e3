"""When a start task may send its first request: its place among the tasks released with it,
and its worker host's turns on the token. Pure rules; operators/_turns.py applies them."""

from __future__ import annotations

import random

# Start tasks released together (a mapped task's instances, the DAG's start tasks with the same
# upstream tasks) would send their first requests at once, and Canvas lets only about 14 requests
# per token be in flight (50 units each of a 700-unit bucket): each task waits its place in the
# release times a spacing, so their first requests reach the bucket a few at a time. The order
# repeats every STAGGER_CYCLE places, so no task waits more than STAGGER_CYCLE spacings.
STAGGER_CYCLE = 50


def release_place(rank: int, map_index: int | None) -> int:
    """A start task's place among those released with it: its rank among the DAG's start tasks
    released together (0 when it is the only one) plus its map index (an unmapped task's is -1)."""
    return max(0, rank) + (map_index if map_index is not None and map_index > 0 else 0)


def start_delay(place: int, spacing: float, jitter: float, rng: random.Random | None = None) -> float:
    """Seconds a start task waits before its first request: its place times `spacing`, plus jitter.

    `jitter` adds a random 0 to `jitter` seconds (tasks that cannot know of each other: other
    DAGs on other hosts).
    """
    return (place % STAGGER_CYCLE) * spacing + (jitter * (rng or random).random() if jitter > 0 else 0.0)


def host_turn(last: float | None, now: float, spacing: float) -> float:
    """When a task may send its first request, given the last turn taken on its worker host for
    the same token (epoch seconds; None for none): `spacing` after that turn, never before `now`.
    A turn a whole cycle ahead (more tasks at once than STAGGER_CYCLE, or a clock stepped back)
    counts from now again, so no task waits more than STAGGER_CYCLE turns."""
    if last is None or spacing <= 0:
        return now
    turn = max(now, last + spacing)
    return now if turn - now >= STAGGER_CYCLE * spacing else turn
