"""Peers that try to get the token, a cookie or a signed URL out of a transport.

The simulator is an honest Canvas, so these tests run tiny servers that are not: a files host
whose redirect two URL parsers read differently, a page that echoes the request's headers, a
Canvas that sets a session cookie, a store with a malformed header. A catcher records every
request it gets; the transports must send it nothing (or nothing secret).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.errors import CanvasError, DownloadError
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.transport.aio import AsyncTransport
from airflow_provider_canvas_reports.transport.settings import CanvasSettings
from airflow_provider_canvas_reports.transport.sync import SyncTransport
from tests.fixtures import transports
from tests.fixtures.http_servers import QuietHandler, start
from tests.fixtures.transports import one_call, read

TOKEN = "tok-HOSTILE-8e1f0a2b4c6d-do-not-send"
SIGNATURE = "X-Amz-Signature=SIGNED-9d8c7b6a"
CSV = b"canvas_user_id,user_id\n1,u1\n"
POLICY = RetryPolicy(max_attempts=2, max_elapsed=3.0, base_delay=0.01, connect_timeout=2.0, read_timeout=5.0)

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Peer:
    """One server: its routes by path, and every request it received (path, headers)."""

    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"


def _serve(peer: Peer) -> ThreadingHTTPServer:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            peer.seen.append((self.path, dict(self.headers)))
            route = peer.routes.get(self.path.split("?")[0])
            if route is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            route(self)

        do_POST = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.port = server.server_address[1]
    return start(server)


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer, Peer]]:
    """Canvas, the files host and a catcher."""
    trio = (Peer(), Peer(), Peer())
    servers = [_serve(peer) for peer in trio]
    yield trio
    for server in servers:
        server.shutdown()
        server.server_close()


def redirect(location: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def answer(body: bytes, content_type: str, *extra: tuple[str, str]) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        for name, value in extra:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return route


def echo_headers(handler: BaseHTTPRequestHandler) -> None:
    """A debug page (a misconfigured proxy, say) that shows the request's headers."""
    lines = "".join(f"<li>{name}: {value}</li>" for name, value in handler.headers.items())
    answer(f"<html><body><h1>Request headers</h1><ul>{lines}</ul></body></html>".encode(), "text/html")(
        handler
    )


def malformed_header(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nthis line has no colon\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(CSV), CSV)
    )


def report(file_url: str) -> Report:
    attachment = {"id": 7, "filename": "users.csv", "content-type": "text/csv", "size": len(CSV)}
    return Report.from_json(
        {
            "id": 1,
            "report": "provisioning_csv",
            "status": "complete",
            "file_url": file_url,
            "attachment": attachment,
        }
    )


def sync_download(base: str, file_url: str) -> bytes:
    return transports.sync_download(CanvasSettings(base, TOKEN, POLICY), report(file_url))


async def download(mode: str, base: str, file_url: str) -> bytes:
    return await transports.download(mode, CanvasSettings(base, TOKEN, POLICY), report(file_url))


# -- a redirect that two URL parsers read differently -----------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_backslash_redirect_cannot_send_the_token_to_another_host(
    peers: tuple[Peer, Peer, Peer], mode: str
) -> None:
    canvas, files, catcher = peers
    base = canvas.url("localhost")
    canvas.routes["/files/1/download"] = redirect(f"{files.url()}/ticket")
    # urlsplit reads host localhost:<canvas port> here (the token's origin); urllib3 and browsers
    # end the host at the backslash and connect to the catcher.
    files.routes["/ticket"] = redirect(f"{catcher.url()}\\@localhost:{canvas.port}/steal")
    catcher.routes["/steal"] = answer(CSV, "text/csv")

    with pytest.raises(DownloadError, match="backslash"):
        await download(mode, base, f"{base}/files/1/download")

    assert catcher.seen == []
    assert [path for path, _ in canvas.seen] == ["/files/1/download"]  # not retried: a refusal


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("{catcher}/steal?x=1 2", id="space"),
        pytest.param("http://user:pw@127.0.0.1:{port}/steal", id="userinfo"),
    ],
)
def test_redirects_with_spaces_or_credentials_are_refused(
    peers: tuple[Peer, Peer, Peer], location: str
) -> None:
    canvas, files, catcher = peers
    canvas.routes["/files/1/download"] = redirect(f"{files.url()}/ticket")
    files.routes["/ticket"] = redirect(location.format(catcher=catcher.url(), port=catcher.port))
    catcher.routes["/steal"] = answer(CSV, "text/csv")

    with pytest.raises(DownloadError, match="refusing to follow it"):
        sync_download(canvas.url(), f"{canvas.url()}/files/1/download")

    assert catcher.seen == []


