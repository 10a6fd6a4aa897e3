"""The download chain when it misbehaves: nothing wrong is ever handed over as the file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from airflow_provider_canvas_reports.canvas.errors import DownloadError
from airflow_provider_canvas_reports.canvas.report import Report

from .helpers import FAST, TOKEN, Canvas, Client, MakeClient

pytestmark = pytest.mark.usefixtures("close_sessions")


async def _complete(canvas: Canvas, client: Client) -> Report:
    started = await client.start_report("grade_export_csv")
    canvas.finish()
    done = await client.get_report("grade_export_csv", started.id)
    assert done.status == "complete", done.summary()
    canvas.counters.reset()
    return done


async def test_redirect_loop_is_a_download_error(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.fault("files", "redirect_loop", times=None)

    with pytest.raises(DownloadError, match="redirect loop"):
        await client.download(report)

    assert canvas.counters.files_auth_headers == 0
    assert canvas.counters.requests["files"] <= 6  # bounded, not followed forever


async def test_files_host_sending_back_to_the_canvas_login_page(canvas: Canvas, client: Client) -> None:
    """The files host redirects to Canvas's login page: an HTML page, never saved as the file."""
    report = await _complete(canvas, client)
    canvas.fault("files", "auth_redirect", times=None)

    with pytest.raises(DownloadError, match="HTML page") as info:
        await client.download(report)

    assert canvas.counters.requests["login"] == 1
    assert canvas.counters.files_auth_headers == 0
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("endpoint", ["download", "store"])
async def test_login_page_instead_of_the_file(canvas: Canvas, client: Client, endpoint: str) -> None:
    report = await _complete(canvas, client)
    canvas.fault(endpoint, "html", times=None)

    with pytest.raises(DownloadError, match="HTML page"):
        await client.download(report)


async def test_expired_store_link_is_an_error_not_a_file(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.fault("store", "expired", times=None)

    with pytest.raises(DownloadError, match="HTTP 403") as info:
        await client.download(report)

    assert "A signed link that expired or was refused gets a fresh one" in str(info.value)
    # The signed store URL is a credential too: it is not in the message.
    assert "X-Amz" not in str(info.value)


async def test_truncated_body_is_a_download_error(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.fault("store", "truncate", times=None, fraction=0.5)

    with pytest.raises(DownloadError, match="Nothing was written"):
        await client.download(report)


async def test_wrong_content_length_is_a_download_error(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.fault("store", "wrong_length", times=None)

    assert report.attachment is not None
    with pytest.raises(DownloadError, match=f"Canvas says the file has {report.attachment.size}"):
        await client.download(report)


async def test_stalled_body_past_the_read_timeout_is_a_download_error(
    canvas: Canvas, make_client: Callable[..., Client]
) -> None:
    client = make_client(canvas.hook(policy=replace(FAST, read_timeout=0.3)))
    report = await _complete(canvas, client)
    canvas.fault("store", "stall", times=None, delay=1.5, fraction=0.5)

    with pytest.raises(DownloadError, match="broke after"):
        await client.download(report)


async def test_stalled_body_within_the_read_timeout_arrives_whole(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.fault("store", "stall", times=1, delay=0.2, fraction=0.5)

    assert await client.download(report) == canvas.file_bytes(report.id)


@pytest.mark.parametrize(("endpoint", "kind"), [("download", "503"), ("files", "reset"), ("store", "500")])
async def test_transient_failures_restart_the_chain(
    canvas: Canvas, client: Client, endpoint: str, kind: str
) -> None:
    report = await _complete(canvas, client)
    canvas.fault(endpoint, kind, times=2)

    assert await client.download(report) == canvas.file_bytes(report.id)
    assert canvas.counters.faults[kind] == 2
    # Retries start again at Canvas (the later links are short-lived). aiohttp may itself repeat
    # a GET once on a dropped keep-alive connection, so count at least one restart.
    assert 2 <= canvas.counters.requests["download"] <= 3
    assert canvas.counters.files_auth_headers == 0


async def test_endless_store_failures_give_up_in_bounded_time(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.fault("store", "503", times=None)

    with pytest.raises(DownloadError, match="can be retried") as info:
        await client.download(report)

    assert "X-Amz" not in str(info.value)  # the signed query string is not shown
    assert canvas.counters.requests["download"] <= FAST.max_attempts


@pytest.mark.parametrize("throttle", ["403", "429"])
async def test_a_throttled_download_is_retried_whatever_the_bucket_says(
    make_canvas: Callable[..., Canvas], make_client: MakeClient, throttle: str
) -> None:
    # Canvas's throttling 403 carries X-Rate-Limit-Remaining above 0 (the bucket's level after
    # the refund of the up-front cost): only its body says "Rate Limit Exceeded". It used to be
    # taken for a refusal ("give the token's user the permission").
    canvas = make_canvas(throttle=throttle)
    client = make_client(canvas.hook())
    report = await _complete(canvas, client)
    canvas.fault("download", "throttle", times=1)

    assert await client.download(report) == canvas.file_bytes(report.id)
    assert canvas.counters.faults["throttle"] == 1
    assert canvas.counters.requests["download"] == 2


async def test_a_file_url_on_another_name_of_canvas_names_both_hosts(
    canvas: Canvas, make_client: MakeClient
) -> None:
    # Canvas builds file_url on its primary name; a connection made with another name of the
    # same Canvas (here localhost for 127.0.0.1) sends the token no further, and the file host
    # asks for a login.
    assert "127.0.0.1" in canvas.url
    other_name = canvas.url.replace("127.0.0.1", "localhost")
    client = make_client(canvas.hook(host=other_name))
    started = await client.start_report("grade_export_csv")
    canvas.finish()
    report = await client.get_report("grade_export_csv", started.id)
    assert report.file_url is not None
    assert report.file_url.startswith(canvas.url)

    with pytest.raises(DownloadError) as info:
        await client.download(report)

    message = str(info.value)
    assert "returned an HTML page (a login or error page)" in message
    assert (
        f"(The report's file is on {canvas.url}, not on the connection's Canvas host {other_name}, so the "
        "token was not sent there. If that is the same Canvas under its primary name, make it the "
        "connection's host.)"
    ) in message
    assert canvas.counters.requests["download"] >= 1
