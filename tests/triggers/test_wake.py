"""Long sleeps end on a shared grid of the loop's clock, and the sleepers of a tick share a timer."""

from __future__ import annotations

import asyncio
import gc
import math
import time
import weakref
from typing import Any

import pytest

from airflow_provider_canvas_reports.triggers import wake


class StoppedClock(asyncio.SelectorEventLoop):
    """A loop whose clock stands still, recording when each timer it arms would fire."""

    def __init__(self) -> None:
        super().__init__()
        self.timers: list[float] = []

    def time(self) -> float:
        return 1000.03

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        self.timers.append(when)
        return super().call_at(when, callback, *args, context=context)


def armed_timers(*sleeps: tuple[float, float | None]) -> list[float]:
    """The timers the loop arms for these sleeps (seconds, deadline), started together."""
    loop = StoppedClock()
    try:
        tasks = [loop.create_task(_await(wake.sleep, seconds, deadline)) for seconds, deadline in sleeps]
        loop.run_until_complete(_settle())
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        return loop.timers
    finally:
        loop.close()


async def _await(sleep: Any, seconds: float, deadline: float | None) -> None:
    await sleep(seconds, deadline)


async def _settle() -> None:
    for _ in range(3):  # let every task reach its sleep
        await asyncio.sleep(0)


def test_a_long_sleep_ends_on_the_next_tick_a_little_later():
    assert armed_timers((5.0, None)) == [pytest.approx(1005.1)]
    assert armed_timers((15.0, None)) == [pytest.approx(1015.1)]
    assert armed_timers((60.02, None)) == [pytest.approx(1060.1)]
    assert armed_timers((299.97, None)) == [pytest.approx(1300.0)]


def test_sleepers_of_one_tick_share_one_timer():
    timers = armed_timers((299.95, None), (299.97, None), (299.91, None), (15.0, None))
    assert sorted(timers) == [pytest.approx(1015.1), pytest.approx(1300.0)]


def test_short_sleeps_and_the_deadline_are_kept_exactly():
    assert armed_timers((4.9, None)) == [pytest.approx(1004.93)]
    # Stretching would carry the poll past the deadline: the sleep stays as the Waiter said.
    assert armed_timers((15.0, time.time() + 15.0)) == [pytest.approx(1015.03)]


async def test_sleepers_wake_on_time_together_and_a_cancelled_one_stays_cancelled(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(wake, "COALESCE_FROM", 0.2)  # grid sleeps of a fraction of a second
    loop = asyncio.get_running_loop()
    began = loop.time()
    woke: dict[int, float] = {}
    lengths = [0.25 + 0.2 * i / 30 for i in range(30)]

    async def sleeper(index: int) -> None:
        await wake.sleep(lengths[index], None)
        woke[index] = loop.time()

    tasks = [asyncio.create_task(sleeper(i)) for i in range(30)]
    await asyncio.sleep(0.1)
    tasks[7].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[7], asyncio.CancelledError)
    assert sorted(woke) == [i for i in range(30) if i != 7]
    for index, at in woke.items():
        # Lengths spread over 0.2 s, yet none woke before the grid tick after its own end: a
        # sleep of its exact length would wake up to a tick early. (Lateness, which a loaded
        # machine adds, can only make a wake later, so it cannot pass this by chance.)
        tick = math.ceil((began + lengths[index]) / wake.WAKE_GRID) * wake.WAKE_GRID
        assert at >= tick - 1e-6
        assert at < tick + 0.5  # and not held much past it


def test_a_closed_loop_is_not_kept_alive_by_its_sleepers():
    loop = StoppedClock()
    task = loop.create_task(_await(wake.sleep, 15.0, None))
    loop.run_until_complete(_settle())
    assert id(loop) in wake._TICKS  # while a sleeper waits for its tick
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()
    gone = weakref.ref(loop)
    del loop, task
    gc.collect()
    assert gone() is None
