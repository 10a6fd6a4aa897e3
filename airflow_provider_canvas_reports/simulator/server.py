"""Running the simulator: async start/stop, or a background thread for sync code."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from .app import canvas_app, files_app, store_app
from .clock import Clock, TimeFormat
from .config import SimulatorConfig
from .context import SimContext
from .counters import Counters
from .faults import Fault, FaultPlan
from .jobs import FileJobs
from .reportfiles import FileFactory
from .signing import Signer
from .state import Attachment, ReportState, ReportStore
from .throttle import Throttle


@dataclass(frozen=True)
class RunningSimulator:
    """Where a started simulator listens, and the token to use."""

    simulator: CanvasSimulator
    url: str
    files_url: str
    store_url: str
    token: str


class CanvasSimulator:
    """A Canvas account-reports server on three local ports (Canvas, files, store).

    ``await sim.start()`` / ``await sim.stop()`` inside an event loop, or
    ``with sim.run_in_thread() as running:`` from synchronous code.
    """

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any) -> None:
        if config is not None and overrides:
            raise TypeError("pass a SimulatorConfig or keyword overrides, not both")
        self.config = config if config is not None else SimulatorConfig(**overrides)
        cfg = self.config
        self.clock = Clock(cfg.clock)
        self.times = TimeFormat(cfg.utc_offset_minutes)
        self.counters = Counters()
        self.faults = FaultPlan(cfg.seed, cfg.fail_rate, cfg.fail_kinds, cfg.fail_endpoints)
        self._store = ReportStore(self.clock, cfg.serialize_jobs)
        self.throttle = Throttle(
            self.clock,
            cfg.throttle,
            cfg.bucket_capacity,
            cfg.request_cost,
            cfg.leak_per_second,
            cfg.actual_cost,
        )
        # A TemporaryDirectory also cleans up at exit if stop() is never called.
        self._own_data_dir: tempfile.TemporaryDirectory[str] | None = None
        self._jobs: FileJobs | None = None
        self._runners: list[web.AppRunner] = []
        self._running: RunningSimulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- what tests and benchmarks look at ------------------------------------------

    @property
    def reports(self) -> dict[int, ReportState]:
        """Report id -> internal state (``.status``, ``.snapshot()``, ``.attachment`` ...)."""
        return self._store.reports

    @property
    def attachments(self) -> dict[int, Attachment]:
        return self._jobs.attachments if self._jobs is not None else {}

    @property
    def running(self) -> RunningSimulator:
        if self._running is None:
            raise RuntimeError("the simulator is not running")
        return self._running

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def files_url(self) -> str:
        return self.running.files_url

    @property
    def store_url(self) -> str:
        return self.running.store_url

    @property
    def token(self) -> str:
        return self.config.primary_token

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (reports progress, buckets leak, links expire)."""
        self.clock.advance(seconds)

    def script_report(self, report_type: str | None, fate: str, times: int = 1) -> None:
        """Give the next ``times`` started reports of ``report_type`` (None: any) a fate:
        ``stuck_created``, ``stuck_running``, ``error``, ``aborted_by_other``,
        ``deleted_by_other``."""
        self._store.script(report_type, fate, times)

    def pause_jobs(self) -> None:
        """Stop the job workers: reports started from now on stay `created` until resumed, as on
        a self-hosted Canvas whose workers are down (running reports go on)."""
        self._store.pause_jobs()

    def resume_jobs(self) -> None:
        """Start the job workers again: queued reports start now (after their queue time)."""
        self._store.resume_jobs()

    def add_fault(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> RunningSimulator:
        if self._running is not None:
            raise RuntimeError("the simulator is already running")
        cfg = self.config
        if cfg.data_dir is not None:
            data_dir = Path(cfg.data_dir)
        else:
            self._own_data_dir = tempfile.TemporaryDirectory(
                prefix="canvas-simulator-", ignore_cleanup_errors=True
            )
            data_dir = Path(self._own_data_dir.name)
        self._jobs = FileJobs(FileFactory(data_dir), cfg.generation_workers, self.clock, self.times, cfg.seed)
        ctx = SimContext(
            config=cfg,
            clock=self.clock,
            times=self.times,
            reports=self._store,
            counters=self.counters,
            faults=self.faults,
            throttle=self.throttle,
            jobs=self._jobs,
            signer=Signer(self.times),
        )
        self._loop = asyncio.get_running_loop()
        try:
            urls = []
            for app, port in (
                (canvas_app(ctx), cfg.port),
                (files_app(ctx), cfg.files_port),
                (store_app(ctx), cfg.store_port),
            ):
                urls.append(await self._serve(app, port))
        except BaseException:
            await self.stop()
            raise
        ctx.canvas_url, ctx.files_url, ctx.store_url = urls
        self._running = RunningSimulator(self, urls[0], urls[1], urls[2], cfg.primary_token)
        return self._running

    async def _serve(self, app: web.Application, port: int) -> str:
        kwargs: dict[str, Any] = {"handle_signals": False, "shutdown_timeout": 0.5}
        if not self.config.access_log:
            kwargs["access_log"] = None
        runner = web.AppRunner(app, **kwargs)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.config.host, port)  # shutdown_timeout is the runner's (above)
        await site.start()
        host, bound = runner.addresses[0][:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._jobs is not None:
            self._jobs.shutdown()
        self._running = None
        if self._own_data_dir is not None:
            self._own_data_dir.cleanup()
            self._own_data_dir = None

    async def idle(self, timeout: float | None = 60.0) -> None:
        """Wait until no report file is being generated (async mode)."""
        if self._jobs is not None:
            await self._jobs.wait_idle(timeout)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until no report file is being generated (from another thread)."""
        if self._loop is None or self._jobs is None:
            return
        asyncio.run_coroutine_threadsafe(self.idle(timeout), self._loop).result(timeout + 1)

    @contextmanager
    def run_in_thread(self, timeout: float = 30.0) -> Iterator[RunningSimulator]:
        """Serve from a background thread with its own event loop, for sync callers."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                _cancel_leftover_tasks(loop)
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        thread = threading.Thread(target=serve, name="canvas-simulator", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the simulator did not start in time")
        if failure:
            raise failure[0]
        try:
            yield self.running
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks a stop left behind (a handler still in a ``slow`` fault's sleep after its
    client hung up), as ``asyncio.run`` does: a closed loop's pending tasks are otherwise logged
    as "Task was destroyed but it is pending!" whenever the garbage collector reaches them."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
