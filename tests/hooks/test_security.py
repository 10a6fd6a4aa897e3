"""Where the token may go, and where it must never show up."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from airflow import __version__ as airflow_version
from airflow.providers.common.compat.sdk import AirflowNotFoundException
from packaging.version import Version

from airflow_provider_canvas_reports.canvas.errors import CanvasConfigError, CanvasRetryExhaustedError
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import (
    CanvasHook,
    connection_extra,
    settings_from_connection,
)

from .helpers import BAD_TOKEN, NO_PERMISSION_TOKEN, NO_SCOPE_TOKEN, TOKEN, Canvas, Client, loopback_alias

pytestmark = pytest.mark.usefixtures("close_sessions")

AIRFLOW_BEFORE_3_2 = Version(airflow_version).release[:2] < (3, 2)


# --- plain http ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["http://canvas.example.edu", "http://192.0.2.10:8080", "HTTP://Canvas.Example.EDU/"]
)
async def test_plain_http_to_a_remote_host_is_refused_before_any_request(
    canvas: Canvas, make_client: Callable[..., Client], host: str
) -> None:
    client = make_client(canvas.hook(host=host))

    # A request would fail to connect (CanvasRetryExhaustedError) rather than raise a config error.
    with pytest.raises(CanvasConfigError, match="Refusing plain http://") as info:
        await client.list_available_reports()

    assert "allow_http" in str(info.value)
    assert TOKEN not in str(info.value)


async def test_no_scheme_means_https(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    hook = canvas.hook(host="canvas.invalid")

    assert hook.base_url == "https://canvas.invalid"


@pytest.mark.parametrize(
    ("flag", "allowed"), [(True, True), ("true", True), ("1", True), (False, False), ("yes", False)]
)
def test_allow_http_opens_plain_http_to_a_named_host(flag: Any, allowed: bool) -> None:
    # The rule itself, with no network (the test below needs a second name for the loopback host).
    conn = SimpleNamespace(
        conn_id="canvas_http",
        host="http://canvas.example.edu",
        port=None,
        password=TOKEN,
        extra=json.dumps({"allow_http": flag}),
    )
    if allowed:
        settings, _ = settings_from_connection(conn, RetryPolicy())
        assert settings.base_url == "http://canvas.example.edu"
    else:
        with pytest.raises(CanvasConfigError, match=r"Refusing plain http:// to canvas\.example\.edu"):
            settings_from_connection(conn, RetryPolicy())


async def test_plain_http_allowed_with_allow_http(
    make_canvas: Callable[..., Canvas], make_client: Callable[..., Client]
) -> None:
    alias = loopback_alias()
    if alias is None:
        pytest.skip("this machine has no host name besides localhost")
    name, address = alias
    canvas = make_canvas(host=address)
    port = canvas.url.rsplit(":", 1)[1]
    host = f"http://{name}:{port}"

    refused = make_client(canvas.hook(host=host))
    with pytest.raises(CanvasConfigError, match="Refusing plain http://"):
        await refused.list_available_reports()
    assert canvas.counters.total_requests == 0

    allowed = make_client(canvas.hook(host=host, extra={"allow_http": True}))
    assert len(await allowed.list_available_reports()) > 0
    assert canvas.counters.requests["available"] == 1


async def test_missing_token_is_a_clear_error(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    client = make_client(canvas.hook(token=None))

    with pytest.raises(CanvasConfigError, match="has no API token") as info:
        await client.list_available_reports()

    assert "password field" in str(info.value)
    assert canvas.counters.total_requests == 0


async def test_blank_token_is_a_clear_error(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    client = make_client(canvas.hook(token="   "))

    with pytest.raises(CanvasConfigError, match="has no API token"):
        await client.get_report("grade_export_csv", 1)


@pytest.mark.parametrize(
    "pasted",
    [
        pytest.param(f"{TOKEN}\u200b", id="zero-width-space"),
        pytest.param(f"{TOKEN[:8]} {TOKEN[8:]}", id="space-inside"),
        pytest.param(f"{TOKEN}\r\nX-Injected: 1", id="header-injection"),
        pytest.param(f"{TOKEN}\u00e9", id="latin-1"),
    ],
)
async def test_a_token_with_a_stray_character_is_refused_without_showing_it(
    canvas: Canvas, make_client: Callable[..., Client], pasted: str
) -> None:
    client = make_client(canvas.hook(token=pasted))

    with pytest.raises(CanvasConfigError, match="Paste the token into the password field again") as info:
        await client.list_available_reports()

    assert TOKEN[:8] not in str(info.value)
    assert TOKEN[:8] not in repr(info.value)
    assert canvas.counters.total_requests == 0


async def test_a_token_pasted_with_its_bearer_prefix_is_refused_with_the_fix(
    canvas: Canvas, make_client: Callable[..., Client]
) -> None:
    client = make_client(canvas.hook(token=f"Bearer {TOKEN}"))

    with pytest.raises(CanvasConfigError, match="starts with 'Bearer '") as info:
        await client.list_available_reports()

    assert "the provider adds 'Bearer ' itself" in str(info.value)
    assert TOKEN not in str(info.value)
    assert canvas.counters.total_requests == 0


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        pytest.param('{"account_id": "2",}', "is not valid JSON (", id="trailing-comma"),
        pytest.param("[1, 2]", "must be a JSON object", id="list"),
        pytest.param({"accountid": "2"}, "unknown key(s) 'accountid'; it takes account_id and allow_http only", id="typo"),
        pytest.param({"allow-http": True}, "unknown key(s) 'allow-http'", id="dash"),
    ],
)  # fmt: skip
async def test_an_extra_that_would_be_misread_is_refused_before_any_request(
    canvas: Canvas, make_client: Callable[..., Client], extra: Any, problem: str
) -> None:
    # Read loosely, each of these meant the root account ("self") instead of the one intended.
    client = make_client(canvas.hook(extra=extra))

    if isinstance(extra, str) and AIRFLOW_BEFORE_3_2:
        # Airflow 3.1 refuses such an extra in a connection's environment variable itself.
        with pytest.raises(AirflowNotFoundException, match="isn't defined"):
            await client.list_available_reports()
    else:
        with pytest.raises(CanvasConfigError, match=re.escape(problem)):
            await client.list_available_reports()

    assert canvas.counters.total_requests == 0


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('{"account_id": "2",}', "is not valid JSON ("),
        ("[1, 2]", 'must be a JSON object, e.g. {"account_id": "2"}, not a JSON list'),
        ('{"account_id": "2", "accountid": "3"}', "unknown key(s) 'accountid'"),
    ],
)
def test_the_extra_is_read_strictly_whatever_airflow_version(extra: str, problem: str) -> None:
    # As a connection from the metadata database or a secrets backend hands it over: the text.
    conn = SimpleNamespace(conn_id="canvas_x", extra=extra)
    with pytest.raises(CanvasConfigError, match=re.escape(problem)):
        connection_extra(conn)
    assert connection_extra(SimpleNamespace(conn_id="c", extra=None)) == {}
    assert connection_extra(SimpleNamespace(conn_id="c", extra='{"account_id": "2"}')) == {"account_id": "2"}


async def test_credentials_in_the_host_are_refused(
    canvas: Canvas, make_client: Callable[..., Client]
) -> None:
    client = make_client(canvas.hook(host=f"http://admin:{TOKEN}@127.0.0.1:1"))

    with pytest.raises(CanvasConfigError, match="contains credentials") as info:
        await client.list_available_reports()

    assert TOKEN not in str(info.value)


async def test_unreachable_host_error_does_not_show_the_token(
    canvas: Canvas, make_client: Callable[..., Client]
) -> None:
    client = make_client(canvas.hook(host="http://127.0.0.1:9"))

    with pytest.raises(CanvasRetryExhaustedError) as info:
        await client.list_available_reports()

    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)


# --- the token never leaves the Canvas host -------------------------------------------------------


async def test_token_never_reaches_files_host_or_store_through_the_whole_chain(
    canvas: Canvas, client: Client
) -> None:
    started = await client.start_report("provisioning_csv", {"users": True, "terms": True})
    canvas.finish()
    report = await client.get_report("provisioning_csv", started.id)
    # A failure first, so the chain is walked twice.
    canvas.fault("store", "503", times=1)

    assert await client.download(report) == canvas.file_bytes(report.id)

    assert canvas.counters.requests["files"] >= 2
    assert canvas.counters.requests["store"] >= 2
    assert canvas.counters.files_auth_headers == 0


async def test_a_netrc_on_the_worker_adds_no_credentials_anywhere(
    canvas: Canvas, client: Client, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests sends ~/.netrc's Basic credentials to any host that has no auth of its own: over
    # the Bearer token on Canvas, and to the files host and the store.
    netrc = tmp_path / "netrc"
    netrc.write_text("default login worker-user password worker-netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    started = await client.start_report("provisioning_csv", {"users": True})
    canvas.finish()
    report = await client.get_report("provisioning_csv", started.id)

    assert await client.download(report) == canvas.file_bytes(report.id)

    assert canvas.counters.requests["store"] >= 1
    assert canvas.counters.files_auth_headers == 0


# --- repr and logs --------------------------------------------------------------------------------


async def test_token_not_in_reprs(canvas: Canvas, mode: str) -> None:
    hook = canvas.hook()
    if mode == "sync":
        settings, _account = hook._settings
        texts = [repr(hook), str(hook), repr(settings), str(settings), repr(hook.get_conn().settings)]
    else:
        settings, _account = await hook._asettings()
        texts = [repr(hook), repr(settings), repr((await hook.atransport()).settings)]
    assert settings.token == TOKEN  # the settings do hold it ...
    for text in texts:  # ... but never show it
        assert TOKEN not in text
    assert "token=***" in repr(settings)
    # The shared-session key identifies the token without containing it.
    assert TOKEN not in repr(settings.session_key)


async def test_token_not_in_any_log_record_during_a_full_run(
    canvas: Canvas, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "aiohttp", "airflow_provider_canvas_reports", "airflow"):
        caplog.set_level(logging.DEBUG, logger=name)

    started = await client.start_report("grade_export_csv", {"include_deleted": True})
    canvas.sim.advance(5)
    await client.get_report("grade_export_csv", started.id)
    canvas.finish()
    report = await client.get_report("grade_export_csv", started.id)
    await client.list_reports("grade_export_csv")
    body = await client.download(report)
    with pytest.raises(CanvasConfigError):
        await client.get_report("grade_export_csv", "not-a-number")

    assert body == canvas.file_bytes(report.id)
    assert caplog.records, "expected some DEBUG logging (urllib3 at least) to check"
    for record in caplog.records:
        texts = [
            record.getMessage(),
            str(record.msg),
            repr(record.args),
            record.__dict__.get("exc_text") or "",
        ]
        for text in texts:
            assert TOKEN not in text, f"token leaked in a log record from {record.name}"
    assert TOKEN not in caplog.text


# --- test_connection (the Airflow UI's "Test" button: sync only) -----------------------------------


def test_test_connection_ok(canvas: Canvas) -> None:
    ok, message = canvas.hook().test_connection()

    assert ok is True
    assert canvas.url in message
    assert "can read reports on account self" in message
    assert TOKEN not in message


def test_test_connection_bad_token(canvas: Canvas) -> None:
    ok, message = canvas.hook(token=BAD_TOKEN).test_connection()

    assert ok is False
    assert "token" in message
    assert "invalid or expired" in message
    assert BAD_TOKEN not in message


def test_test_connection_without_permission(canvas: Canvas) -> None:
    ok, message = canvas.hook(token=NO_PERMISSION_TOKEN).test_connection()

    assert ok is False
    assert "read_reports" in message
    assert "account self" in message


def test_test_connection_with_insufficient_scopes(canvas: Canvas) -> None:
    ok, message = canvas.hook(token=NO_SCOPE_TOKEN).test_connection()

    assert ok is False
    assert "scope" in message


def test_test_connection_missing_token(canvas: Canvas) -> None:
    ok, message = canvas.hook(token=None).test_connection()

    assert ok is False
    assert "no API token" in message


def test_test_connection_refused_http(canvas: Canvas) -> None:
    ok, message = canvas.hook(host="http://canvas.example.edu").test_connection()

    assert ok is False
    assert "Refusing plain http://" in message


def test_test_connection_unreachable(canvas: Canvas) -> None:
    hook = canvas.hook(host="http://127.0.0.1:9", policy=RetryPolicy())  # a task's budget: minutes
    ok, message = hook.test_connection()

    assert ok is False
    # The UI waits for this answer: two attempts, then the URL that failed (a wrong scheme shows here).
    assert message == (
        "Could not list the available reports on account self: could not connect to Canvas after 2 attempts. "
        "Check that the Canvas host (http://127.0.0.1:9) is reachable from the worker; the task can be retried."
    )


def test_test_connection_plain_http_server_behind_a_host_without_scheme(canvas: Canvas) -> None:
    # "host:port" means https://host:port; the simulator speaks plain HTTP there.
    hook = canvas.hook(host=canvas.url.removeprefix("http://"))
    ok, message = hook.test_connection()

    assert ok is False
    # The https:// the client chose is shown (once), so the wrong scheme can be seen.
    assert message.count(canvas.url.replace("http://", "https://")) == 1, message


def test_test_connection_on_an_unknown_account(canvas: Canvas) -> None:
    ok, message = canvas.hook(extra={"account_id": "999"}).test_connection()

    assert ok is False
    assert "account_id" in message


def test_the_connections_port_field_is_where_the_token_goes(canvas: Canvas) -> None:
    # A JSON (or URI) connection keeps the port apart from the host: it must not be dropped, or the
    # token would go to the scheme's default port instead.
    port = urlsplit(canvas.url).port
    canvas.monkeypatch.setenv(
        "AIRFLOW_CONN_CANVAS_WITH_PORT",
        json.dumps({"conn_type": "canvas", "host": "http://127.0.0.1", "port": port, "password": TOKEN}),
    )
    hook = CanvasHook("canvas_with_port", retry_policy=RetryPolicy(max_attempts=1))
    try:
        assert hook.base_url == f"http://127.0.0.1:{port}"
        assert hook.list_available_reports()  # answered by the simulator on that port
    finally:
        hook.close()