# -- a 2xx page that is not JSON, echoing the request ----------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_page_echoing_the_request_headers_does_not_put_the_token_in_the_error(
    peers: tuple[Peer, Peer, Peer], mode: str
) -> None:
    canvas, _, _ = peers
    canvas.routes["/api/v1/accounts/self/reports/provisioning_csv/1"] = echo_headers
    canvas.routes["/api/v1/accounts/self/reports/provisioning_csv"] = echo_headers
    settings = CanvasSettings(canvas.url(), TOKEN, POLICY)
    errors: list[CanvasError] = []
    for call in (
        api.status("self", "provisioning_csv", 1),
        api.start("self", "provisioning_csv", {"users": True}),
    ):
        with pytest.raises(CanvasError, match="instead of JSON") as info:
            await one_call(mode, settings, call)
        errors.append(info.value)

    assert any(TOKEN in json.dumps(headers) for _, headers in canvas.seen)  # the page did echo it
    for error in errors:
        assert "Bearer ***" in str(error)
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_malformed_proxy_url_is_not_taken_for_a_redirect(
    peers: tuple[Peer, Peer, Peer], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # requests reads a Location even when not following it, and fails on a bad one: only that is
    # "Canvas redirected". A bad proxy URL in the worker's (or triggerer's) environment is a
    # connection failure, and its credentials are never shown.
    canvas, _, _ = peers
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://svc:pa#ss@proxy.corp:3128")
    settings = CanvasSettings(canvas.url(), TOKEN, POLICY)
    with pytest.raises(CanvasError, match="the connection to Canvas was reset") as info:
        await one_call(mode, settings, api.status("self", "provisioning_csv", 1))
    assert "redirected" not in str(info.value)
    assert "pa#ss" not in str(info.value)
    assert canvas.seen == []


# -- a session cookie from Canvas ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_cookie_canvas_sets_does_not_follow_the_download_to_another_port(
    peers: tuple[Peer, Peer, Peer], mode: str
) -> None:
    canvas, files, _ = peers
    base = canvas.url("localhost")
    cookie = ("Set-Cookie", "_normandy_session=CANVAS-SESSION-COOKIE; path=/")
    canvas.routes["/api/v1/accounts/self/reports/provisioning_csv/1"] = answer(
        json.dumps({"id": 1, "report": "provisioning_csv", "status": "complete"}).encode(),
        "application/json",
        cookie,
    )
    canvas.routes["/files/1/download"] = redirect(f"{files.url('localhost')}/ticket")
    files.routes["/ticket"] = answer(CSV, "text/csv", cookie)
    call = api.status("self", "provisioning_csv", 1)

    if mode == "sync":
        transport = SyncTransport(CanvasSettings(base, TOKEN, POLICY))
        try:
            transport.call(call)
            with transport.download(report(f"{base}/files/1/download")) as download:
                assert read(download.body) == CSV
            transport.call(call)
        finally:
            transport.close()
    else:
        try:
            transport_async = AsyncTransport(CanvasSettings(base, TOKEN, POLICY))
            await transport_async.call(call)
            async with transport_async.download(report(f"{base}/files/1/download")) as download_async:
                assert b"".join([chunk async for chunk in download_async.chunks]) == CSV
            await transport_async.call(call)
        finally:
            await aio.close_shared_sessions()

    assert len(files.seen) == 1
    assert len(canvas.seen) == 3
    assert all("Cookie" not in headers for _, headers in canvas.seen + files.seen)


