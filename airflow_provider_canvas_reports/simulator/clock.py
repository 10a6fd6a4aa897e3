"""The simulator's clock and how Canvas writes times."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Clock:
    """Real (or injected) time plus an offset that ``advance`` moves forward.

    Everything time-dependent in the simulator (report states, the throttle bucket,
    link expiry) reads this one clock, so a benchmark can skip minutes instantly.
    """

    def __init__(self, source: Callable[[], float] | None = None) -> None:
        self._source = source or time.time
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._source() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds


class TimeFormat:
    """Canvas answers with local ISO-8601 timestamps carrying their offset."""

    def __init__(self, utc_offset_minutes: int) -> None:
        self.tz = timezone(timedelta(minutes=utc_offset_minutes))

    def iso(self, epoch: float | None) -> str | None:
        if epoch is None:
            return None
        return datetime.fromtimestamp(epoch, tz=self.tz).isoformat(timespec="seconds")

    def file_date(self, epoch: float) -> str:
        """The ``dd_Mon_YYYY`` part of report file names."""
        moment = datetime.fromtimestamp(epoch, tz=self.tz)
        # Fixed English month names: strftime("%b") follows the process locale.
        return f"{moment.day:02d}_{_MONTHS[moment.month - 1]}_{moment.year}"

    def amz_date(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
