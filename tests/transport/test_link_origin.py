"""Pagination Link headers must not carry the token to another origin.

The simulator always links to itself, so these tests use two tiny servers: a Canvas-like API
whose Link header points elsewhere (a proxy that builds http:// links, a vanity domain, or a
hostile header), and a catcher that records any Authorization header it receives.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.transport.aio import AsyncTransport
from airflow_provider_canvas_reports.transport.settings import CanvasSettings
from airflow_provider_canvas_reports.transport.sync import SyncTransport

TOKEN = "tok-LINKLEAK-3c5e7a9b1d2f-do-not-send"
POLICY = RetryPolicy(max_attempts=2, max_elapsed=2.0, base_delay=0.01, connect_timeout=2.0, read_timeout=5.0)


def _report(report_id: int) -> dict[str, object]:
    return {"id": report_id, "report": "grade_export_csv", "status": "complete", "progress": 100}


@dataclass
class Servers:
    canvas_url: str = ""
    other_url: str = ""
    canvas_pages: list[str] = field(default_factory=list)
    other_auth: list[str | None] = field(default_factory=list)
    canvas_auth: list[str | None] = field(default_factory=list)
    link_target: str = "other"  # where page 1's Link points: "other" or "self"


@pytest.fixture
def servers() -> Iterator[Servers]:
    state = Servers()
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []

    async def canvas_index(request: web.Request) -> web.Response:
        page = request.query.get("page", "1")
        state.canvas_pages.append(page)
        state.canvas_auth.append(request.headers.get("Authorization"))
        headers = {"content-type": "application/json"}
        if page == "1":
            target = state.other_url if state.link_target == "other" else state.canvas_url
            headers["link"] = f'<{target}{request.path}?page=2&per_page=1>; rel="next"'
            body = [_report(2)]
        else:
            body = [_report(1)]
        return web.Response(text=json.dumps(body), headers=headers)

    async def other_index(request: web.Request) -> web.Response:
        state.other_auth.append(request.headers.get("Authorization"))
        return web.Response(text=json.dumps([_report(1)]), headers={"content-type": "application/json"})

    async def start() -> None:
        for handler, attr in ((canvas_index, "canvas_url"), (other_index, "other_url")):
            app = web.Application()
            app.router.add_get("/api/v1/accounts/{account}/reports/{report}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            host, port = runner.addresses[0][:2]
            setattr(state, attr, f"http://{host}:{port}")

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _settings(servers: Servers) -> CanvasSettings:
    return CanvasSettings(servers.canvas_url, TOKEN, POLICY)


def test_sync_next_page_on_another_origin_does_not_get_the_token(servers: Servers) -> None:
    transport = SyncTransport(_settings(servers))
    try:
        ids = [r.id for r in transport.pages(api.index("self", "grade_export_csv"))]
    finally:
        transport.close()

    assert ids == [2, 1]
    assert servers.other_auth == []  # the foreign origin was never called with (or without) the token
    assert servers.canvas_pages == ["1", "2"]  # page 2 was read from the Canvas host itself
    assert servers.canvas_auth == [f"Bearer {TOKEN}"] * 2


async def test_async_next_page_on_another_origin_does_not_get_the_token(servers: Servers) -> None:
    transport = AsyncTransport(_settings(servers))
    try:
        ids = [r.id async for r in transport.pages(api.index("self", "grade_export_csv"))]
    finally:
        await aio.close_shared_sessions()

    assert ids == [2, 1]
    assert servers.other_auth == []
    assert servers.canvas_pages == ["1", "2"]


def test_same_origin_links_are_followed_as_given(servers: Servers) -> None:
    servers.link_target = "self"
    transport = SyncTransport(_settings(servers))
    try:
        ids = [r.id for r in transport.pages(api.index("self", "grade_export_csv"))]
    finally:
        transport.close()

    assert ids == [2, 1]
    assert servers.canvas_pages == ["1", "2"]


@pytest.mark.parametrize(
    "link",
    [
        pytest.param(":8443/api/v1/accounts/self/reports/x?page=2", id="port-appended"),
        pytest.param(".evil.example/api/v1/accounts/self/reports/x?page=2", id="domain-appended"),
        pytest.param("//evil.example/api/v1/accounts/self/reports/x?page=2", id="scheme-relative"),
        pytest.param("@evil.example/api/v1/accounts/self/reports/x?page=2", id="userinfo-appended"),
        pytest.param("\\@evil.example/api/v1/accounts/self/reports/x?page=2", id="backslash"),
        pytest.param("https://evil.example/api/v1/accounts/self/reports/x?page=2", id="absolute"),
        pytest.param("?page=2", id="query-only"),
    ],
)
@pytest.mark.parametrize(
    "base", ["https://canvas.school.edu", "http://localhost", "https://canvas.school.edu/lms"]
)
def test_any_link_value_is_sent_to_the_canvas_origin(base: str, link: str) -> None:
    # Appended to a base with no port, ":8443/..." or ".evil.example/..." would name another port
    # or host. The host requests connects to is what urllib3 parses, so that is what is checked.
    from urllib3.util import parse_url

    url = CanvasSettings(base, TOKEN, POLICY).url(link)

    sent, canvas = parse_url(url), parse_url(base)
    assert (sent.scheme, sent.host, sent.port) == (canvas.scheme, canvas.host, canvas.port)
    assert sent.auth is None
    assert url.endswith("page=2")


def test_our_own_paths_keep_the_base_path() -> None:
    settings = CanvasSettings("https://canvas.school.edu/lms", TOKEN, POLICY)
    assert (
        settings.url("/api/v1/accounts/self/reports")
        == "https://canvas.school.edu/lms/api/v1/accounts/self/reports"
    )
