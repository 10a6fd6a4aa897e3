"""Both transports take the environment's proxy (HTTP_PROXY, NO_PROXY, ...) as requests reads it.

Behind an egress proxy the worker (requests) reached Canvas and the triggerer (aiohttp, which
ignores the environment by default) did not: every deferred wait failed. A real forward proxy
here relays to the simulator and records what passed through it.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator
from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.transport.proxies import EnvironmentProxies
from airflow_provider_canvas_reports.transport.settings import CanvasSettings
from airflow_provider_canvas_reports.transport.sync import SyncTransport
from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger
from tests.fixtures.simulator import connection_json, wait_until

POLICY = RetryPolicy(connect_timeout=2.0, read_timeout=5.0, max_elapsed=30.0)
REPORT = "provisioning_csv"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "transfer-encoding"}


@dataclass
class ForwardProxy:
    """An HTTP forward proxy: what it relayed, as (method, host:port, carried a token)."""

    port: int = 0
    relayed: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hosts(self) -> set[str]:
        return {host for _, host, _ in self.relayed}


def _serve(proxy: ForwardProxy) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def relay(self) -> None:
            target = urlsplit(self.path)  # absolute form: the client knows it talks to a proxy
            if target.scheme != "http" or not target.netloc:
                self.send_error(400, "not a proxy request")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            proxy.relayed.append((self.command, target.netloc, "Authorization" in self.headers))
            upstream = http.client.HTTPConnection(target.netloc, timeout=10)
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            upstream.close()

        do_GET = do_POST = do_PUT = do_DELETE = relay

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    """A proxy the environment names for every http:// URL, loopback included."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    relay = ForwardProxy()
    server = _serve(relay)
    monkeypatch.setenv("HTTP_PROXY", relay.url)
    yield relay
    server.shutdown()
    server.server_close()


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    with CanvasSimulator(users=12, run_seconds=0.0).run_in_thread() as running:
        yield running
    await aio.close_shared_sessions()


def start_complete(sim: RunningSimulator) -> Report:
    transport = SyncTransport(CanvasSettings(sim.url, sim.token, POLICY))
    try:
        started = transport.call(api.start("self", REPORT, {"users": True}))
        wait_until(sim.simulator, started.id, "complete")
        return transport.call(api.status("self", REPORT, started.id))
    finally:
        transport.close()


async def download(mode: str, sim: RunningSimulator, report: Report) -> bytes:
    settings = CanvasSettings(sim.url, sim.token, POLICY)
    if mode == "sync":
        transport = SyncTransport(settings)
        try:
            with transport.download(report) as got:
                return b"".join(got.chunks)
        finally:
            transport.close()
    async with aio.AsyncTransport(settings).download(report) as got_async:
        return b"".join([chunk async for chunk in got_async.chunks])


def host_of(url: str) -> str:
    return urlsplit(url).netloc


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_requests_and_every_hop_of_a_download_go_through_the_proxy(
    sim: RunningSimulator, proxy: ForwardProxy, mode: str
) -> None:
    report = start_complete(sim)
    proxy.relayed.clear()

    body = await download(mode, sim, report)

    assert body.startswith(b"canvas_user_id,user_id,")
    canvas, files, store = (host_of(url) for url in (sim.url, sim.files_url, sim.store_url))
    # The Canvas hop, the files host's signed redirect and the store: each through the proxy.
    assert proxy.hosts() == {canvas, files, store}
    # The token went through the proxy only on its way to the Canvas host.
    assert {host for _, host, token in proxy.relayed if token} == {canvas}


async def test_a_deferred_wait_reaches_canvas_through_the_proxy(
    sim: RunningSimulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CANVAS_DEFAULT", connection_json(sim.url, sim.token))
    report = start_complete(sim)
    proxy.relayed.clear()
    trigger = ReportStatusTrigger(
        canvas_conn_id="canvas_default", report=REPORT, report_id=report.id, poll_interval=0.1
    )
    events = trigger.run()
    event = await asyncio.wait_for(anext(events), 30)
    await events.aclose()

    assert event.payload["status"] == "success"
    assert ("GET", host_of(sim.url), True) in proxy.relayed


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.0/8", "*"])
async def test_no_proxy_sends_requests_straight_to_canvas(
    sim: RunningSimulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, mode: str, no_proxy: str
) -> None:
    monkeypatch.setenv("NO_PROXY", no_proxy)
    report = start_complete(sim)

    assert (await download(mode, sim, report)).startswith(b"canvas_user_id,user_id,")
    assert proxy.relayed == []


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://egress:3128"}, "https://canvas.example.edu/api/v1", "http://egress:3128"),
        ({"HTTPS_PROXY": "http://egress:3128"}, "http://canvas.example.edu/api/v1", None),
        ({"ALL_PROXY": "egress.corp:3128"}, "https://canvas.example.edu/", "http://egress.corp:3128"),
        (
            {"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": ".example.edu"},
            "https://canvas.example.edu/",
            None,
        ),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3/", None),
        ({"https_proxy": "http://u:p@egress:3128"}, "https://canvas.example.edu/", "http://u:p@egress:3128"),
        ({}, "https://canvas.example.edu/", None),
    ],
    ids=[
        "https",
        "other-scheme",
        "all-and-no-scheme",
        "no-proxy-suffix",
        "no-proxy-cidr",
        "lowercase",
        "none",
    ],
)
def test_the_proxy_is_the_one_requests_would_use(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str, expected: str | None
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert EnvironmentProxies().for_url(url) == expected


def test_the_environment_is_read_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    proxies = EnvironmentProxies()
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    first = proxies.for_url("https://canvas.example.edu/api/v1/accounts/self/reports")
    monkeypatch.setenv("HTTPS_PROXY", "http://other:3128")
    # A poll does not re-read the environment: the same origin keeps its proxy.
    assert proxies.for_url("https://canvas.example.edu/api/v1/accounts/self/reports/x/1") == first
    assert proxies.for_url("https://files.example.edu/1") == "http://other:3128"
