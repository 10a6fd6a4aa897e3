"""urllib3's DEBUG lines, as the sync transport leaves them: Canvas's paths, no other host's.

Besides real requests, records are made as urllib3 makes them (its logger, its format) to reach
lines no request here produces; the download's lines are checked in tests/secrets.
"""

from __future__ import annotations

import logging

import pytest

from airflow_provider_canvas_reports.canvas.endpoints import origin
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.simulator import CanvasSimulator
from tests.fixtures.simulator import canvas

__all__ = ["canvas"]

URLLIB3 = logging.getLogger("urllib3.connectionpool")
REQUEST_LINE = '%s://%s:%s "%s %s %s" %s %s'  # urllib3 1.26 and 2.x


def request_line(caplog: pytest.LogCaptureFixture, scheme: str, host: str, port: int, target: str) -> str:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger=URLLIB3.name):
        URLLIB3.debug(REQUEST_LINE, scheme, host, port, "GET", target, "HTTP/1.1", 200, 512)
    (record,) = caplog.records
    return record.getMessage()


def test_only_the_transports_own_requests_keep_their_canvas_paths(
    canvas: CanvasSimulator, caplog: pytest.LogCaptureFixture
):
    hook = CanvasHook()
    with caplog.at_level(logging.DEBUG, logger=URLLIB3.name):
        hook.list_available_reports()
    api = "/api/v1/accounts/self/reports"
    assert any(f'"GET {api}?... HTTP/1.1" 200' in r.getMessage() for r in caplog.records)
    # The same host named by a line logged outside the transport's requests (another library's):
    # nothing remembers it as Canvas.
    _, host, port = origin(hook.base_url)
    assert '"GET /... HTTP/1.1" 200 512' in request_line(caplog, "http", host, port or 80, api)


def test_other_hosts_keep_only_origin_method_status_and_size(caplog: pytest.LogCaptureFixture):
    signed = "/files/9/1767225600-5f3ac0ffee"
    line = request_line(caplog, "https", "school.canvas-user-content.com", 443, signed)
    assert line == 'https://school.canvas-user-content.com:443 "GET /... HTTP/1.1" 200 512'
    line = request_line(caplog, "https", "instfs.example.com", 443, "/o/1?X-Amz-Signature=deadbeef")
    assert line == 'https://instfs.example.com:443 "GET /... HTTP/1.1" 200 512'


def test_other_records_naming_a_url_are_treated_as_off_canvas(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.DEBUG, logger=URLLIB3.name):
        URLLIB3.debug("Retry: %s", "/files/9/1767225600-5f3ac0ffee")
        URLLIB3.debug(
            "Redirecting %s -> %s", "/files/9/x", "https://instfs.example.com/o/1?X-Amz-Signature=s"
        )
        URLLIB3.debug("Starting new HTTPS connection (%d): %s:%s", 1, "instfs.example.com", 443)
    assert [r.getMessage() for r in caplog.records] == [
        "Retry: /...",
        "Redirecting /... -> https://instfs.example.com/...",
        "Starting new HTTPS connection (1): instfs.example.com:443",
    ]
