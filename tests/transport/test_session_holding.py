"""Shared aiohttp sessions live while a trigger holds them, and close with the last holder."""

from __future__ import annotations

import asyncio

from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.transport.settings import CanvasSettings

SETTINGS = CanvasSettings("http://127.0.0.1:9", "tok-holding")


async def test_last_holder_closes_the_loop_sessions():
    transport = aio.AsyncTransport(SETTINGS)
    async with aio.hold_shared_sessions():
        async with aio.hold_shared_sessions():
            session = transport._shared().session
        # One trigger finished, another still waits: the session stays open for it.
        assert not session.closed
        assert transport._shared().session is session
    assert session.closed
    assert asyncio.get_running_loop() not in aio._SHARED


async def test_session_is_closed_when_the_holder_is_cancelled():
    transport = aio.AsyncTransport(SETTINGS)
    opened = asyncio.Event()
    sessions = []

    async def waiting_trigger():
        async with aio.hold_shared_sessions():
            sessions.append(transport._shared().session)
            opened.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(waiting_trigger())
    await opened.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sessions[0].closed


def test_a_short_lived_loop_leaves_no_open_session():
    """dag.test() runs each trigger in its own asyncio.run(): nothing may outlive the loop."""
    sessions = []

    async def trigger_like():
        async with aio.hold_shared_sessions():
            sessions.append(aio.AsyncTransport(SETTINGS)._shared().session)
            yield "event"

    async def first_event():
        gen = trigger_like()
        return await gen.__anext__()  # as dag.test() does: the generator is left open

    assert asyncio.run(first_event()) == "event"
    assert sessions[0].closed


async def test_each_transport_keeps_its_own_timeouts_on_the_shared_session():
    """Waits on one (host, token) share a session; each request still has its task's read timeout."""
    from aiohttp import web

    from airflow_provider_canvas_reports.canvas.errors import RequestContext
    from airflow_provider_canvas_reports.canvas.exchange import ApiRequest, Failed, Received
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    patient = aio.AsyncTransport(
        CanvasSettings(f"http://127.0.0.1:{port}", "tok-t", RetryPolicy(read_timeout=5))
    )
    hasty = aio.AsyncTransport(
        CanvasSettings(f"http://127.0.0.1:{port}", "tok-t", RetryPolicy(read_timeout=0.2))
    )
    request = ApiRequest("GET", "/slow", RequestContext("read", "self"))
    try:
        async with aio.hold_shared_sessions():
            assert isinstance(await patient._send(request), Received)  # opened the shared session
            assert hasty._shared().session is patient._shared().session
            # The server answers after 1 s: within the session's 5 s, past this transport's 0.2 s.
            assert isinstance(await hasty._send(request), Failed)
    finally:
        await runner.cleanup()
