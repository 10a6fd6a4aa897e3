"""Report lifecycle: the state machine, driven by the simulator's clock.

A report's state is never advanced by a timer. It is computed from its planned
phase times whenever someone looks, so a simulated clock that jumps ahead is as good
as waiting, and nothing runs in the background except file generation.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock
from .reportfiles import BuiltFile

FATES = ("stuck_created", "stuck_running", "error", "aborted_by_other", "deleted_by_other")
GENERIC_FAILURE = "Failed, the report failed to generate a file. Please try again."
ABORTED_TEXT = "Report has been aborted"
TERMINAL = ("complete", "error", "aborted", "deleted")


def error_code_failure(code: int) -> str:
    return f"Failed, please report the following error code to your system administrator: ErrorReport:{code};"


@dataclass
class Attachment:
    id: int
    report_id: int
    account_id: int
    display_name: str
    content_type: str
    size: int
    file: BuiltFile
    created_at: float

    @property
    def mime_class(self) -> str:
        return "zip" if self.file.is_zip else "file"


@dataclass(frozen=True)
class Snapshot:
    status: str
    progress: int
    current_line: int
    started_at: float | None
    ended_at: float | None
    extra_text: str


@dataclass
class ReportState:
    """One report as Canvas holds it. Read ``status`` or ``snapshot()`` for its state now."""

    id: int
    report: str
    account_id: int
    parameters: dict[str, Any]
    user_id: int
    user_name: str
    created_at: float
    queue_seconds: float
    run_seconds: float
    compile_seconds: float
    parallel: bool
    fate: str | None
    extra_text: str
    # Set when the report is going to end in error, with Canvas's reason.
    failure: str | None
    rows_hint: int
    clock: Clock = field(repr=False)
    start_at: float = 0.0
    # Set when a client call (abort / delete) ended the report: its state from then on.
    frozen: Snapshot | None = None
    deleted: bool = False
    # Set when a client deleted the report while it was queued: Canvas only marks it deleted,
    # and its job still starts it (marking it running again), so it is hidden until then.
    deleted_queued_at: float | None = None
    file: BuiltFile | None = None
    file_ready_at: float | None = None
    attachment: Attachment | None = None

    def __post_init__(self) -> None:
        if not self.start_at:
            self.start_at = self.created_at + self.queue_seconds
        if self.fate == "stuck_created":
            self.start_at = math.inf

    # Planned phase boundaries.
    @property
    def run_end(self) -> float:
        return math.inf if self.fate == "stuck_running" else self.start_at + self.run_seconds

    @property
    def finish_at(self) -> float:
        return self.run_end + (self.compile_seconds if self.parallel else 0.0)

    @property
    def other_at(self) -> float | None:
        """When someone else aborts or deletes the report (scripted fates), mid-run."""
        if self.fate not in ("aborted_by_other", "deleted_by_other"):
            return None
        return self.start_at + self.run_seconds / 2

    @property
    def planned_end(self) -> float:
        """When the job frees its worker, for queueing reports behind it."""
        if self.frozen is not None:
            return self.frozen.ended_at or self.created_at
        other = self.other_at
        return other if other is not None else self.finish_at

    @property
    def status(self) -> str:
        return self.snapshot().status

    def is_deleted(self, now: float | None = None) -> bool:
        if self.deleted:
            return True
        other = self.other_at
        t = self.clock.now() if now is None else now
        if self.deleted_queued_at is not None and t < self.start_at:
            return True
        return self.fate == "deleted_by_other" and other is not None and t >= other

    def snapshot(self, now: float | None = None) -> Snapshot:
        t = self.clock.now() if now is None else now
        if self.frozen is not None:
            return self.frozen
        if t < self.start_at or t <= self.created_at:
            if self.deleted_queued_at is not None:
                return Snapshot("deleted", 0, 0, None, self.deleted_queued_at, self.extra_text)
            # A report is always "created" in the answer that starts it.
            return Snapshot("created", 0, 0, None, None, self.extra_text)
        started = self.start_at
        other = self.other_at
        if other is not None and t >= other:
            status = "aborted" if self.fate == "aborted_by_other" else "deleted"
            return Snapshot(status, 100, self._line(other), started, other, ABORTED_TEXT)
        if t < self.run_end:
            frac = (t - self.start_at) / self.run_seconds if self.run_seconds > 0 else 1.0
            if self.fate == "stuck_running":
                frac = min(0.9, (t - self.start_at) / max(self.run_seconds, 1.0) * 0.9)
            progress = min(99, int(frac * 100))
            return Snapshot("running", progress, self._line(t), started, None, self.extra_text)
        if self.parallel and t < self.finish_at:
            return Snapshot("compiling", 99, self._rows_line(), started, None, self.extra_text)
        if self.failure is not None:
            return Snapshot("error", 100, self._rows_line(), started, self.finish_at, self.failure)
        if self.file_ready_at is None:
            # The clock says done but the file is still being written: keep running.
            return Snapshot(
                "compiling" if self.parallel else "running",
                99,
                self._rows_line(),
                started,
                None,
                self.extra_text,
            )
        ended = max(self.finish_at, self.file_ready_at)
        if t < ended:
            return Snapshot("running", 99, self._rows_line(), started, None, self.extra_text)
        lines = self.file.rows if self.file is not None else self.rows_hint
        return Snapshot("complete", 100, lines, started, ended, self.extra_text)

    def _line(self, t: float) -> int:
        """current_line as Canvas updates it: in steps of 1,000 rows."""
        if t <= self.start_at or self.run_seconds <= 0:
            return 0
        frac = min(1.0, (t - self.start_at) / self.run_seconds)
        return int(self.rows_hint * frac) // 1000 * 1000

    def _rows_line(self) -> int:
        return self.rows_hint // 1000 * 1000

    def run_time(self, snap: Snapshot, now: float) -> float:
        """Seconds waiting, running so far, or taken, depending on the state."""
        if snap.started_at is None:
            return round(max(0.0, (snap.ended_at or now) - self.created_at), 3)
        return round(max(0.0, (snap.ended_at or now) - snap.started_at), 3)


class ReportStore:
    """All reports of the simulated Canvas, with Canvas's rules for listing and ending them."""

    def __init__(self, clock: Clock, serialize_jobs: bool = False, first_id: int = 101) -> None:
        self.clock = clock
        self.serialize_jobs = serialize_jobs
        self.reports: dict[int, ReportState] = {}
        self._next_id = first_id
        self._scripted: list[tuple[str | None, str]] = []
        self._lock = threading.Lock()
        # Job workers stopped (a self-hosted Canvas in maintenance): queued reports stay queued.
        self._paused = False
        self._resumed_at = -math.inf

    # Scripted fates, usable from any thread.
    def script(self, report_type: str | None, fate: str, times: int = 1) -> None:
        if fate not in FATES:
            raise ValueError(f"unknown fate {fate!r}; expected one of {FATES}")
        with self._lock:
            self._scripted.extend([(report_type, fate)] * times)

    def clear_scripts(self) -> None:
        with self._lock:
            self._scripted.clear()

    def take_fate(self, report_type: str) -> str | None:
        with self._lock:
            for index, (wanted, fate) in enumerate(self._scripted):
                if wanted is None or wanted == report_type:
                    del self._scripted[index]
                    return fate
        return None

    def new_id(self) -> int:
        report_id = self._next_id
        self._next_id += 1
        return report_id

    def add(self, state: ReportState) -> ReportState:
        self.reports[state.id] = state
        # As of its creation, so the clock ticking since cannot make it look started.
        self._replan(state.created_at)
        return state

    def pause_jobs(self) -> None:
        """The job workers stop taking reports: queued ones stay `created`, running ones go on."""
        self._paused = True
        self._replan(self.clock.now())

    def resume_jobs(self) -> None:
        """The job workers take the queued reports again, from now on."""
        now = self.clock.now()
        self._paused, self._resumed_at = False, now
        self._replan(now)

    def _earliest_start(self, state: ReportState) -> float:
        if self._paused:
            return math.inf
        return max(state.created_at + state.queue_seconds, self._resumed_at)

    def __iter__(self) -> Iterator[ReportState]:
        return iter(list(self.reports.values()))

    def find(self, report_id: int, report: str, account_id: int) -> ReportState | None:
        """A report the API can see: right type in the path, right account, not deleted."""
        state = self.reports.get(report_id)
        if state is None or state.report != report or state.account_id != account_id:
            return None
        if state.is_deleted():
            return None
        return state

    def index(self, report: str, account_id: int) -> list[ReportState]:
        """Newest first by created_at, deleted excluded."""
        now = self.clock.now()
        found = [
            s
            for s in self.reports.values()
            if s.report == report and s.account_id == account_id and not s.is_deleted(now)
        ]
        return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)

    def abort(self, state: ReportState) -> bool:
        """Only a running report can be aborted; anything else is a 404 in Canvas."""
        now = self.clock.now()
        snap = state.snapshot(now)
        if snap.status != "running":
            return False
        state.frozen = Snapshot("aborted", 100, snap.current_line, snap.started_at, now, ABORTED_TEXT)
        self._replan(now)
        return True

    def delete(self, state: ReportState) -> None:
        now = self.clock.now()
        snap = state.snapshot(now)
        if snap.status == "created":
            # Canvas's delete only sets the state: the queued job still runs the report, which
            # then shows `running` again and goes on to the end (AccountReports.generate_report).
            state.deleted_queued_at = now
            return
        # Deleting a queued or running report stops it there; a finished one keeps its times.
        ended = snap.ended_at if snap.status in TERMINAL and snap.ended_at is not None else now
        state.frozen = Snapshot(
            "deleted", snap.progress, snap.current_line, snap.started_at, ended, snap.extra_text
        )
        state.deleted = True
        self._replan(now)

    def _replan(self, now: float) -> None:
        """When each report not yet started will start: after its queue time, never while the
        job workers are paused, and with serialised jobs (Canvas runs one report job at a time
        per root account) only once the ones before it have ended."""
        free_at = -math.inf
        # All simulated accounts share one root account, hence one queue.
        for state in sorted(self.reports.values(), key=lambda s: s.id):
            if state.frozen is not None:
                if state.frozen.started_at is not None and self.serialize_jobs:
                    free_at = max(free_at, state.planned_end)
                continue  # ended before it ever started: held no worker
            if state.fate != "stuck_created" and state.start_at >= now:
                state.start_at = max(self._earliest_start(state), free_at)
            if self.serialize_jobs:
                free_at = max(free_at, state.planned_end)
