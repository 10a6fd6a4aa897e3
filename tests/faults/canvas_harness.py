"""Shared by tests/faults, tests/bad_inputs and tests/secrets: run the provider's real tasks.

Nothing of the provider is mocked. Tasks run against the Canvas simulator (or, for answers the
simulator cannot give, a tiny aiohttp "Canvas" started here) over real HTTP, through
``AIRFLOW_CONN_*`` connections:

- ``start_simulator(**config)``: a fresh simulator in a background thread; the connection
  ``canvas_default`` points at it.
- ``run_task(task, context)``: ``execute``; if the task defers, the trigger is rebuilt from its
  serialised kwargs (JSON round trip), run to its first event on a fresh event loop, and the
  task resumed with that event: the path the triggerer takes, without dag.test's overhead.
- ``FakeCanvas``: a scriptable Canvas-shaped server (API host plus a separate files host).

DAG runs through dag.test() use ``run_dag`` of ``tests.fixtures.dag_runs``, shared with tests/e2e.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig
from tests.fixtures.simulator import RunningCanvas, connection_json

# A hang guard for a loaded two-core machine, not a speed claim.
HANG_GUARD = 60.0
REPORT = "provisioning_csv"
# Short report lifecycles: the fault matrix spends its time on faults, not on waiting.
FAST_SIMULATOR: dict[str, Any] = {"users": 30, "queue_seconds": 0.0, "run_seconds": 0.4}
SLOW = 2.0  # a slow answer's delay, past matrix_policy's read timeout


def matrix_policy(max_attempts: int = 3, **overrides: Any) -> RetryPolicy:
    """The fault matrix's small client budget: short backoff, a 1 s read timeout."""
    settings: dict[str, Any] = {
        "max_attempts": max_attempts,
        "base_delay": 0.05,
        "max_delay": 0.2,
        "max_elapsed": 20,
        "connect_timeout": 2,
        "read_timeout": 1.0,
        "pace_delay": 0.2,
    }
    return RetryPolicy(**{**settings, **overrides})


# -- simulator -----------------------------------------------------------------------------------


@dataclass
class Sim(RunningCanvas):
    @property
    def counters(self) -> Any:
        return self.sim.counters

    @property
    def starts(self) -> int:
        return sum(self.sim.counters.starts.values())

    def status(self, report_id: int) -> str:
        return self.sim.reports[report_id].status

    def running_reports(self) -> list[int]:
        """Reports Canvas is still working on (queued, running or compiling)."""
        return [rid for rid, state in self.sim.reports.items() if state.status not in TERMINAL]


TERMINAL = frozenset({"complete", "error", "aborted", "deleted"})


@contextmanager
def simulator(conn_id: str | None = "canvas_default", **config: Any) -> Iterator[Sim]:
    settings = {**FAST_SIMULATOR, **config}
    sim = CanvasSimulator(SimulatorConfig(**settings))
    with sim.run_in_thread() as running:
        previous = os.environ.get(env_name(conn_id)) if conn_id else None
        if conn_id:
            os.environ[env_name(conn_id)] = connection_json(running.url, running.token)
        try:
            yield Sim(sim, running)
        finally:
            if conn_id:
                if previous is None:
                    os.environ.pop(env_name(conn_id), None)
                else:
                    os.environ[env_name(conn_id)] = previous


def env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


# -- task contexts (outside a DAG run) -----------------------------------------------------------


class FakeTaskInstance:
    """What the tasks touch on Airflow's RuntimeTaskInstance when called outside a DAG run."""

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.dag_id = "fault_matrix"
        self.task_id = "task"
        self.run_id = "manual__fault_matrix"  # the same for every try, as Airflow's is
        self.map_index = -1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = json.loads(json.dumps(value))

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


class FakeDagRun:
    def __init__(self, start_date: datetime) -> None:
        self.start_date = start_date


class OutletEvents(dict):
    """context["outlet_events"]: alias -> accessor with .add(asset, extra=...).

    Keyed by the alias's name, as Airflow's accessors are: an ``AssetAlias`` is not hashable
    on every supported Airflow (3.1's is not).
    """

    def __getitem__(self, key: Any) -> Any:
        name = key.name
        if name not in self:
            super().__setitem__(name, _Accessor())
        return super().__getitem__(name)


