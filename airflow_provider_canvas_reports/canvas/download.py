"""Checks on a report download, decided before anything reaches the destination."""

from __future__ import annotations

from collections.abc import Mapping

from airflow_provider_canvas_reports.canvas.errors import DownloadError
from airflow_provider_canvas_reports.canvas.report import Phase, Report
from airflow_provider_canvas_reports.canvas.retry import header

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml")


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


def check_response(status: int, headers: Mapping[str, str], report: Report) -> int | None:
    """The final answer of the redirect chain: 200, not an HTML page, and the attachment's size.

    Returns the size the body must have.
    """
    if status != 200:
        raise DownloadError(
            f"The download of report #{report.id} ended with HTTP {status} instead of the file. The link may "
            "have expired: run the download task again."
        )
    ctype = (header(headers, "content-type") or "").lower()
    if "text/html" in ctype:
        raise DownloadError(
            f"The download of report #{report.id} returned an HTML page (a login or error page) instead "
            "of the report file. Check the token can read files on this account, then retry."
        )
    declared = header(headers, "content-length")
    length = int(declared) if declared and declared.strip().isdigit() else None
    expected = report.attachment.size if report.attachment else None
    if length is not None and expected is not None and length != expected:
        raise DownloadError(
            f"The download of report #{report.id} announces {length} bytes but Canvas says the file has "
            f"{expected}. Nothing was written; retry the task."
        )
    return expected if expected is not None else length


def check_first_bytes(chunk: bytes, report: Report) -> None:
    """Catch a login page served with a file's content type, and a CSV posing as a ZIP."""
    head = chunk[:64].lstrip().lower()
    if head.startswith(HTML_STARTS):
        raise DownloadError(
            f"The download of report #{report.id} is an HTML page, not the report file. Nothing was written."
        )
    if is_zip(report) and chunk and not chunk.startswith(ZIP_MAGIC):
        raise DownloadError(
            f"The download of report #{report.id} should be a ZIP but is not one. Nothing was written."
        )


def check_size(received: int, expected: int | None, report: Report) -> None:
    if expected is not None and received != expected:
        raise DownloadError(
            f"The download of report #{report.id} was cut short: received {received} of {expected} bytes. "
            "Nothing was written; retry the task."
        )
