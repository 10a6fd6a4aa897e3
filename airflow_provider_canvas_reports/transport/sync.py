"""The synchronous transport (requests), used by operators and poke-mode sensors."""

from __future__ import annotations

import http.client
import http.cookiejar
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests
import urllib3

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.api import Call
from airflow_provider_canvas_reports.canvas.download import (
    ChunkChecker,
    Opened,
    OpenHop,
    Ready,
    is_encoded,
    open_chain,
    probe_size,
)
from airflow_provider_canvas_reports.canvas.endpoints import Origin, loggable_target, origin, origin_of
from airflow_provider_canvas_reports.canvas.errors import CanvasError, DownloadError, redirected_error
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
    UnusableCertificates,
    certificate_refusal,
    check_bundle,
)
from airflow_provider_canvas_reports.transport.settings import (
    CHUNK_SIZE,
    USER_AGENT,
    CanvasSettings,
    log_sleep,
)

if TYPE_CHECKING:
    from airflow_provider_canvas_reports.storage.streaming import Readable

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


# urllib3's request line (1.26 and 2.x): scheme, host, port, method, target, HTTP version, status, size.
_REQUEST_LINE = '%s://%s:%s "%s %s %s" %s %s'
# The Canvas origin of the transport whose request is under way in this thread or task, if any:
# urllib3 logs the request line before the call returns.
_CANVAS_ORIGIN: ContextVar[Origin | None] = ContextVar("canvas_origin", default=None)


@contextmanager
def _requests_for(canvas: Origin) -> Iterator[None]:
    token = _CANVAS_ORIGIN.set(canvas)
    try:
        yield
    finally:
        _CANVAS_ORIGIN.reset(token)


class _RedactRequestLines(logging.Filter):
    """urllib3 logs every request line at DEBUG, path and query string included.

    Presigned store URLs carry their signature in the query string and the files host its signed
    ticket in the path: the target is cut to what `loggable_target` allows before any handler sees
    the line (the path stays only on the Canvas origin of the transport making the request). Other
    records naming a URL are treated as off Canvas. Headers, and so the token, are never in these
    lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple):
            return True
        if record.msg == _REQUEST_LINE and len(args) == 8:
            scheme, host, port, method, target, *rest = args
            on_canvas = (
                origin_of(str(scheme), str(host), port if isinstance(port, int) else None)
                == _CANVAS_ORIGIN.get()
            )
            record.args = (
                scheme,
                host,
                port,
                method,
                loggable_target(str(target), on_canvas=on_canvas),
                *rest,
            )
        else:
            record.args = tuple(
                loggable_target(arg, on_canvas=False)
                if isinstance(arg, str) and (arg.startswith("/") or "://" in arg or "?" in arg)
                else arg
                for arg in args
            )
        return True


# A logger's filters do not see its children's records: each urllib3 module that logs a URL
# (a malformed header's warning names the whole presigned URL, for one) gets the filter.
for _name in ("connectionpool", "connection", "poolmanager", "response", "util.retry"):
    _urllib3_log = logging.getLogger(f"urllib3.{_name}")
    if not any(isinstance(f, _RedactRequestLines) for f in _urllib3_log.filters):
        _urllib3_log.addFilter(_RedactRequestLines())


class _HeadersAsGiven(requests.auth.AuthBase):
    """An auth that adds nothing: its presence stops requests from consulting ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])


