"""Report jobs: generate files in worker threads and attach them to their reports.

Generation starts when a report is created, so by the time the clock says the report
is done its file is usually ready; a report whose file is still being written keeps
answering ``running`` (as a slow Canvas job does).
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor

from .clock import Clock, TimeFormat
from .data import GenerationCancelled
from .reportfiles import BuiltFile, FileFactory, FileRequest, display_name
from .state import Attachment, ReportState, error_code_failure

log = logging.getLogger(__name__)


class FileJobs:
    def __init__(
        self, factory: FileFactory, workers: int, clock: Clock, times: TimeFormat, seed: int
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.times = times
        self.seed = seed
        self.attachments: dict[int, Attachment] = {}
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="canvas-sim-file")
        # Same content requested twice while generating: share one build.
        self._building: dict[str, asyncio.Future[BuiltFile]] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self._next_attachment = 5001
        self._rng = random.Random(seed)

    @property
    def busy(self) -> int:
        return len(self._pending)

    def submit(self, state: ReportState, request: FileRequest) -> None:
        """Start building ``state``'s file (call from the event loop)."""
        loop = asyncio.get_running_loop()
        key = request.cache_key()
        build = self._building.get(key)
        if build is None:
            build = asyncio.ensure_future(loop.run_in_executor(self._executor, self.factory.build, request))
            self._building[key] = build
            build.add_done_callback(lambda done: self._built(key, done))
        task = asyncio.ensure_future(self._attach_when_built(state, build))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _built(self, key: str, done: asyncio.Future[BuiltFile]) -> None:
        self._building.pop(key, None)
        # Mark the exception retrieved: the waiting task reports it, or is gone on stop.
        if not done.cancelled():
            done.exception()

    async def _attach_when_built(self, state: ReportState, build: asyncio.Future[BuiltFile]) -> None:
        try:
            built = await asyncio.shield(build)
        except GenerationCancelled:
            return
        except Exception:
            log.exception("generating report %s failed", state.id)
            state.failure = error_code_failure(self._rng.randint(1000, 99999))
            return
        attachment = Attachment(
            id=self._next_attachment,
            report_id=state.id,
            account_id=state.account_id,
            display_name=display_name(
                state.report, state.id, self.times.file_date(state.created_at), built.is_zip, self.seed
            ),
            content_type=built.content_type,
            size=built.size,
            file=built,
            created_at=self.clock.now(),
        )
        self._next_attachment += 1
        self.attachments[attachment.id] = attachment
        state.attachment = attachment
        state.file = built
        state.file_ready_at = attachment.created_at

    async def wait_idle(self, timeout: float | None = None) -> None:
        if self._pending:
            await asyncio.wait_for(asyncio.gather(*list(self._pending), return_exceptions=True), timeout)

    def shutdown(self) -> None:
        for task in list(self._pending):
            task.cancel()
        # Builds check this between batches, so waiting for them is short.
        self.factory.cancel.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