# -- a store whose answer urllib3 warns about ---------------------------------------------------


def test_a_malformed_store_header_is_logged_without_the_signed_query(
    peers: tuple[Peer, Peer, Peer], caplog: pytest.LogCaptureFixture
) -> None:
    canvas, files, store = peers
    canvas.routes["/files/1/download"] = redirect(f"{files.url()}/ticket")
    files.routes["/ticket"] = redirect(f"{store.url()}/bucket/users.csv?{SIGNATURE}")
    store.routes["/bucket/users.csv"] = malformed_header

    with caplog.at_level(logging.DEBUG):
        assert sync_download(canvas.url(), f"{canvas.url()}/files/1/download") == CSV

    warnings = [r for r in caplog.records if r.name.startswith("urllib3") and r.levelno >= logging.WARNING]
    assert warnings, "urllib3 did not warn about the header: the test no longer covers that line"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert SIGNATURE not in logged
    assert "/bucket/" not in logged


# -- a body that never ends ------------------------------------------------------------------------

GIVE_UP_AFTER = 1 << 30  # the peer's own guard: without the transports' bound, 1 GiB per answer


def endless(status: int, sent: list[int]) -> Route:
    """An answer whose body goes on until the client hangs up (a broken proxy streaming its page;
    no Content-Length, HTTP/1.0: only the end of the connection would end it). `sent` gets the
    bytes written to each client before it hung up."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html" if status >= 400 else "application/json")
        handler.end_headers()
        piece = b"[" + b"1," * 32767 if status < 400 else b"<p>" + b"x" * 65533
        total = 0
        try:
            while total < GIVE_UP_AFTER:
                handler.wfile.write(piece)
                total += len(piece)
                piece = b"1," * 32768 if status < 400 else piece
        except OSError:  # the client hung up: what it did not read is the point
            pass
        sent.append(total)

    return route


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("status", "read_at_most", "error"),
    [
        (
            502,
            64 * 1024,
            r"Canvas answered HTTP 502 to read the report status .* beyond the retry budget: x+\.\.\.",
        ),
        (
            200,
            32 * 1024 * 1024,
            r"Canvas's answer to read the report status .* went on past 32 MiB, where it was cut",
        ),
    ],
)
async def test_a_body_that_never_ends_is_read_only_up_to_its_bound(
    peers: tuple[Peer, Peer, Peer], mode: str, status: int, read_at_most: int, error: str
) -> None:
    """An error page is read up to 64 KiB, an API answer up to 32 MiB; then the connection is
    dropped and the answer judged on what came (a proxy's endless page cannot hold a task or its
    memory)."""
    canvas, _, _ = peers
    sent: list[int] = []
    canvas.routes["/api/v1/accounts/self/reports/provisioning_csv/1"] = endless(status, sent)
    with pytest.raises(CanvasError, match=error):
        await one_call(
            mode, CanvasSettings(canvas.url(), TOKEN, POLICY), api.status("self", "provisioning_csv", 1)
        )
    assert canvas.seen, "the peer was not asked"
    # Each answer's count is recorded once the peer notices the hang-up, which may come after the
    # client has moved on.
    until = time.monotonic() + 10
    while len(sent) < len(canvas.seen):
        assert time.monotonic() < until, "the peer never noticed the client hang up"
        await asyncio.sleep(0.05)
    # What the kernel buffers between the two (a few MiB on loopback) comes on top of the bound.
    assert max(sent) < read_at_most + 16 * 1024 * 1024