def _unreadable_redirect(exc: BaseException) -> bool:
    """Whether requests raised `exc` reading a redirect's Location, which it does even when told
    not to follow redirects; not, say, a malformed proxy URL from the environment."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in ("resolve_redirects", "get_redirect_target"):
            return True
        tb = tb.tb_next
    return False


def failed(exc: requests.RequestException | UnusableCertificates) -> Failed:
    """Whether the request can have reached Canvas: only a refused connection (or certificate)
    surely did not."""
    if (refused := certificate_refusal(exc)) is not None:
        return Failed(Failure.CERTIFICATE, refused)
    if isinstance(exc, requests.ConnectTimeout):
        return Failed(Failure.CONNECT)
    if isinstance(exc, requests.ReadTimeout):
        return Failed(Failure.TIMEOUT)
    if isinstance(exc, requests.ConnectionError):
        text = repr(exc.args[0]) if exc.args else ""
        if "NewConnectionError" in text or "NameResolutionError" in text or "Connection refused" in text:
            return Failed(Failure.CONNECT)
    return Failed(Failure.RESET)


def drive(gen: Generator[Any, Any, R], step: Callable[[Any], Any]) -> R:
    """Run a sans-IO conversation: sleep when told, otherwise let `step` do the I/O."""
    outcome: Any = None
    try:
        action = next(gen)
        while True:
            if isinstance(action, Sleep):
                log_sleep(log, action)
                time.sleep(action.seconds)
                outcome = None
            else:
                outcome = step(action)
            action = gen.send(outcome)
    except StopIteration as stop:
        return stop.value


def _read_bounded(resp: requests.Response, limit: int) -> bytes:
    return resp.raw.read(limit, decode_content=True)


def _set_cookies(resp: requests.Response) -> tuple[str, ...]:
    # requests' headers join repeated Set-Cookie lines with commas, which Expires dates hold too.
    getlist = getattr(resp.raw.headers, "getlist", None)
    return tuple(getlist("Set-Cookie")) if getlist is not None else ()


@dataclass
class Download:
    """An open report file: its announced size and its body, checked, as chunks or (when it needs
    no decoding) as a reader into the caller's buffers. Consume one of them."""

    expected_size: int | None
    content_type: str | None
    chunks: Iterator[bytes]
    reader: Readable | None = None

    @property
    def body(self) -> Readable | Iterable[bytes]:
        """The cheapest way to read the body: the reader when there is one, else the chunks."""
        return self.reader if self.reader is not None else self.chunks


class _BodyReader:
    """The body read by http.client straight into the caller's buffer: unlike requests'
    ``iter_content``, no new bytes object per chunk and no copies through urllib3's layers.

    http.client's ``readinto`` fills the buffer (fewer bytes only at the end), as ChunkChecker's
    ``check_filled`` needs; it also undoes chunked transfer encoding.
    """

    def __init__(self, fp: http.client.HTTPResponse, checker: ChunkChecker) -> None:
        self._fp = fp
        self._checker = checker

    @classmethod
    def of(cls, resp: requests.Response, checker: ChunkChecker) -> _BodyReader | None:
        """None when the body must be decoded (Content-Encoding) or urllib3 hides its stream."""
        fp = getattr(resp.raw, "_fp", None)  # urllib3 2.x keeps http.client's response here
        if is_encoded(resp.headers) or not isinstance(fp, http.client.HTTPResponse):
            return None
        return cls(fp, checker)

    def readinto(self, buffer: memoryview, /) -> int:
        try:
            n = self._fp.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            raise self._checker.cut(type(exc).__name__) from None
        if n:
            self._checker.check_filled(buffer[:n])
        elif self._fp.length:  # closed before its Content-Length: say so, as a chunked body would
            raise self._checker.cut("IncompleteRead")
        else:
            self._checker.finish()
        return n


