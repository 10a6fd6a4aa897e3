"""Checks on a report download, decided before anything reaches the destination."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass

from airflow_provider_canvas_reports.canvas.endpoints import (
    Hop,
    Origin,
    first_hop,
    next_hop,
    origin,
    redact_url,
)
from airflow_provider_canvas_reports.canvas.errors import DownloadError
from airflow_provider_canvas_reports.canvas.exchange import Failed, Pacer, Sleep, retry_sleep
from airflow_provider_canvas_reports.canvas.headers import header
from airflow_provider_canvas_reports.canvas.report import Phase, Report
from airflow_provider_canvas_reports.canvas.retry import Attempt, Done, GiveUp, RetryPolicy, decide

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--")


def require_file(report: Report) -> None:
    """A report can be downloaded only when complete and with an attachment."""
    if report.phase is Phase.FAILURE:
        raise DownloadError(f"{report.failure_message()}. There is no file to download.")
    if report.status != "complete":
        raise DownloadError(
            f"Canvas report {report.report} #{report.id} is '{report.status}', not 'complete': wait for it "
            "(ReportCompleteSensor) before downloading."
        )
    if not report.file_url or report.attachment is None:
        raise DownloadError(
            f"Canvas report {report.report} #{report.id} is complete but has no file attached; start it again."
        )


def is_zip(report: Report) -> bool:
    attachment = report.attachment
    if attachment is None:
        return False
    name = (attachment.name or "").lower()
    ctype = (attachment.content_type or "").lower()
    return name.endswith(".zip") or "zip" in ctype


def is_encoded(headers: Mapping[str, str] | None) -> bool:
    """Whether the body comes with a Content-Encoding (gzip, ...) and must be decoded to be the file."""
    return (header(headers, "content-encoding") or "").strip().lower() not in ("", "identity")


def check_response(
    status: int, headers: Mapping[str, str], report: Report, *, hop_sent_auth: bool = False, where: str = ""
) -> int | None:
    """The final answer of the redirect chain: 200, not an HTML page, and the attachment's size.

    Returns the size the body must have. `where` is the answering host (scheme and host only).
    """
    if status in (401, 403) and hop_sent_auth:
        raise DownloadError(
            f"Canvas refused the download of report #{report.id} (HTTP {status}): the token cannot read "
            "this account's files. Give the token's user the permission to view the report files, or "
            "use another token."
        )
    if status != 200:
        # Each attempt follows a fresh link from Canvas, so a refusal that repeats is not an old link.
        at = f" from {where}" if where else ""
        raise DownloadError(
            f"The download of report #{report.id} ended with HTTP {status}{at} instead of the file. "
            "A signed link that expired or was refused gets a fresh one on the next attempt; if every "
            "attempt is refused, check that the host's clock is right and that the report's file still "
            "exists in Canvas."
        )
    ctype = (header(headers, "content-type") or "").lower()
    if "text/html" in ctype:
        raise DownloadError(
            f"The download of report #{report.id} returned an HTML page (a login or error page) instead "
            "of the report file. Check the token can read files on this account, then retry."
        )
    declared = (header(headers, "content-length") or "").strip()
    length = int(declared) if declared.isascii() and declared.isdigit() else None  # "²".isdigit() too
    if is_encoded(headers):
        # The length of the encoded bytes, not of the file: the decoded size is checked as it streams.
        length = None
    expected = report.attachment.size if report.attachment else None
    if length is not None and expected is not None and length != expected:
        raise DownloadError(
            f"The download of report #{report.id} announces {length} bytes but Canvas says the file has "
            f"{expected}. Nothing was written; retry the task."
        )
    return expected if expected is not None else length


def _token_withheld(report: Report, canvas_base: str) -> str:
    # Canvas builds file_url on the root account's primary domain (HostUrl.context_host): a
    # connection made with another name of the same Canvas (school.instructure.com for
    # canvas.school.edu) gets a file_url on a host the token never goes to, and then a login page.
    return (
        f"(The report's file is on {redact_url(report.file_url or '')}, not on the connection's Canvas "
        f"host {redact_url(canvas_base)}, so the token was not sent there. If that is the same Canvas "
        "under its primary name, make it the connection's host.)"
    )


def check_first_bytes(chunk: bytes, report: Report) -> None:
    """Catch a login page served with a file's content type, and a CSV posing as a ZIP."""
    head = chunk[:64].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(HTML_STARTS):
        raise DownloadError(
            f"The download of report #{report.id} is an HTML page, not the report file. Nothing was written."
        )
    if is_zip(report) and chunk and not chunk.startswith(ZIP_MAGIC):
        raise DownloadError(
            f"The download of report #{report.id} should be a ZIP but is not one. Nothing was written."
        )


