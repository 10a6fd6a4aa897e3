"""DownloadReportOperator: land a finished Canvas report's file(s) in object storage.

Public import path: ``airflow_provider_canvas_reports.operators.reports`` (re-exported there).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import Asset, AssetAlias, BaseOperator, ObjectStoragePath

from airflow_provider_canvas_reports.operators._arguments import count, duration, flag, retry_policy
from airflow_provider_canvas_reports.operators._common import DEFAULT_CONN_ID, report_id_argument
from airflow_provider_canvas_reports.operators._turns import take_turn
from airflow_provider_canvas_reports.storage.model import LandedObject, OverwritePolicy, ZipLimits

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_canvas_reports.canvas.report import Report
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

# Every DAG parse imports this module: the hook, Canvas's download checks and the storage package's
# I/O modules load when a task runs (inside the methods); a parse needs only the value types the
# constructor validates.

T = TypeVar("T")

DEFAULT_ASSET_ALIAS = "canvas-reports"
_MIB = 1 << 20


def _format_size(size: int | None) -> str:
    if size is None:
        return "unknown size"
    if size < _MIB:
        return f"{size:,} bytes"
    return f"{size / _MIB:,.1f} MiB"


def _progress_log(expected: int | None, label: str, logger: logging.Logger | Any) -> Callable[[int], None]:
    """A storage ``progress`` callback logging every ~10% (or 64 MiB when the size is unknown)."""
    step = max(expected // 10, 8 * _MIB) if expected else 64 * _MIB
    next_mark = step
    started = time.monotonic()

    def progress(received: int) -> None:
        nonlocal next_mark
        if received >= next_mark:
            rate = received / _MIB / max(time.monotonic() - started, 1e-6)
            share = f" ({100 * received // expected}%)" if expected else ""
            logger.info("%s: %s received%s, %.1f MiB/s", label, _format_size(received), share, rate)
            while next_mark <= received:
                next_mark += step

    return progress


def asset_uri(uri: str) -> str:
    """The object's URI as an Asset's: its name escaped where Airflow would cut it.

    Airflow normalises an asset URI by dropping its query and fragment, so an object named
    ``a#b.csv`` or ``a?b.csv`` would be announced as ``a`` (and several objects as one asset).
    """
    return uri.replace("%", "%25").replace("?", "%3F").replace("#", "%23")


class DownloadReportOperator(BaseOperator):
    """Download a complete Canvas account report into a folder of object storage.

    The file is streamed from Canvas through its redirect chain (the token goes to the Canvas host
    only), checked (not an HTML page, the attachment's exact size, ZIP magic) and committed
    atomically, so the destination never holds a partial or unverified object. Nothing is ever
    held whole in memory.

    A CSV report lands as one object named after the attachment. A ZIP report lands, with
    ``extract_zip=True``, as one object per member under the member's name (``users.csv``, ...;
    a ``/`` in it, as in a term name of ``mgp_grade_export_csv``, becomes ``_``); it is spooled
    to local disk first because reading a ZIP needs seeking. Every member is staged and verified
    before the first is committed: a ZIP that fails part-way leaves the folder as it was, objects
    of an earlier run under the same names included. With ``extract_zip=False`` the ZIP lands as
    one object.

    Returns (XCom ``return_value``) ``[{"uri", "name", "size", "sha256"}, ...]``, one dict per
    object, and emits one asset event per object through the asset alias ``asset_alias``; its
    extra holds ``report``, ``report_id``, ``uri`` (the object's own URI: read it by this one, as
    the asset's URI escapes ``%``, ``?`` and ``#``), ``name``, ``size`` and ``sha256``.

    :param report: the report type, e.g. ``provisioning_csv`` (templated).
    :param report_id: the report run's id, e.g. ``"{{ ti.xcom_pull('start')['id'] }}"`` (templated).
    :param destination: the folder: a URL (``file:///data/``, ``s3://bucket/prefix/``, ...) or an
        ``ObjectStoragePath`` (templated).
    :param dest_conn_id: the Airflow connection for the destination's filesystem (e.g. AWS);
        templated, and an empty string means none.
    :param extract_zip: land a ZIP report's members instead of the ZIP itself.
    :param overwrite: ``"replace"`` (default), ``"fail"`` or ``"skip_identical"``.
    :param canvas_conn_id: the ``canvas`` connection (templated).
    :param account_id: Canvas account (templated); default: the connection's, else ``self``.
    :param zip_limits: limits for ZIP extraction (a ``ZipLimits`` or a dict of its fields);
        defaults guard against ZIP bombs.
    :param asset_alias: name of the ``AssetAlias`` the landed objects are announced through
        (added to ``outlets``); ``None`` emits no asset events.
    :param download_attempts: attempts at the whole download when it fails in transit (cut
        short, wrong size, an HTML page); nothing from a failed attempt is ever committed.
    :param download_retry_delay: seconds before the second attempt; doubled for each next one.
    :param spool_dir: local folder for spooling ZIPs (needs room for the whole ZIP); default:
        the system temp folder.
    :param canvas_retry_policy: the client's bounds for retries of each request (throttling,
        5xx, resets) inside one download attempt.
    :param start_spacing: download tasks released together take turns for their first request
        to Canvas, as start tasks do: each waits its place times this (seconds or timedelta,
        default 0.2 s). Its place is its rank, by task_id, among the DAG's download tasks with the
        same upstream tasks, plus its map index when mapped (all instances of a mapped download
        are released together when the start tasks it maps over are done), counted modulo 50:
        at most 9.8 s at the default. Then it takes its worker host's next turn on the token,
        as start tasks do. A task alone never waits; 0 turns both off.
    """

    template_fields: Sequence[str] = (
        "report",
        "report_id",
        "destination",
        "dest_conn_id",
        "account_id",
        "canvas_conn_id",
    )
    ui_color = "#e8f3fc"
    #: Seconds a temp file of ours must be untouched before a new try removes it. 0: only this
    #: task's object names are cleaned, and a writer of those names now is an earlier try of this
    #: task (killed, or a zombie that was superseded) or a racer that could not win either.
    stale_partial_age: float = 0.0

    def __init__(
        self,
        *,
        report: str,
        report_id: int | str,
        destination: str | ObjectStoragePath,
        dest_conn_id: str | None = None,
        extract_zip: bool = True,
        overwrite: OverwritePolicy | str = OverwritePolicy.REPLACE,
        canvas_conn_id: str = DEFAULT_CONN_ID,
        account_id: int | str | None = None,
        zip_limits: ZipLimits | Mapping[str, Any] | None = None,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        download_attempts: int = 3,
        download_retry_delay: float = 5.0,
        spool_dir: str | os.PathLike[str] | None = None,
        canvas_retry_policy: RetryPolicy | Mapping[str, float] | None = None,
        start_spacing: timedelta | float = 0.2,
        **kwargs: Any,
    ) -> None:
        if asset_alias:
            outlets = kwargs.pop("outlets", None)
            if outlets is None:
                outlets = []
            elif not isinstance(outlets, (list, tuple)):
                outlets = [outlets]
            outlets = list(outlets)
            if not any(isinstance(o, AssetAlias) and o.name == asset_alias for o in outlets):
                outlets.append(AssetAlias(asset_alias))
            kwargs["outlets"] = outlets
        super().__init__(**kwargs)
        self.report = report
        self.report_id = report_id
        self.destination = destination
        self.dest_conn_id = dest_conn_id
        self.extract_zip = flag(extract_zip, name="extract_zip")
        self.overwrite = OverwritePolicy.coerce(overwrite)  # fail at parse time on a typo
        self.canvas_conn_id = canvas_conn_id
        self.account_id = account_id
        # Built now, so a typo fails when the DAG is parsed, not after a long download.
        self.zip_limits = (
            zip_limits
            if zip_limits is None or isinstance(zip_limits, ZipLimits)
            else ZipLimits(**dict(zip_limits))
        )
        self.asset_alias = asset_alias
        self.download_attempts = count(download_attempts, name="download_attempts")
        self.download_retry_delay = duration(
            download_retry_delay, name="download_retry_delay", allow_zero=True
        )
        if spool_dir is not None and not isinstance(spool_dir, (str, os.PathLike)):
            raise TypeError(f"spool_dir must be a local folder path or None, not {spool_dir!r}")
        self.spool_dir = None if spool_dir is None else os.fspath(spool_dir)
        self.canvas_retry_policy = retry_policy(canvas_retry_policy)
        self.start_spacing = duration(start_spacing, name="start_spacing", allow_zero=True)
        # Filled by execute() for get_openlineage_facets_on_complete (same operator instance).
        self._lineage: dict[str, Any] | None = None

    # -- execution -------------------------------------------------------------------------
    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

        hook = CanvasHook(self.canvas_conn_id, retry_policy=self.canvas_retry_policy)
        try:
            landed = self._download(hook, context)
        finally:
            hook.close()
        return [obj.as_dict() for obj in landed]

    def _download(self, hook: CanvasHook, context: Context) -> list[LandedObject]:
        from airflow_provider_canvas_reports.canvas.download import is_zip, require_file
        from airflow_provider_canvas_reports.canvas.errors import DownloadError
        from airflow_provider_canvas_reports.canvas.report import Phase
        from airflow_provider_canvas_reports.storage.destination import describe, resolve_destination
        from airflow_provider_canvas_reports.storage.spool import clean_stale_spools

        report_id = report_id_argument(self.report_id)
        # Checked before Canvas is asked anything. A template that renders to "" (no lake
        # connection configured) means none.
        folder = resolve_destination(self.destination, self.dest_conn_id or None)
        account = hook.account(self.account_id)
        take_turn(
            self,
            context,
            kind=DownloadReportOperator,
            spacing=self.start_spacing,
            jitter=0.0,
            key=hook.turn_key,
        )
        report = hook.get_report(self.report, report_id, account)
        try:
            require_file(report)
        except DownloadError as exc:
            if report.phase is Phase.FAILURE:
                # error/aborted/deleted never grows a file: retrying the task cannot help.
                raise AirflowFailException(str(exc)) from None
            raise
        attachment = report.attachment
        assert attachment is not None  # require_file checked it

        zipped = is_zip(report)
        self.log.info(
            "Landing Canvas report %s #%s (%s, %s) into %s%s",
            report.report,
            report.id,
            attachment.name or "unnamed file",
            _format_size(attachment.size),
            describe(folder),
            ", extracting its members" if zipped and self.extract_zip else "",
        )
        started = time.monotonic()
        if zipped and self.extract_zip:
            owner = _task_instance_key(context)
            if owner and (stale := clean_stale_spools(owner, self.spool_dir)):
                self.log.info("Removed %d spool file(s) left by an earlier, killed try", len(stale))
            landed = self._retrying(report, lambda: self._land_zip_members(hook, report, folder, owner))
        else:
            name = self._object_name(report, zipped)
            self._clean_partials(folder, [name])
            landed = self._retrying(report, lambda: [self._land_file(hook, report, folder / name)])
        elapsed = time.monotonic() - started
        for obj in landed:
            self.log.info(
                "%s %s (%s, sha256 %s)",
                "Kept identical" if obj.skipped else "Landed",
                obj.uri,
                _format_size(obj.size),
                obj.sha256,
            )
        total = sum(obj.size for obj in landed)
        self.log.info("Landed %d object(s), %s, in %.1fs", len(landed), _format_size(total), elapsed)

        self._emit_asset_events(context, report, landed)
        self._lineage = {
            "canvas_base_url": hook.base_url,
            "account": account,
            "report": report.report,
            "report_id": report.id,
            "landed": [obj.as_dict() for obj in landed],
        }
        return landed

    @staticmethod
    def _object_name(report: Report, zipped: bool) -> str:
        from airflow_provider_canvas_reports.storage.names import safe_name

        attachment = report.attachment
        name = attachment.name if attachment else None
        if not name:
            name = f"{report.report}_{report.id}.{'zip' if zipped else 'csv'}"
        # Canvas names are plain ("provisioning_csv_26_Nov_2026_12-ab.csv"); anything that could
        # escape the folder is refused (UnsafeNameError), never rewritten.
        return safe_name(name)

    def _land_file(self, hook: CanvasHook, report: Report, target: ObjectStoragePath) -> LandedObject:
        from airflow_provider_canvas_reports.storage.writer import write_stream

        # Straight from the HTTP body to the store: no local copy for a CSV or an unextracted ZIP.
        with hook.open_report_file(report) as download:
            return write_stream(
                download.body,
                target,
                expected_size=download.expected_size,
                overwrite=self.overwrite,
                progress=_progress_log(download.expected_size, f"report #{report.id}", self.log),
            )

    def _land_zip_members(
        self, hook: CanvasHook, report: Report, folder: ObjectStoragePath, owner: str | None
    ) -> list[LandedObject]:
        from airflow_provider_canvas_reports.storage.spool import spool_stream
        from airflow_provider_canvas_reports.storage.zipfiles import extract_zip, landing_names

        # A ZIP's directory is at its end, so it is spooled to local disk, then extracted member
        # by member, each streamed and verified into its own object, all committed at the end.
        with (
            hook.open_report_file(report) as download,
            spool_stream(
                download.body,
                expected_size=download.expected_size,
                progress=_progress_log(download.expected_size, f"report #{report.id}", self.log),
                dir=self.spool_dir,
                owner=owner,
            ) as spooled,
        ):
            self.log.info(
                "Received the ZIP (%s, sha256 %s); extracting", _format_size(spooled.size), spooled.sha256
            )
            self._clean_partials(folder, landing_names(spooled.path))
            return extract_zip(
                spooled.path,
                folder,
                limits=self.zip_limits,
                overwrite=self.overwrite,
                name=report.attachment.name if report.attachment else None,
            )

    def _clean_partials(self, folder: ObjectStoragePath, names: list[str]) -> None:
        # Leftovers of an earlier try killed mid-write (kill -9, OOM): only our own object names,
        # so other files in the folder (and other tasks' objects) are never touched.
        from airflow_provider_canvas_reports.storage.cleanup import clean_stale_partials
        from airflow_provider_canvas_reports.storage.destination import describe

        removed = clean_stale_partials(folder, names, min_age=self.stale_partial_age)
        if removed:
            self.log.info(
                "Removed %d leftover(s) of an earlier, killed try in %s", len(removed), describe(folder)
            )

    def _retrying(self, report: Report, attempt: Callable[[], T]) -> T:
        """Run the whole download again (from Canvas's file URL) after a failure in transit.

        Only transport and verification failures are retried; a refused name, a ZIP bomb or an
        existing object under overwrite='fail' fail at once. A failed attempt commits nothing.
        """
        from airflow_provider_canvas_reports.canvas.errors import DownloadError
        from airflow_provider_canvas_reports.storage.errors import VerificationError

        for number in range(1, self.download_attempts + 1):
            try:
                return attempt()
            except (DownloadError, VerificationError) as exc:
                if number >= self.download_attempts:
                    raise
                delay = self.download_retry_delay * 2 ** (number - 1)
                self.log.warning(
                    "Download attempt %d of %d for report #%s failed: %s Retrying in %.1fs.",
                    number,
                    self.download_attempts,
                    report.id,
                    exc,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _emit_asset_events(self, context: Context, report: Report, landed: Sequence[LandedObject]) -> None:
        if not self.asset_alias:
            return
        alias = AssetAlias(self.asset_alias)
        if not any(isinstance(o, AssetAlias) and o.name == alias.name for o in self.outlets):
            return  # someone removed it from outlets after construction: the runner would refuse
        events = context["outlet_events"][alias]
        for obj in landed:
            events.add(
                Asset(asset_uri(obj.uri)),
                extra={
                    "report": report.report,
                    "report_id": report.id,
                    # The object's own URI, to read it back by: the asset's has `%`, `?` and `#`
                    # escaped (asset_uri), and a consumer cannot tell which `%xx` were escapes.
                    "uri": obj.uri,
                    "name": obj.name,
                    "size": obj.size,
                    "sha256": obj.sha256,
                },
            )

    # -- OpenLineage -----------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        if self._lineage is None:
            return None
        from airflow_provider_canvas_reports.lineage import download_lineage

        return download_lineage(**self._lineage)


def _task_instance_key(context: Context) -> str | None:
    """A short id of this task instance (all its tries), to name and find its spool files."""
    ti = context.get("ti")
    if ti is None:
        return None
    key = f"{ti.dag_id}\x00{ti.task_id}\x00{ti.run_id}\x00{getattr(ti, 'map_index', -1)}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
