"""The sync transport's report body: read by http.client straight into the caller's buffers when
it needs no decoding, as decoded chunks when it does; checked either way.

A tiny local server stands in for the file store, to send what the simulator never does
(chunked bodies in tiny pieces, gzip-encoded bodies).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from airflow_provider_canvas_reports.canvas.errors import DownloadError
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.storage.streaming import Readable
from airflow_provider_canvas_reports.transport.settings import CanvasSettings
from airflow_provider_canvas_reports.transport.sync import Download, SyncTransport
from tests.fixtures.http_servers import QuietHandler, serving

POLICY = RetryPolicy(max_attempts=1, connect_timeout=2.0, read_timeout=5.0)
CSV = b"canvas_user_id,user_id,last_access_at\n" + b"".join(
    b"%d,u%d,2026-11-26\n" % (i, i) for i in range(50_000)
)
HTML = b"<!DOCTYPE html><html><body>Log in to Canvas</body></html>\n" * 3


class _Store(QuietHandler):
    """``/<how>``: ``plain`` (Content-Length), ``chunked`` (7-byte chunks), ``gzip`` (with the
    encoded Content-Length), ``gzip-chunked``, ``html-chunked``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/low-bucket":  # Canvas's download hop, with its bucket nearly empty
            self.send_response(302)
            # Another origin (localhost, not 127.0.0.1): the store, which gets no token and no pace.
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/plain")
            self.send_header("X-Rate-Limit-Remaining", "5.0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        how = self.path.strip("/")
        body = HTML if how.startswith("html") else CSV
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        if how.startswith("gzip"):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        if how.endswith("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 7):
                piece = body[start : start + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _Store)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def _report(url: str, size: int | None) -> Report:
    attachment = {"id": 7, "filename": "last_user_access.csv", "content-type": "text/csv", "size": size}
    return Report.from_json(
        {
            "id": 1,
            "report": "last_user_access_csv",
            "status": "complete",
            "file_url": url,
            "attachment": attachment,
        }
    )


def _read(download: Download, buffer_size: int = 64 * 1024) -> bytes:
    body = download.body
    if not isinstance(body, Readable):
        return b"".join(body)
    buffer = memoryview(bytearray(buffer_size))
    parts = []
    while n := body.readinto(buffer):
        parts.append(bytes(buffer[:n]))
    return b"".join(parts)


@pytest.mark.parametrize(("how", "size"), [("plain", len(CSV)), ("chunked", len(CSV)), ("chunked", None)])
def test_an_unencoded_body_is_read_into_the_callers_buffers(store: str, how: str, size: int | None) -> None:
    transport = SyncTransport(CanvasSettings(store, "tok", POLICY))
    with transport.download(_report(f"{store}/{how}", size)) as download:
        assert download.reader is not None
        assert _read(download) == CSV
    transport.close()


@pytest.mark.parametrize("how", ["gzip-chunked", "gzip"])
@pytest.mark.parametrize("size", [len(CSV), None])
def test_an_encoded_body_is_decoded_through_the_chunks(store: str, how: str, size: int | None) -> None:
    # A store that ignores Accept-Encoding: identity. Its Content-Length (when sent) counts the
    # gzip bytes, so only the decoded size can be held against the attachment's.
    transport = SyncTransport(CanvasSettings(store, "tok", POLICY))
    with transport.download(_report(f"{store}/{how}", size)) as download:
        assert download.reader is None
        assert download.expected_size == size
        assert _read(download) == CSV
    transport.close()


def test_a_login_page_in_tiny_chunks_is_caught_by_the_reader(store: str) -> None:
    transport = SyncTransport(CanvasSettings(store, "tok", POLICY))
    with transport.download(_report(f"{store}/html-chunked", None)) as download:
        assert download.reader is not None
        with pytest.raises(DownloadError, match="HTML page"):
            _read(download)
    transport.close()


@pytest.mark.parametrize("announced", [len(CSV) + 1, len(CSV) - 1])
def test_the_reader_checks_the_size_canvas_announced(store: str, announced: int) -> None:
    transport = SyncTransport(CanvasSettings(store, "tok", POLICY))
    with (
        transport.download(_report(f"{store}/chunked", announced)) as download,
        pytest.raises(DownloadError, match=r"cut short|longer than"),
    ):
        _read(download)
    transport.close()


def test_the_canvas_hop_of_a_download_draws_on_the_tokens_pace(store: str) -> None:
    # The hop to the Canvas host spends the token's bucket like an API request: its rate-limit
    # header slows the token's next requests, and a pending pause delays the hop itself.
    transport = SyncTransport(CanvasSettings(store, "tok", POLICY))
    with transport.download(_report(f"{store}/low-bucket", len(CSV))) as download:
        assert _read(download) == CSV
    paused_until = transport.pacer.not_before
    assert paused_until > time.monotonic()

    started = time.monotonic()
    with transport.download(_report(f"{store}/plain", len(CSV))) as download:
        assert time.monotonic() >= paused_until  # the Canvas hop waited for the pace
        assert _read(download) == CSV
    assert time.monotonic() - started < 5
    transport.close()