@dataclass
class _Accessor:
    added: list[Any] = field(default_factory=list)

    def add(self, asset: Any, extra: Any = None) -> None:
        self.added.append((asset, extra))


def make_context(try_number: int = 1, run_started: datetime | None = None) -> dict[str, Any]:
    return {
        "ti": FakeTaskInstance(try_number),
        "dag_run": FakeDagRun(run_started or datetime.now(timezone.utc) - timedelta(minutes=1)),
        "outlet_events": OutletEvents(),
    }


# -- running a task the way Airflow does ---------------------------------------------------------


async def _first_event(trigger: Any) -> Any:
    from airflow_provider_canvas_reports.transport import aio

    try:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")
    finally:
        await aio.close_shared_sessions()


def rebuild_trigger(trigger: Any) -> Any:
    """The trigger as the triggerer builds it: from its classpath and JSON-round-tripped kwargs."""
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


@dataclass
class TaskRun:
    result: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0
    deferred: bool = False
    events: list[Any] = field(default_factory=list)

    @property
    def message(self) -> str:
        return str(self.error) if self.error is not None else ""


def run_task(
    task: Any, context: dict[str, Any] | None = None, *, on_defer: Callable[[], None] | None = None
) -> TaskRun:
    """execute(), then trigger and resume while it defers; never raises, records what happened.

    ``on_defer`` runs when the task defers, before the trigger starts (to aim a fault at the
    triggerer's polls rather than the worker's first check).
    """
    from airflow.providers.common.compat.sdk import TaskDeferred

    context = context if context is not None else make_context()
    run = TaskRun()
    started = time.monotonic()
    try:
        call: Callable[[], Any] = lambda: task.execute(context)  # noqa: E731
        while True:
            try:
                run.result = call()
                break
            except TaskDeferred as deferred:
                run.deferred = True
                if on_defer is not None:
                    on_defer()
                event = asyncio.run(_first_event(rebuild_trigger(deferred.trigger)))
                run.events.append(json.loads(json.dumps(event)))
                method = getattr(task, deferred.method_name)
                kwargs = dict(deferred.kwargs or {})
                call = lambda m=method, e=event, k=kwargs: m(context, event=e, **k)  # noqa: E731
    except Exception as exc:
        run.error = exc
    run.elapsed = time.monotonic() - started
    return run


def listing(folder: Path) -> dict[str, bytes]:
    """Everything under a folder, hidden files included (a leftover temp must show up)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def wait_finished(sim: Sim, report_id: int, within: float = 30.0) -> str:
    """Wait until the simulator says a report is over and its file (if any) is written."""
    until = time.monotonic() + within
    while sim.status(report_id) not in TERMINAL:
        assert time.monotonic() < until, f"report {report_id} never finished"
        time.sleep(0.05)
    sim.sim.wait_idle()
    return sim.status(report_id)


def start_report(report: str = REPORT, parameters: dict[str, Any] | None = None) -> int:
    """Start a report through the real hook (connection `canvas_default`); its id."""
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

    hook = CanvasHook()
    try:
        return hook.start_report(report, parameters or {"users": True}).id
    finally:
        hook.close()


def finished_report(sim: Sim, report: str = REPORT, parameters: dict[str, Any] | None = None) -> int:
    """Start a report through the real hook and wait until it is over; counters are reset after."""
    report_id = start_report(report, parameters)
    wait_finished(sim, report_id)
    sim.counters.reset()
    return report_id


# -- a tiny Canvas-shaped server for answers the simulator cannot give ----------------------------

Handler = Callable[[web.Request], Any]


@dataclass
class FakeCanvas:
    """Canvas API host plus a separate files host, each answer scriptable per endpoint.

    ``handlers`` maps an endpoint name (available, start, index, status, delete, abort,
    download, files) to an async function returning a web response. Every request is
    recorded as (endpoint, Authorization header or None).
    """

    url: str = ""
    files_url: str = ""
    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def count(self, endpoint: str) -> int:
        return sum(1 for name, _ in self.seen if name == endpoint)

    @property
    def files_auth_headers(self) -> int:
        return sum(1 for name, auth in self.seen if name == "files" and auth is not None)


def json_answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, headers={"content-type": "application/json", **(headers or {})}
    )


def canvas_report(
    report_id: int = 7,
    status: str = "complete",
    *,
    report: str = REPORT,
    size: int | None = None,
    filename: str = "provisioning.csv",
    content_type: str = "text/csv",
    file_url: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Report as Canvas sends it; complete ones carry an attachment and a file_url."""
    data: dict[str, Any] = {
        "id": report_id,
        "report": report,
        "status": status,
        "progress": 100 if status in TERMINAL else 0,
        "created_at": "2026-01-05T10:00:00-06:00",
        "started_at": None,
        "ended_at": None,
        "parameters": {"users": "true", "skip_message": "true", "extra_text": "Term: All Terms;"},
        "current_line": 0,
        "file_url": None,
    }
    if status == "complete":
        data["file_url"] = file_url or f"/accounts/1/files/{report_id}00/download"
        data["attachment"] = {
            "id": report_id * 100,
            "display_name": filename,
            "filename": filename,
            "content-type": content_type,
            "size": size,
            "url": data["file_url"],
        }
    data.update(extra)
    return data


