"""CanvasHook: the `canvas` connection and every account-reports endpoint, sync and async."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_canvas_reports.canvas import api, endpoints, parameters
from airflow_provider_canvas_reports.canvas.errors import (
    CanvasConfigError,
    CanvasError,
    InvalidTokenError,
    PermissionDeniedError,
)
from airflow_provider_canvas_reports.canvas.polling import PreviousRun, previous_run
from airflow_provider_canvas_reports.canvas.report import AvailableReport, Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.compat import BaseHook, get_async_connection
from airflow_provider_canvas_reports.transport.settings import CanvasSettings

if TYPE_CHECKING:
    # requests and aiohttp load when a task first talks to Canvas, not when a DAG file imports an
    # operator: together they are ~220 ms of every DAG parse (benchmarks/imports.py).
    from airflow_provider_canvas_reports.transport.aio import AsyncDownload, AsyncTransport
    from airflow_provider_canvas_reports.transport.sync import Download, SyncTransport


#: `test_connection` runs while a person waits in the UI: two attempts, about 20 s at most.
CONNECTION_TEST_POLICY = RetryPolicy(
    max_attempts=2, max_elapsed=20.0, base_delay=1.0, max_delay=2.0, connect_timeout=5.0, read_timeout=8.0
)


#: What the connection's extra may hold. Anything else is most likely a misspelling, and a
#: misspelled account_id would quietly run every report on the root account instead.
EXTRA_KEYS = ("account_id", "allow_http")


def connection_extra(conn: Any) -> dict[str, Any]:
    """The connection's extra, read strictly (Airflow's extra_dejson logs bad JSON and reads {})."""
    raw = getattr(conn, "extra", None)
    if raw is None or raw == "":
        return {}
    name = getattr(conn, "conn_id", None)
    try:
        extra = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except ValueError as exc:
        # exc.msg and the position only: the extra's text is not shown, in case it holds a secret.
        raise CanvasConfigError(
            f"The extra of the Canvas connection '{name}' is not valid JSON ({getattr(exc, 'msg', exc)} at "
            f"character {getattr(exc, 'pos', '?')}). Write it as a JSON object, e.g. "
            '{"account_id": "2"}.'
        ) from None
    if not isinstance(extra, dict):
        raise CanvasConfigError(
            f"The extra of the Canvas connection '{name}' must be a JSON object, e.g. "
            f'{{"account_id": "2"}}, not a JSON {type(extra).__name__}.'
        )
    unknown = sorted(str(key) for key in extra if key not in EXTRA_KEYS)
    if unknown:
        raise CanvasConfigError(
            f"The extra of the Canvas connection '{name}' has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"it takes {' and '.join(EXTRA_KEYS)} only. Fix the spelling (a misspelled account_id would "
            "run the reports on the root account), or remove the key."
        )
    return extra


def settings_from_connection(conn: Any, policy: RetryPolicy) -> tuple[CanvasSettings, str]:
    """Base URL, token and default account from an Airflow connection, with clear errors."""
    extra = connection_extra(conn)
    # Our own safety switch, so only an unmistakable true opens it (not Canvas's loose booleans).
    flag = extra.get("allow_http", False)
    allow_http = (
        flag is True or flag == 1 or (isinstance(flag, str) and flag.strip().lower() in ("true", "1"))
    )
    base = endpoints.base_url(conn.host, allow_http=allow_http, port=getattr(conn, "port", None) or None)
    token = (conn.password or "").strip()
    if token[:7].lower() == "bearer ":
        raise CanvasConfigError(
            f"The API token of the Canvas connection '{conn.conn_id}' starts with 'Bearer '. Put the token "
            "alone in the password field: the provider adds 'Bearer ' itself."
        )
    if not token:
        raise CanvasConfigError(
            f"The Canvas connection '{conn.conn_id}' has no API token. Put the token in the connection's "
            "password field (Account > Settings > New Access Token in Canvas)."
        )
    if not (token.isascii() and token.isprintable()) or any(ch.isspace() for ch in token):
        # Often an invisible character pasted along with the token. HTTP libraries would fail on it
        # with errors that quote the whole header, so it is refused here, without showing it.
        raise CanvasConfigError(
            f"The API token of the Canvas connection '{conn.conn_id}' contains a space, a control "
            "character or a non-ASCII character (often an invisible one pasted with it). Paste the "
            "token into the password field again, exactly as Canvas showed it."
        )
    # Blank (the form's field left empty, or only spaces) is no default account: the root one.
    account = str(extra.get("account_id") or "").strip() or "self"
    endpoints.account_segment(account)  # validate early, with the same message as everywhere
    return CanvasSettings(base, token, policy), account


class CanvasHook(BaseHook):
    """Talks to one Canvas through the `canvas` connection.

    :param canvas_conn_id: the Airflow connection: host = Canvas URL, password = API token,
        extra `account_id` (default account, else `self`) and `allow_http`.
    :param retry_policy: bounds for retries on throttling, 5xx and network failures.
    """

    conn_name_attr = "canvas_conn_id"
    default_conn_name = "canvas_default"
    conn_type = "canvas"
    hook_name = "Canvas LMS"

    def __init__(
        self,
        canvas_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.canvas_conn_id = canvas_conn_id
        self.retry_policy = RetryPolicy() if retry_policy is None else RetryPolicy.coerce(retry_policy)
        self._async_settings: tuple[CanvasSettings, str] | None = None
        self._async_transport: AsyncTransport | None = None
        # The last status request built: a trigger asks for the same report on every poll.
        self._status_call: tuple[tuple[str, str, int | str], api.Call[Report]] | None = None

    def __repr__(self) -> str:
        return f"CanvasHook(canvas_conn_id={self.canvas_conn_id!r})"

    # -- connection ------------------------------------------------------------------------
    @cached_property
    def _settings(self) -> tuple[CanvasSettings, str]:
        return settings_from_connection(self.get_connection(self.canvas_conn_id), self.retry_policy)

    async def _asettings(self) -> tuple[CanvasSettings, str]:
        # The triggerer's event loop must not call the sync get_connection (it deadlocks in Airflow 3).
        if self._async_settings is None:
            conn = await get_async_connection(self.canvas_conn_id)
            self._async_settings = settings_from_connection(conn, self.retry_policy)
        return self._async_settings

    @cached_property
    def transport(self) -> SyncTransport:
        from airflow_provider_canvas_reports.transport.sync import SyncTransport

        return SyncTransport(self._settings[0])

    def get_conn(self) -> SyncTransport:
        return self.transport

    async def atransport(self) -> AsyncTransport:
        if self._async_transport is None:
            from airflow_provider_canvas_reports.transport.aio import AsyncTransport

            # It holds no connection (sessions are looked up per event loop), so one serves every loop.
            self._async_transport = AsyncTransport((await self._asettings())[0])
        return self._async_transport

    @property
    def base_url(self) -> str:
        return self._settings[0].base_url

    @property
    def turn_key(self) -> str:
        """Names this connection's (host, token) pair for tasks taking turns on one worker host."""
        return self._settings[0].turn_key

    @property
    def default_account_id(self) -> str:
        return self._settings[1]

    def account(self, account_id: str | int | None) -> str:
        return str(account_id) if account_id not in (None, "") else self.default_account_id

    async def aaccount(self, account_id: str | int | None) -> str:
        return str(account_id) if account_id not in (None, "") else (await self._asettings())[1]

    def reports_page_url(self, account_id: str | int | None = None) -> str:
        return endpoints.account_reports_page(self.base_url, self.account(account_id))

    def close(self) -> None:
        if "transport" in self.__dict__:
            self.transport.close()

    # -- sync endpoints --------------------------------------------------------------------
    def list_available_reports(self, account_id: str | int | None = None) -> list[AvailableReport]:
        call = api.available(self.account(account_id))
        return list(self.transport.pages(call))

    def validate_parameters(
        self, report: str, params: Mapping[str, Any] | None, account_id: str | int | None = None
    ) -> dict[str, Any]:
        """Check a report and its parameters against the account's catalogue; nothing is started."""
        return self.validate_report(report, params, account_id)[0]

    def validate_report(
        self, report: str, params: Mapping[str, Any] | None, account_id: str | int | None = None
    ) -> tuple[dict[str, Any], AvailableReport]:
        """`validate_parameters`, also returning the report's entry in the catalogue.

        The entry's ``last_run`` (the newest run of this report, any status and parameters) can
        spare the wait its index lookup (see `canvas.polling.listed_previous_run`).
        """
        prepared = parameters.prepare(params, skip_message=None)
        account = self.account(account_id)
        entry = parameters.validate(report, prepared, self.list_available_reports(account), account)
        return prepared, entry

    def start_report(
        self,
        report: str,
        params: Mapping[str, Any] | None = None,
        *,
        account_id: str | int | None = None,
        skip_message: bool = True,
    ) -> Report:
        """Start a report run. Never repeated once it may have reached Canvas."""
        prepared = parameters.prepare(params, skip_message=skip_message)
        return self.transport.call(api.start(self.account(account_id), report, prepared))

    def list_reports(self, report: str, account_id: str | int | None = None) -> Iterator[Report]:
        """The runs of one report type, newest first, page by page."""
        return self.transport.pages(api.index(self.account(account_id), report))

    def get_report(self, report: str, report_id: int | str, account_id: str | int | None = None) -> Report:
        return self.transport.call(api.status(self.account(account_id), report, report_id))

    def previous_run(
        self, report: str, report_id: int, account_id: str | int | None = None
    ) -> PreviousRun | None:
        """The most recent complete run with the parameters of run `report_id`, and how long it ran.

        A prior for adaptive polling (``expected_run_time``): a nightly report takes about as long
        as last night's. One request, the first page of the report index (newest first), where run
        `report_id` itself shows its parameters (see `canvas.polling.previous_run`). None when no
        such run is on that page.
        """
        runs = self.transport.call(api.index(self.account(account_id), report))
        return previous_run(runs, report_id)

    def delete_report(self, report: str, report_id: int | str, account_id: str | int | None = None) -> Report:
        return self.transport.call(api.delete(self.account(account_id), report, report_id))

    def abort_report(self, report: str, report_id: int | str, account_id: str | int | None = None) -> Report:
        return self.transport.call(api.abort(self.account(account_id), report, report_id))

    def cancel_report(
        self, report: str, report_id: int | str, account_id: str | int | None = None
    ) -> Report | None:
        """Stop a run that is not finished: abort it while running, delete it once it compiles.

        Returns the report as Canvas left it, or None when it had already finished. A report
        still queued (`created`) is returned untouched: Canvas cannot stop it before it starts.
        """
        return self.transport.run_plan(api.cancel(self.account(account_id), report, report_id))

    def open_report_file(self, report: Report) -> AbstractContextManager[Download]:
        """Stream a complete report's file through Canvas's redirect chain.

        The token goes to the Canvas host only; the body is checked against the attachment.
        """
        return self.transport.download(report)

    def test_connection(self) -> tuple[bool, str]:
        """Check the token, then the `read_reports` permission on the default account.

        Airflow's UI and API wait for the answer, so it makes at most two attempts within about
        20 seconds (a task's retry budget is minutes), and a failure names the URL it tried.
        """
        probe = type(self)(self.canvas_conn_id, retry_policy=CONNECTION_TEST_POLICY)
        try:
            settings, account = probe._settings
            available = probe.list_available_reports(account)
        except InvalidTokenError:
            return (
                False,
                "Canvas rejected the API token (invalid or expired). Put a current token in the password.",
            )
        except PermissionDeniedError:
            return False, (
                f"The token is valid but lacks the 'read_reports' permission on account {probe.default_account_id}."
            )
        except CanvasConfigError as exc:  # the connection itself is wrong: nothing was sent
            return False, str(exc)
        except CanvasError as exc:
            said = str(exc)
            if probe.base_url.rstrip("/") not in said:  # the URL it tried, shown once
                said = f"{said} (Canvas URL: {probe.base_url})"
            return False, said
        finally:
            probe.close()
        return True, (
            f"Connected to {settings.base_url}: the token can read reports on account {account} "
            f"({len(available)} reports available)."
        )

    # -- async endpoints (the trigger) -----------------------------------------------------
    async def alist_available_reports(self, account_id: str | int | None = None) -> list[AvailableReport]:
        transport = await self.atransport()
        return [item async for item in transport.pages(api.available(await self.aaccount(account_id)))]

    async def astart_report(
        self,
        report: str,
        params: Mapping[str, Any] | None = None,
        *,
        account_id: str | int | None = None,
        skip_message: bool = True,
    ) -> Report:
        prepared = parameters.prepare(params, skip_message=skip_message)
        return await (await self.atransport()).call(
            api.start(await self.aaccount(account_id), report, prepared)
        )

    async def alist_reports(self, report: str, account_id: str | int | None = None) -> AsyncIterator[Report]:
        transport = await self.atransport()
        async for item in transport.pages(api.index(await self.aaccount(account_id), report)):
            yield item

    async def aget_report(
        self, report: str, report_id: int | str, account_id: str | int | None = None
    ) -> Report:
        key = (await self.aaccount(account_id), report, report_id)
        # Built once per report rather than per poll: validating and quoting the path, the context
        # and the request objects are ~20 us, a few percent of a poll.
        if self._status_call is None or self._status_call[0] != key:
            self._status_call = (key, api.status(*key))
        return await (await self.atransport()).call(self._status_call[1])

    async def aprevious_run(
        self, report: str, report_id: int, account_id: str | int | None = None
    ) -> PreviousRun | None:
        """Async twin of `previous_run`."""
        transport = await self.atransport()
        runs = await transport.call(api.index(await self.aaccount(account_id), report))
        return previous_run(runs, report_id)

    async def adelete_report(
        self, report: str, report_id: int | str, account_id: str | int | None = None
    ) -> Report:
        return await (await self.atransport()).call(
            api.delete(await self.aaccount(account_id), report, report_id)
        )

    async def aabort_report(
        self, report: str, report_id: int | str, account_id: str | int | None = None
    ) -> Report:
        return await (await self.atransport()).call(
            api.abort(await self.aaccount(account_id), report, report_id)
        )

    async def acancel_report(
        self, report: str, report_id: int | str, account_id: str | int | None = None
    ) -> Report | None:
        """Async twin of `cancel_report`."""
        transport = await self.atransport()
        return await transport.run_plan(api.cancel(await self.aaccount(account_id), report, report_id))

    async def aopen_report_file(self, report: Report) -> AbstractAsyncContextManager[AsyncDownload]:
        return (await self.atransport()).download(report)

    # -- connection form (Airflow < 3.2 reads these; 3.2+ reads the provider info) ----------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from airflow_provider_canvas_reports.get_provider_info import get_provider_info

        conn = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": list(conn.get("hidden-fields", [])),
            "relabeling": dict(conn.get("relabeling", {})),
            "placeholders": dict(conn.get("placeholders", {})),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, StringField

        return {
            "account_id": StringField(lazy_gettext("Account ID"), widget=BS3TextFieldWidget()),
            "allow_http": BooleanField(
                lazy_gettext("Allow plain http:// (trusted networks only)"), default=False
            ),
        }
