"""CanvasHook over real HTTP against the Canvas simulator, sync and async.

Every test that takes `client` runs twice: once through the sync hook methods (the requests
transport, run in a worker thread so the test body is the same) and once through the async
`a*` methods (the aiohttp transport, on the test's event loop). Nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_canvas_reports.canvas.polling import PreviousRun
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.simulator import (
    CanvasSimulator,
    Fault,
    RunningSimulator,
    SimulatorConfig,
    TokenSpec,
)

# Distinctive, so a leak anywhere (message, repr, log) is unmistakable.
TOKEN = "tok-LEAKCHECK-7f3a9c1e5b2d-do-not-print"
NO_PERMISSION_TOKEN = "tok-NOPERM-4d8e2a6c0f1b-do-not-print"
NO_SCOPE_TOKEN = "tok-NOSCOPE-9b1c3e5a7d2f-do-not-print"
BAD_TOKEN = "tok-BOGUS-0e2f4a6c8b1d-do-not-print"
ALL_TOKENS = (TOKEN, NO_PERMISSION_TOKEN, NO_SCOPE_TOKEN, BAD_TOKEN)

CONN_ID = "canvas_hooks_test"

# Small and quick: retries in hundredths of a second, the whole budget in about 2 s.
FAST = RetryPolicy(
    max_attempts=8,
    max_elapsed=2.0,
    base_delay=0.01,
    max_delay=0.05,
    max_retry_after=0.05,
    connect_timeout=2.0,
    read_timeout=5.0,
    pace_delay=0.01,
)

# Reports run for a long simulated time; tests move the simulator's clock instead of sleeping.
RUN_SECONDS = 30.0


@dataclass
class Canvas:
    """A running simulator plus the Airflow connection that points at it."""

    sim: CanvasSimulator
    running: RunningSimulator
    monkeypatch: pytest.MonkeyPatch
    conn_id: str = CONN_ID
    hooks: list[CanvasHook] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def counters(self) -> Any:
        return self.sim.counters

    def connect(
        self,
        *,
        token: str | None = TOKEN,
        host: str | None = None,
        extra: dict[str, Any] | str | None = None,
        conn_id: str | None = None,
    ) -> str:
        """(Re)define the connection as an AIRFLOW_CONN_ env var; returns its id.

        A dict `extra` is merged over account_id "self"; a string is the extra's text, as is.
        """
        conn_id = conn_id or self.conn_id
        spec: dict[str, Any] = {
            "conn_type": "canvas",
            "host": host or self.url,
            "extra": extra if isinstance(extra, str) else {"account_id": "self", **(extra or {})},
        }
        if token is not None:
            spec["password"] = token
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(spec))
        return conn_id

    def hook(self, *, token: str | None = TOKEN, policy: RetryPolicy = FAST, **connect: Any) -> CanvasHook:
        # Each hook gets its own connection, so hooks with different tokens can coexist.
        conn_id = self.connect(token=token, conn_id=f"{self.conn_id}_{len(self.hooks)}", **connect)
        hook = CanvasHook(canvas_conn_id=conn_id, retry_policy=policy)
        self.hooks.append(hook)
        return hook

    def close_hooks(self) -> None:
        for hook in self.hooks:
            hook.close()

    def fault(self, endpoint: str, kind: str, times: int | None = 1, **kwargs: Any) -> Fault:
        return self.sim.faults.add(Fault(endpoint=endpoint, kind=kind, times=times, **kwargs))

    def finish(self, seconds: float = RUN_SECONDS + 1) -> None:
        """Let every started report finish: files built, then the clock moved past the run."""
        self.sim.wait_idle(30)
        self.sim.advance(seconds)

    def file_bytes(self, report_id: int) -> bytes:
        attachment = self.sim.reports[report_id].attachment
        assert attachment is not None, f"the simulator has no file for report {report_id}"
        return attachment.file.path.read_bytes()

    def stored_parameters(self, report_id: int) -> dict[str, Any]:
        return dict(self.sim.reports[report_id].parameters)


def sim_config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "users": 12,
        "queue_seconds": 0.0,
        "run_seconds": RUN_SECONDS,
        "throttle": None,
        "generation_workers": 1,
        "tokens": {
            TOKEN: TokenSpec(),
            NO_PERMISSION_TOKEN: TokenSpec(permissions=False),
            NO_SCOPE_TOKEN: TokenSpec(scopes_ok=False),
        },
    }
    values.update(overrides)
    return SimulatorConfig(**values)


# --- one test body for both transports ---------------------------------------------------


class SyncClient:
    """The sync hook methods, run in a worker thread so tests can `await` them."""

    mode = "sync"

    def __init__(self, hook: CanvasHook) -> None:
        self.hook = hook

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def list_available_reports(self, **kw: Any) -> Any:
        return await self._run(self.hook.list_available_reports, **kw)

    async def start_report(self, *args: Any, **kw: Any) -> Report:
        return await self._run(self.hook.start_report, *args, **kw)

    async def list_reports(self, report: str, **kw: Any) -> list[Report]:
        return await self._run(lambda: list(self.hook.list_reports(report, **kw)))

    async def get_report(self, *args: Any, **kw: Any) -> Report:
        return await self._run(self.hook.get_report, *args, **kw)

    async def previous_run(self, *args: Any, **kw: Any) -> PreviousRun | None:
        return await self._run(self.hook.previous_run, *args, **kw)

    async def delete_report(self, *args: Any, **kw: Any) -> Report:
        return await self._run(self.hook.delete_report, *args, **kw)

    async def abort_report(self, *args: Any, **kw: Any) -> Report:
        return await self._run(self.hook.abort_report, *args, **kw)

    async def cancel_report(self, *args: Any, **kw: Any) -> Report | None:
        return await self._run(self.hook.cancel_report, *args, **kw)

    async def download(self, report: Report) -> bytes:
        def read() -> bytes:
            # As the operator reads it: into reusable buffers when the body needs no decoding.
            with self.hook.open_report_file(report) as download:
                if download.reader is None:
                    return b"".join(download.chunks)
                buffer, parts = memoryview(bytearray(256 * 1024)), []
                while n := download.reader.readinto(buffer):
                    parts.append(bytes(buffer[:n]))
                return b"".join(parts)

        return await self._run(read)


class AsyncClient:
    """The async `a*` hook methods, on the test's event loop."""

    mode = "async"

    def __init__(self, hook: CanvasHook) -> None:
        self.hook = hook

    async def list_available_reports(self, **kw: Any) -> Any:
        return await self.hook.alist_available_reports(**kw)

    async def start_report(self, *args: Any, **kw: Any) -> Report:
        return await self.hook.astart_report(*args, **kw)

    async def list_reports(self, report: str, **kw: Any) -> list[Report]:
        return [item async for item in self.hook.alist_reports(report, **kw)]

    async def get_report(self, *args: Any, **kw: Any) -> Report:
        return await self.hook.aget_report(*args, **kw)

    async def previous_run(self, *args: Any, **kw: Any) -> PreviousRun | None:
        return await self.hook.aprevious_run(*args, **kw)

    async def delete_report(self, *args: Any, **kw: Any) -> Report:
        return await self.hook.adelete_report(*args, **kw)

    async def abort_report(self, *args: Any, **kw: Any) -> Report:
        return await self.hook.aabort_report(*args, **kw)

    async def cancel_report(self, *args: Any, **kw: Any) -> Report | None:
        return await self.hook.acancel_report(*args, **kw)

    async def download(self, report: Report) -> bytes:
        async with await self.hook.aopen_report_file(report) as download:
            return b"".join([chunk async for chunk in download.chunks])


Client = SyncClient | AsyncClient
MakeClient = Callable[[CanvasHook], Client]


# --- helpers --------------------------------------------------------------------------


def loopback_alias() -> tuple[str, str] | None:
    """A host name that is not literally loopback (so http:// is refused) and the address it
    resolves to, which a simulator can bind. None if the machine has no such name."""
    name = socket.gethostname()
    if not name or name.lower() == "localhost":
        return None
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return None
    return name, address


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.started