AVAILABLE = [
    {
        "title": "Provisioning",
        "report": REPORT,
        "parameters": {
            "enrollment_term_id": {"required": False, "description": "term"},
            "users": {"required": False, "description": "users"},
            "courses": {"required": False, "description": "courses"},
        },
        "last_run": None,
    },
    {
        "title": "Multiple Grading Periods Grade Export",
        "report": "mgp_grade_export_csv",
        "parameters": {"enrollment_term_id": {"required": True, "description": "term"}},
        "last_run": None,
    },
]


@contextmanager
def fake_canvas(**handlers: Handler) -> Iterator[FakeCanvas]:
    """Serve a FakeCanvas from a background thread until the block ends."""
    state = FakeCanvas(handlers=dict(handlers))
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    ready = threading.Event()

    def endpoint(name: str) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            state.seen.append((name, request.headers.get("Authorization")))
            handler = state.handlers.get(name)
            if handler is None:
                return await _default(name, request, state)
            return await handler(request)

        return handle

    async def start() -> None:
        api = web.Application()
        base = "/api/v1/accounts/{account}/reports"
        api.router.add_get(base, endpoint("available"))
        api.router.add_post(base + "/{report}", endpoint("start"))
        api.router.add_get(base + "/{report}", endpoint("index"))
        api.router.add_get(base + "/{report}/{report_id}", endpoint("status"))
        api.router.add_delete(base + "/{report}/{report_id}", endpoint("delete"))
        api.router.add_put(base + "/{report}/{report_id}/abort", endpoint("abort"))
        api.router.add_get("/accounts/{account}/files/{attachment}/download", endpoint("download"))
        files = web.Application()
        files.router.add_get("/{tail:.*}", endpoint("files"))
        for app, attr in ((api, "url"), (files, "files_url")):
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            host, port = runner.addresses[0][:2]
            setattr(state, attr, f"http://{host}:{port}")

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        for runner in runners:
            loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="fake-canvas", daemon=True)
    thread.start()
    assert ready.wait(10), "the fake Canvas did not start"
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _default(name: str, request: web.Request, state: FakeCanvas) -> web.StreamResponse:
    """A minimal happy Canvas: what an endpoint answers unless a test says otherwise."""
    if name == "available":
        return json_answer(AVAILABLE)
    if name == "start":
        return json_answer(canvas_report(7, "created", report=request.match_info["report"]))
    if name == "index":
        return json_answer([])
    if name in ("status", "delete", "abort"):
        status = {"status": "complete", "delete": "deleted", "abort": "aborted"}[name]
        return json_answer(canvas_report(int(request.match_info["report_id"]), status, size=4))
    if name == "download":
        return web.Response(status=302, headers={"location": f"{state.files_url}/store/file?sig=abc"})
    return web.Response(body=b"a,b\n", headers={"content-type": "text/csv"})