class SyncTransport:
    def __init__(self, settings: CanvasSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # Each hop gets exactly the headers we give it. Without an auth of its own, requests reads
        # ~/.netrc and sends its Basic credentials to every host of the chain (the store included),
        # over our Bearer token on Canvas; and a cookie Canvas sets would go to a files host or store
        # on the same host name. The token needs neither; proxies from the environment still apply.
        self.session.auth = _HeadersAsGiven()
        self.session.cookies.set_policy(_NO_COOKIES)
        # Redirects are followed by hand (every request passes allow_redirects=False): requests would
        # keep the token on some cross-host hops. Do not set max_redirects = 0: even with
        # allow_redirects=False, requests peeks at the next hop and raises TooManyRedirects on any 3xx.
        self.pacer = Pacer()
        self._secrets = (settings.token,)
        self._origin = origin(settings.base_url)

    @property
    def _timeout(self) -> tuple[float, float]:
        return self.settings.policy.connect_timeout, self.settings.policy.read_timeout

    def close(self) -> None:
        self.session.close()

    def _send(self, request: ApiRequest) -> Received | Failed:
        url = self.settings.url(request.path)
        try:
            check_bundle(url)  # an unusable bundle is refused here, unsent
        except UnusableCertificates as exc:
            return failed(exc)
        try:
            with _requests_for(self._origin):
                resp = self.session.request(
                    request.method,
                    url,
                    params=list(request.query) or None,
                    data=list(request.form) or None,
                    headers={**self.settings.auth_headers, "Accept": "application/json"},
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                )
        except (requests.RequestException, ValueError) as exc:
            if _unreadable_redirect(exc):
                raise redirected_error(request.context, None, None) from None
            if isinstance(exc, requests.RequestException):
                return failed(exc)
            raise
        try:
            limit = body_limit(resp.status_code)
            body = _read_bounded(resp, limit)
        except urllib3.exceptions.ReadTimeoutError:
            return Failed(Failure.TIMEOUT)
        # resp.raw is urllib3's: a body cut short raises its ProtocolError, which is not an OSError.
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            return failed(exc) if isinstance(exc, requests.RequestException) else Failed(Failure.RESET)
        finally:
            resp.close()
        return Received(resp.status_code, resp.headers, body)

    def execute(self, request: ApiRequest) -> ApiResponse:
        gen = api_call(
            request,
            self.settings.policy,
            pacer=self.pacer,
            secrets=self._secrets,
            base_url=self.settings.base_url,
        )
        return drive(gen, lambda send: self._send(send.request))

    def call(self, call: Call[T]) -> T:
        return call.parse(self.execute(call.request))

    def run_plan(self, plan: api.CallPlan[T]) -> T:
        """Run a plan of calls (see `api.cancel`): each result sent in, each CanvasError thrown in."""
        try:
            call = next(plan)
            while True:
                try:
                    result = self.call(call)
                except CanvasError as exc:
                    call = plan.throw(exc)
                else:
                    call = plan.send(result)
        except StopIteration as stop:
            return stop.value

    def pages(self, call: Call[list[T]]) -> Iterator[T]:
        """Every item of a paginated list, page by page (never the whole index in memory)."""
        pager = api.Pager(call)
        while (current := pager.current) is not None:
            response = self.execute(current.request)
            yield from current.parse(response)
            pager.advance(response)

    @contextmanager
    def download(self, report: Report, chunk_size: int = CHUNK_SIZE) -> Iterator[Download]:
        """Open the report's file through Canvas's redirect chain and stream it."""
        holder: dict[str, requests.Response] = {}

        def open_hop(step: OpenHop) -> Opened | Failed:
            if "resp" in holder:
                holder.pop("resp").close()
            headers = {"Accept-Encoding": "identity"}
            if step.hop.send_auth:
                headers.update(self.settings.auth_headers)
            if step.cookie:
                headers["Cookie"] = step.cookie
            try:
                check_bundle(step.hop.url)
            except UnusableCertificates as exc:
                return failed(exc)
            try:
                with _requests_for(self._origin):
                    resp = self.session.get(
                        step.hop.url,
                        headers=headers,
                        stream=True,
                        allow_redirects=False,
                        timeout=self._timeout,
                    )
            except (requests.RequestException, ValueError) as exc:
                if _unreadable_redirect(exc):
                    raise DownloadError(
                        "The report download points at a malformed URL; refusing to follow it."
                    ) from None
                if isinstance(exc, requests.RequestException):
                    return failed(exc)
                raise
            holder["resp"] = resp
            excerpt = ""
            if size := probe_size(step.hop, resp.status_code):
                # Unreadable: judged on its status and headers alone.
                with suppress(requests.RequestException, urllib3.exceptions.HTTPError, OSError):
                    excerpt = _read_bounded(resp, size).decode("utf-8", "replace")
            return Opened(resp.status_code, resp.headers, excerpt, _set_cookies(resp))

        try:
            ready: Ready = drive(
                open_chain(self.settings.base_url, report, self.settings.policy, pacer=self.pacer), open_hop
            )
            resp = holder["resp"]
            checker = ChunkChecker(report, ready.expected_size)
            yield Download(
                ready.expected_size,
                resp.headers.get("content-type"),
                self._body(resp, checker, chunk_size),
                _BodyReader.of(resp, checker),
            )
        finally:
            if "resp" in holder:
                holder.pop("resp").close()

    @staticmethod
    def _body(resp: requests.Response, checker: ChunkChecker, chunk_size: int) -> Iterator[bytes]:
        try:
            for chunk in resp.iter_content(chunk_size):
                if passed := checker.feed(chunk):
                    yield passed
        except (requests.RequestException, OSError) as exc:
            raise checker.cut(type(exc).__name__) from None
        if tail := checker.finish():
            yield tail