def check_size(received: int, expected: int | None, report: Report) -> None:
    if received == 0:
        # Canvas writes a header row into every CSV and a directory into every ZIP: an empty
        # file is a broken report, which a warehouse load would take for an empty table.
        raise DownloadError(
            f"Canvas served an empty file for report #{report.id}; a report file is never empty. "
            "Nothing was written; run the report again."
        )
    if expected is not None and received != expected:
        raise DownloadError(
            f"The download of report #{report.id} was cut short: received {received} of {expected} bytes. "
            "Nothing was written; retry the task."
        )


@dataclass(frozen=True)
class OpenHop:
    """Open this URL (streaming, no automatic redirects), with the token only if `send_auth`."""

    hop: Hop
    # The Cookie header to send: what this hop's origin set earlier in the chain (`FilesSession`).
    cookie: str | None = None


@dataclass(frozen=True)
class Opened:
    status: int
    headers: Mapping[str, str]
    # The start of the body, where its meaning depends on it (`probe_size`); else not read.
    body_excerpt: str = ""
    # Its Set-Cookie values, one per header line (a Mapping may join them ambiguously).
    set_cookies: tuple[str, ...] = ()


class FilesSession:
    """Cookies of a download's token-free hops, each sent back only to the origin that set it.

    Canvas's files domain turns the signed link into a session cookie, then sends a file it
    could show inline (a CSV) to its own URL without the link's verifier (files_controller:
    `inline_content? && params[:sf_verifier]`): that hop needs the cookie. The Canvas host's
    cookies are never kept: the token is its credential, and a session cookie there could follow
    a download to a store on the same host name. One session per walk of the chain.
    """

    MAX_COOKIES = 20
    MAX_VALUE = 4096

    def __init__(self) -> None:
        self._by_origin: dict[Origin, dict[str, str]] = {}

    def note(self, hop: Hop, set_cookies: tuple[str, ...]) -> None:
        if hop.send_auth or not set_cookies:
            return
        jar = self._by_origin.setdefault(origin(hop.url), {})
        for line in set_cookies:
            name, sep, value = line.split(";", 1)[0].partition("=")
            name, value = name.strip(), value.strip()
            if sep and name and len(value) <= self.MAX_VALUE and (name in jar or len(jar) < self.MAX_COOKIES):
                jar[name] = value

    def header(self, hop: Hop) -> str | None:
        if hop.send_auth:
            return None
        jar = self._by_origin.get(origin(hop.url))
        return "; ".join(f"{name}={value}" for name, value in jar.items()) if jar else None


#: How much of the body of a Canvas 403 a transport reads: Canvas's throttling 403 says so only
#: in its body ("403 Forbidden (Rate Limit Exceeded)"); its X-Rate-Limit-Remaining is the
#: bucket's level after the refund, often above 0 (request_throttle.rb).
THROTTLE_PROBE = 512


def probe_size(hop: Hop, status: int) -> int:
    """Bytes of this answer's body a transport reads for `open_chain` (0: none). A 403 from the
    Canvas host is throttling or a refusal, and only its body tells; the other hosts' 403 is an
    expired link, and their bodies may quote the signed request."""
    return THROTTLE_PROBE if hop.send_auth and status == 403 else 0


@dataclass(frozen=True)
class Ready:
    """The currently open response is the file; `expected_size` is what its body must measure."""

    expected_size: int | None


REDIRECTS = frozenset({301, 302, 303, 307, 308})


