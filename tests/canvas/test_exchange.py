"""What the API and download conversations say while they retry: which request, which attempt,
how loudly (canvas/exchange.py, canvas/download.py), and who could not be reached."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.download import Opened, OpenHop, open_chain
from airflow_provider_canvas_reports.canvas.errors import CanvasRetryExhaustedError
from airflow_provider_canvas_reports.canvas.exchange import Failed, Received, Send, Sleep, api_call
from airflow_provider_canvas_reports.canvas.retry import Failure, RetryPolicy
from airflow_provider_canvas_reports.transport.settings import log_sleep
from tests.canvas.test_download import CSV

POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=4.0, max_elapsed=600.0)
BASE = "https://school.instructure.com"


def _first_sleep(gen: Any, outcome: Any) -> Sleep:
    step = next(gen)
    while not isinstance(step, Sleep):
        step = gen.send(outcome)
    return step


def _refuse_every_connection(gen: Any) -> None:
    step = next(gen)
    while True:
        step = gen.send(Failed(Failure.CONNECT) if isinstance(step, Send) else None)


def test_a_retry_names_the_request_its_report_and_the_attempt():
    gen = api_call(api.status("self", "provisioning_csv", 101).request, POLICY, rng=random.Random(0))
    sleep = _first_sleep(gen, Received(503, {}, b"busy"))
    assert sleep.reason == (
        "Canvas answered HTTP 503 to read the report status on account self "
        "(report provisioning_csv #101), attempt 1 of 3"
    )
    assert sleep.level == logging.WARNING


def test_waiting_out_the_throttle_is_info_not_a_warning():
    # Many tasks on one token meet Canvas's throttle every night: it is news, not trouble.
    gen = api_call(api.available("self").request, POLICY, rng=random.Random(0))
    sleep = _first_sleep(gen, Received(429, {"retry-after": "2"}, b"429 Too Many Requests"))
    assert sleep.reason.startswith("Canvas throttled the request (HTTP 429) to list the available reports")
    assert sleep.level == logging.INFO


def test_an_unreachable_canvas_is_named_in_the_error():
    gen = api_call(api.available("self").request, POLICY, rng=random.Random(0), base_url=BASE + "/")
    with pytest.raises(CanvasRetryExhaustedError) as info:
        _refuse_every_connection(gen)
    assert "could not connect to Canvas after 3 attempts" in str(info.value)
    assert f"Check that the Canvas host ({BASE}) is reachable" in str(info.value)


def test_a_download_retry_names_the_file_host_not_canvas():
    gen = open_chain(BASE, CSV, POLICY, rng=random.Random(0))
    step = next(gen)
    assert isinstance(step, OpenHop)
    assert step.hop.send_auth
    # Canvas sends the files host's link; the files host then fails.
    step = gen.send(Opened(302, {"location": "https://files.example/f/1?sig=abc"}))
    assert isinstance(step, OpenHop)
    assert not step.hop.send_auth
    sleep = gen.send(Failed(Failure.RESET))
    assert isinstance(sleep, Sleep)
    assert sleep.reason == (
        "the connection to the file host was reset to download report #12 from https://files.example, "
        "attempt 1 of 3"
    )
    assert "sig=" not in sleep.reason


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING])
def test_log_sleep_logs_at_the_wait_s_level(caplog, level):
    log = logging.getLogger("tests.canvas.exchange")
    with caplog.at_level(logging.DEBUG, logger=log.name):
        log_sleep(log, Sleep(1.5, "why", level))
    assert [record.levelno for record in caplog.records] == [level]
    assert "1.5s" in caplog.records[0].getMessage()
