"""Long sleeps of many triggers end together, on a shared grid of the event loop's clock.

Thousands of triggers in one triggerer each poll on their own schedule. A sleep of
COALESCE_FROM seconds or more is stretched to end on the next WAKE_GRID tick, so the sleepers
wake the loop in batches rather than one by one (each wake-up costs a pass of the loop and a
system call), and the sleepers of one tick share one timer: each sleep is a bare future, not a
timer handle, context copy and coroutine of its own. That keeps the loop's heap of timers small
and leaves the cyclic GC less to walk (BENCHMARKS.md, goal 3). The delay is under WAKE_GRID, at
most 2% of a sleep.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Awaitable

WAKE_GRID = 0.1
COALESCE_FROM = 5.0


def sleep(seconds: float, deadline: float | None) -> Awaitable[None]:
    """Sleep `seconds`; a long one ends on the next grid tick, unless that passes `deadline`.

    Short sleeps stay exact, and so does a sleep the stretch would carry past the deadline
    (epoch seconds). A plain function returning the awaitable: no coroutine per sleep.
    """
    if seconds < COALESCE_FROM:
        return asyncio.sleep(seconds)
    loop = asyncio.get_running_loop()
    now = loop.time()
    tick = math.ceil((now + seconds) / WAKE_GRID)
    if deadline is not None and time.time() + (tick * WAKE_GRID - now) >= deadline:
        return asyncio.sleep(seconds)
    ticks = _TICKS.get(id(loop))
    if ticks is None:
        ticks = _TICKS[id(loop)] = _Ticks()
    return ticks.wake_at(loop, tick)


class _Ticks:
    """One event loop's sleepers, by the grid tick they wake at; one timer per tick.

    Only the loop's pending timers hold it (`_TICKS` is weak), so it goes with them: its sleepers'
    futures hold their loop, and a registry holding it would keep every loop ever used alive.
    """

    def __init__(self) -> None:
        self.sleepers: dict[int, list[asyncio.Future[None]]] = {}

    def wake_at(self, loop: asyncio.AbstractEventLoop, tick: int) -> asyncio.Future[None]:
        sleepers = self.sleepers.get(tick)
        if sleepers is None:
            sleepers = self.sleepers[tick] = []
            loop.call_at(tick * WAKE_GRID, self._wake, tick)
        future: asyncio.Future[None] = loop.create_future()
        sleepers.append(future)
        return future

    def _wake(self, tick: int) -> None:
        for future in self.sleepers.pop(tick):
            if not future.done():  # a cancelled sleeper (its task was cancelled) stays cancelled
                future.set_result(None)


# By id(loop): a loop's id is not reused while its timers, and so its _Ticks, are alive.
_TICKS: weakref.WeakValueDictionary[int, _Ticks] = weakref.WeakValueDictionary()