def open_chain(
    canvas_base: str,
    report: Report,
    policy: RetryPolicy,
    *,
    pacer: Pacer | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Generator[OpenHop | Sleep, Opened | Failed | None, Ready]:
    """Walk Canvas's redirect chain to the file, retrying transient failures from the start.

    The chain restarts at `file_url` after a failure because the later hops are short-lived
    signed URLs. The token goes only to the Canvas host (see `endpoints.next_hop`). A hop that
    carries it draws on the token's rate-limit bucket like an API request: it waits for `pacer`
    first, and its answer's rate-limit headers are noted there.
    """
    require_file(report)
    assert report.file_url is not None
    started = clock()
    number = 0
    while True:
        number += 1
        hop = first = first_hop(canvas_base, report.file_url)
        hops = 0
        session = FilesSession()
        while True:
            if hop.send_auth and pacer is not None and (pause := pacer.pause()) is not None:
                yield pause
            outcome = yield OpenHop(hop, session.header(hop))
            if isinstance(outcome, Opened):
                session.note(hop, outcome.set_cookies)
                if hop.send_auth and pacer is not None:
                    pacer.note(policy, outcome.headers)
            if isinstance(outcome, Opened) and outcome.status in REDIRECTS:
                hop = next_hop(canvas_base, hop.url, header(outcome.headers, "location"), hops)
                hops += 1
                continue
            break
        if isinstance(outcome, Opened):
            attempt = Attempt(
                number,
                clock() - started,
                status=outcome.status,
                headers=outcome.headers,
                body_excerpt=outcome.body_excerpt,
            )
        elif isinstance(outcome, Failed):
            attempt = Attempt(number, clock() - started, failure=outcome.failure, detail=outcome.detail)
        else:  # pragma: no cover - a driver bug
            raise TypeError(f"open_chain expected Opened or Failed, got {type(outcome).__name__}")
        # Only the first hop is Canvas's API host; the later ones are its files host and the store.
        decision = decide(policy, attempt, rng, peer="Canvas" if hop.send_auth else "the file host")
        if isinstance(decision, Done):
            assert isinstance(outcome, Opened)
            try:
                size = check_response(
                    outcome.status,
                    outcome.headers,
                    report,
                    hop_sent_auth=hop.send_auth,
                    where=redact_url(hop.url),
                )
            except DownloadError as exc:
                if first.send_auth:
                    raise
                raise DownloadError(f"{exc} {_token_withheld(report, canvas_base)}") from None
            return Ready(size)
        if isinstance(decision, GiveUp):
            if decision.fix:
                raise DownloadError(
                    f"Could not download report #{report.id} from {redact_url(hop.url)}: {decision.reason}. "
                    f"{decision.fix}"
                )
            raise DownloadError(
                f"Could not download report #{report.id}: {decision.reason} "
                f"({redact_url(hop.url)}). The task can be retried."
            )
        yield retry_sleep(
            decision, f"to download report #{report.id} from {redact_url(hop.url)}", number, policy
        )


class ChunkChecker:
    """Checks a streamed body chunk by chunk: its first bytes and its final size.

    The first HEAD_BYTES are held back until they can be checked, because a transport may
    hand over a first chunk of only a few bytes.
    """

    HEAD_BYTES = 64

    def __init__(self, report: Report, expected_size: int | None) -> None:
        self.report = report
        self.expected_size = expected_size
        self.received = 0
        self._head: bytes | None = b""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes that may be passed on now (possibly empty while the head is held back)."""
        self.received += len(chunk)
        self._check_length()
        if self._head is None:
            return chunk
        self._head += chunk
        if len(self._head) < self.HEAD_BYTES:
            return b""
        return self._release()

    def check_filled(self, chunk: bytes | memoryview) -> None:
        """Check a chunk in place, for a reader that fills its buffer (fewer bytes only at the
        end): its first chunk holds the whole head, or the whole file, so nothing is held back."""
        self.received += len(chunk)
        self._check_length()
        if self._head is not None:
            self._head = None
            check_first_bytes(bytes(chunk[: self.HEAD_BYTES]), self.report)

    def finish(self) -> bytes:
        """Check the size; returns what was still held back (for files shorter than the head)."""
        check_size(self.received, self.expected_size, self.report)
        return self._release() if self._head is not None else b""

    def _check_length(self) -> None:
        if self.expected_size is not None and self.received > self.expected_size:
            raise DownloadError(
                f"The download of report #{self.report.id} is longer than the {self.expected_size} bytes "
                "Canvas announced. Nothing was written; retry the task."
            )

    def _release(self) -> bytes:
        head, self._head = self._head or b"", None
        if head:
            check_first_bytes(head, self.report)
        return head

    def cut(self, reason: str) -> DownloadError:
        return DownloadError(
            f"The download of report #{self.report.id} broke after {self.received} bytes ({reason}). "
            "Nothing was written; retry the task."
        )
