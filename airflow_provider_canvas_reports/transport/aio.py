"""The asynchronous transport (aiohttp), used by the trigger in the triggerer's event loop.

One ClientSession per event loop and (host, token) is shared by every trigger and hook in
that loop, so thousands of waiting reports share a handful of connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.api import Call
from airflow_provider_canvas_reports.canvas.download import (
    ChunkChecker,
    Opened,
    OpenHop,
    Ready,
    open_chain,
    probe_size,
)
from airflow_provider_canvas_reports.canvas.errors import CanvasError
from airflow_provider_canvas_reports.canvas.exchange import (
    ApiRequest,
    ApiResponse,
    Failed,
    Pacer,
    Received,
    Sleep,
    api_call,
    body_limit,
)
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import Failure
from airflow_provider_canvas_reports.transport.environment import (
    EnvironmentProxies,
    UnusableCertificates,
    certificate_refusal,
    trusted_for,
)
from airflow_provider_canvas_reports.transport.settings import (
    CHUNK_SIZE,
    USER_AGENT,
    CanvasSettings,
    log_sleep,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# Requests in flight to the Canvas host per (loop, host, token): the token's slots, and the
# connections kept per host. Canvas charges each request 50 units up front against a 700-unit
# bucket: more than 14 at once overflow it by themselves (429s). 8 leaves room for the token's
# other users (workers starting reports): with 12, the triggers' first polls alone refilled the
# bucket while refused starts came back (BENCHMARKS.md, goal 5).
CONNECTIONS_PER_HOST = 8


@dataclass
class _Shared:
    session: aiohttp.ClientSession
    pacer: Pacer
    # A request to the Canvas host waits for a slot here, not in aiohttp's pool, and takes its
    # pace once it holds one (`_pace`): answers that came in while it queued count.
    slots: asyncio.Semaphore
    # Of every API request, built once rather than per request; it holds the token, so no repr.
    headers: dict[str, str] = field(repr=False)
    # HTTP(S)_PROXY / NO_PROXY, as the worker's requests reads them (may hold credentials).
    proxies: EnvironmentProxies = field(default_factory=EnvironmentProxies, repr=False)
    # The certificates requests trusts, loaded at the session's first https request (`trust`).
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    def trust(self, url: str) -> ssl.SSLContext | bool:
        """The TLS context for a request to `url` (True, aiohttp's default, for plain http). Kept for
        the session: looking at the bundle on disk per request would cost a poll a few microseconds;
        a new session (a CA rotated meanwhile) looks again. UnusableCertificates when it cannot be
        loaded, until it can."""
        if self.tls is None:
            self.tls = trusted_for(url)
        return self.tls or True


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], _Shared]] = (
    weakref.WeakKeyDictionary()
)


def failed(exc: BaseException) -> Failed:
    if (refused := certificate_refusal(exc)) is not None:
        return Failed(Failure.CERTIFICATE, refused)
    # A connect timeout or a refused connection never reached Canvas: even a start may be repeated.
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return Failed(Failure.CONNECT)
    if isinstance(exc, asyncio.TimeoutError):
        return Failed(Failure.TIMEOUT)
    return Failed(Failure.RESET)


async def drive(gen: Generator[Any, Any, R], step: Callable[[Any], Any]) -> R:
    """Run a sans-IO conversation on the event loop: never blocks it."""
    outcome: Any = None
    try:
        action = next(gen)
        while True:
            if isinstance(action, Sleep):
                log_sleep(log, action)
                await asyncio.sleep(action.seconds)
                outcome = None
            else:
                outcome = await step(action)
            action = gen.send(outcome)
    except StopIteration as stop:
        return stop.value


async def _pace(pacer: Pacer, pause: Sleep) -> None:
    """Wait, holding a slot, until the token's pacer lets the request go.

    The other slots' answers may push the pace further while this one sleeps.
    """
    while True:
        log_sleep(log, pause)
        await asyncio.sleep(pause.seconds)
        if (again := pacer.pause()) is None:
            return
        pause = again


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, up to `limit` bytes.

    `StreamReader.read(n)` returns what has arrived so far (at most n), not n bytes: one call
    cuts a body that comes in several pieces. Reading on to EOF also makes aiohttp raise
    ClientPayloadError when the connection closes before Content-Length is reached.
    """
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


_HOLDERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def hold_shared_sessions() -> AsyncIterator[None]:
    """Keep this loop's shared sessions open while the block runs; the last holder closes them.

    Triggers hold them while they wait: a triggerer's long-lived loop keeps one session while
    any trigger waits, and a short-lived loop (``dag.test()`` runs each trigger in its own)
    closes its session before the loop ends instead of leaking it.
    """
    loop = asyncio.get_running_loop()
    _HOLDERS[loop] = _HOLDERS.get(loop, 0) + 1
    try:
        yield
    finally:
        _HOLDERS[loop] -= 1
        if _HOLDERS[loop] == 0:
            del _HOLDERS[loop]
            await close_shared_sessions()


async def close_shared_sessions() -> None:
    """Close this loop's shared sessions (tests and short-lived loops call it before the loop ends)."""
    loop = asyncio.get_running_loop()
    for shared in _SHARED.pop(loop, {}).values():
        await shared.session.close()


class AsyncTransport:
    def __init__(self, settings: CanvasSettings) -> None:
        self.settings = settings
        self._secrets = (settings.token,)
        self._key = settings.session_key  # a SHA-256 of the token: once, not twice per request
        # Per request: the session is shared by every wait on this (host, token), and each keeps
        # the timeouts of its own task's retry policy, not those of whichever opened the session.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.policy.connect_timeout, sock_read=settings.policy.read_timeout
        )

    def _shared(self) -> _Shared:
        loop = asyncio.get_running_loop()
        per_loop = _SHARED.setdefault(loop, {})
        shared = per_loop.get(self._key)
        if shared is None or shared.session.closed:
            shared = _Shared(
                aiohttp.ClientSession(
                    # The proxy and the trusted certificates (per request, below) are the ones
                    # the worker's requests takes from the environment.
                    connector=aiohttp.TCPConnector(limit_per_host=CONNECTIONS_PER_HOST),
                    timeout=self._timeout,
                    headers={"User-Agent": USER_AGENT},
                    # Canvas's cookies must not follow a download to a files host or store on the
                    # same host name; the token needs none.
                    cookie_jar=aiohttp.DummyCookieJar(),
                ),
                Pacer(),
                asyncio.Semaphore(CONNECTIONS_PER_HOST),
                {**self.settings.auth_headers, "Accept": "application/json"},
            )
            per_loop[self._key] = shared
        return shared

    async def _send(self, request: ApiRequest) -> Received | Failed:
        shared = self._shared()
        url = self.settings.url(request.path)
        try:
            trust = shared.trust(url)
        except UnusableCertificates as exc:
            return failed(exc)
        async with shared.slots:
            if (pause := shared.pacer.pause()) is not None:
                await _pace(shared.pacer, pause)
            try:
                async with shared.session.request(
                    request.method,
                    url,
                    params=list(request.query) if request.query else None,
                    data=list(request.form) if request.form else None,
                    headers=shared.headers,
                    allow_redirects=False,
                    timeout=self._timeout,
                    proxy=shared.proxies.for_url(url),
                    ssl=trust,
                ) as resp:
                    limit = body_limit(resp.status)
                    body = await _read_bounded(resp.content, limit)
                    return Received(resp.status, resp.headers, body)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return failed(exc)

    async def execute(self, request: ApiRequest) -> ApiResponse:
        gen = api_call(
            request,
            self.settings.policy,
            pacer=self._shared().pacer,
            secrets=self._secrets,
            base_url=self.settings.base_url,
        )
        return await drive(gen, lambda send: self._send(send.request))

    async def call(self, call: Call[T]) -> T:
        return call.parse(await self.execute(call.request))

    async def run_plan(self, plan: api.CallPlan[T]) -> T:
        """Async twin of `SyncTransport.run_plan`."""
        try:
            call = next(plan)
            while True:
                try:
                    result = await self.call(call)
                except CanvasError as exc:
                    call = plan.throw(exc)
                else:
                    call = plan.send(result)
        except StopIteration as stop:
            return stop.value

    async def pages(self, call: Call[list[T]]) -> AsyncIterator[T]:
        pager = api.Pager(call)
        while (current := pager.current) is not None:
            response = await self.execute(current.request)
            for item in current.parse(response):
                yield item
            pager.advance(response)

    @asynccontextmanager
    async def download(self, report: Report, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[AsyncDownload]:
        """Open the report's file through Canvas's redirect chain and stream it."""
        shared = self._shared()
        hop = _CurrentHop()

        async def open_hop(step: OpenHop) -> Opened | Failed:
            hop.release()
            try:
                trust = shared.trust(step.hop.url)
            except UnusableCertificates as exc:
                return failed(exc)
            headers = {"Accept-Encoding": "identity"}
            if step.hop.send_auth:
                # Only a hop to the Canvas host carries the token: it takes one of the token's slots,
                # as an API request does, and holds it until it is released (a file Canvas serves
                # itself holds it while it streams). open_chain paced it; the pace is looked at
                # again once the slot is held, as in _send, for what others learnt meanwhile.
                await shared.slots.acquire()
                hop.slots = shared.slots
                if (pause := shared.pacer.pause()) is not None:
                    await _pace(shared.pacer, pause)
                headers.update(self.settings.auth_headers)
            if step.cookie:
                headers["Cookie"] = step.cookie
            try:
                resp = await shared.session.get(
                    step.hop.url,
                    headers=headers,
                    allow_redirects=False,
                    timeout=self._timeout,
                    proxy=shared.proxies.for_url(step.hop.url),
                    ssl=trust,
                )
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                hop.release()
                return failed(exc)
            hop.resp = resp
            excerpt = ""
            if size := probe_size(step.hop, resp.status):
                # Unreadable: judged on its status and headers alone.
                with suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    excerpt = (await _read_bounded(resp.content, size)).decode("utf-8", "replace")
            if resp.status != 200:
                # Not the file (a redirect, an error): its connection and slot are freed now, not
                # after the backoff of a retry.
                hop.release()
            return Opened(resp.status, resp.headers, excerpt, tuple(resp.headers.getall("Set-Cookie", ())))

        try:
            ready: Ready = await drive(
                open_chain(self.settings.base_url, report, self.settings.policy, pacer=shared.pacer), open_hop
            )
            resp = hop.resp
            assert resp is not None
            yield AsyncDownload(
                ready.expected_size, resp.headers.get("content-type"), _body(resp, report, ready, chunk_size)
            )
        finally:
            hop.release()


class _CurrentHop:
    """The open response of a download's current hop, and the Canvas slot it holds, if any."""

    __slots__ = ("resp", "slots")

    def __init__(self) -> None:
        self.resp: aiohttp.ClientResponse | None = None
        self.slots: asyncio.Semaphore | None = None

    def release(self) -> None:
        if self.resp is not None:
            self.resp.release()
            self.resp = None
        if self.slots is not None:
            self.slots.release()
            self.slots = None


@dataclass
class AsyncDownload:
    expected_size: int | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


async def _body(
    resp: aiohttp.ClientResponse, report: Report, ready: Ready, chunk_size: int
) -> AsyncIterator[bytes]:
    checker = ChunkChecker(report, ready.expected_size)
    try:
        async for chunk in resp.content.iter_chunked(chunk_size):
            if passed := checker.feed(chunk):
                yield passed
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise checker.cut(type(exc).__name__) from None
    if tail := checker.finish():
        yield tail
