"""The Canvas Report object, parsed tolerantly from Canvas JSON (its states: `states`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_canvas_reports.canvas.errors import CanvasResponseError

# The states are re-exported: they are part of what a Report means to its users.
from airflow_provider_canvas_reports.canvas.states import FAILURE_STATES as FAILURE_STATES
from airflow_provider_canvas_reports.canvas.states import KNOWN_STATES, Phase, classify
from airflow_provider_canvas_reports.canvas.states import SUCCESS_STATES as SUCCESS_STATES
from airflow_provider_canvas_reports.canvas.states import WAITING_STATES as WAITING_STATES

log = logging.getLogger(__name__)


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 with offset; None for missing or unparseable values (logged, never raised)."""
    if value is None or not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        log.warning("Ignoring unparseable Canvas timestamp %r", value[:64])
        return None


def _as_int(value: Any) -> int | None:
    if type(value) is int:  # the usual case, checked first (bool is a subclass, not this type)
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):  # not NaN, not infinite
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except (ValueError, OverflowError):  # "nan", "inf", "1e400"
            return None
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        return None
    return number if math.isfinite(number) else None


def _as_progress(value: Any) -> int | None:
    """Progress clamped to 0..100; odd values (strings, floats, out of range) tolerated."""
    number = _as_int(value)
    if number is None:
        return None
    return max(0, min(100, number))


@dataclass(frozen=True)
class Attachment:
    """The subset of a Canvas File a download needs."""

    id: int | None
    filename: str | None
    display_name: str | None
    content_type: str | None
    size: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(
            id=_as_int(data.get("id")),
            filename=data.get("filename") if isinstance(data.get("filename"), str) else None,
            display_name=data.get("display_name") if isinstance(data.get("display_name"), str) else None,
            content_type=data.get("content-type") if isinstance(data.get("content-type"), str) else None,
            size=_as_int(data.get("size")),
        )

    @property
    def name(self) -> str | None:
        return self.filename or self.display_name


@dataclass(frozen=True, slots=True)
class Report:
    """A Canvas account report run.

    `raw` keeps the JSON exactly as Canvas sent it; operators return `as_json()` to XCom.
    """

    id: int
    report: str
    status: str
    progress: int | None = None
    current_line: int | None = None
    file_url: str | None = None
    attachment: Attachment | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    run_time: float | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Any, *, report_type: str | None = None) -> Report:
        # json.loads gives dicts: the exact type check spares the slower ABC check on every poll.
        if type(data) is not dict and not isinstance(data, Mapping):
            raise CanvasResponseError(
                f"Canvas answered with {type(data).__name__} where a Report object was expected"
            )
        report_id = _as_int(data.get("id"))
        if report_id is None:
            raise CanvasResponseError("Canvas answered with a Report object that has no id")
        status = data.get("status")
        if not isinstance(status, str):
            status = "unknown"
        attachment = data.get("attachment")
        params = data.get("parameters")
        file_url = data.get("file_url")
        return cls(
            id=report_id,
            report=str(data.get("report") or report_type or ""),
            status=status,
            progress=_as_progress(data.get("progress")),
            current_line=_as_int(data.get("current_line")),
            file_url=file_url if isinstance(file_url, str) else None,
            attachment=Attachment.from_json(attachment)
            if attachment is not None and isinstance(attachment, Mapping)
            else None,
            created_at=parse_timestamp(data.get("created_at")),
            started_at=parse_timestamp(data.get("started_at")),
            ended_at=parse_timestamp(data.get("ended_at")),
            run_time=_as_float(data.get("run_time")),
            parameters=params if type(params) is dict or isinstance(params, Mapping) else {},
            raw=dict(data),
        )

    def as_json(self) -> dict[str, Any]:
        """The Report as Canvas sent it, for XCom and trigger events, minus one credential.

        The attachment's `url` carries a `verifier` that opens the file without a token, and
        Canvas's verifier is the attachment's `uuid`: neither may land in XCom. The url loses its
        query string; the uuid goes, with any other field that carries it (`thumbnail_url`).
        Everything else is kept as sent.
        """
        data = dict(self.raw)
        attachment = data.get("attachment")
        if isinstance(attachment, Mapping):
            data["attachment"] = _without_verifier(attachment)
        return data

    @property
    def phase(self) -> Phase:
        return classify(self.status)

    @property
    def is_known_status(self) -> bool:
        return self.status in KNOWN_STATES

    @property
    def extra_text(self) -> str | None:
        """Canvas's own words about the run (the failure reason on `error`)."""
        text = self.parameters.get("extra_text")
        return text if isinstance(text, str) and text else None

    def failure_message(self) -> str:
        text = self.extra_text
        if text is None:
            reason = "Canvas gave no reason"
        elif text.startswith(_REASONS):
            reason = text
        else:
            # An error that escaped Canvas's own failure path (a job that died, a failed parallel
            # part) keeps the run's settings here ("Term: All Terms;"), which are no reason.
            reason = f"Canvas gave no reason (its notes on the run: {text})"
        return f"Canvas report {self.report} #{self.id} ended with status '{self.status}': {reason}"

    def summary(self) -> str:
        parts = [f"{self.report} #{self.id}", f"status={self.status}"]
        if self.progress is not None:
            parts.append(f"progress={self.progress}%")
        if self.current_line is not None:
            parts.append(f"current_line={self.current_line}")
        return " ".join(parts)


#: How the reasons Canvas writes into extra_text when a run ends begin (account_reports.rb:
#: failed_report, finalize_report).
_REASONS = ("Failed", "Report has been aborted")


def _without_verifier(attachment: Mapping[str, Any]) -> dict[str, Any]:
    uuid = attachment.get("uuid")
    kept: dict[str, Any] = {}
    for key, value in attachment.items():
        if key == "url" and isinstance(value, str):
            kept[key] = value.split("?", 1)[0]
        elif key == "uuid" or (isinstance(uuid, str) and uuid and isinstance(value, str) and uuid in value):
            continue
        else:
            kept[key] = value
    return kept


@dataclass(frozen=True)
class AvailableReport:
    """An entry of the account's available-reports list."""

    report: str
    title: str
    parameters: Mapping[str, Mapping[str, Any]]
    last_run: Report | None = None

    @classmethod
    def from_json(cls, data: Any) -> AvailableReport:
        if not isinstance(data, Mapping) or not isinstance(data.get("report"), str):
            raise CanvasResponseError(
                "Canvas answered with an available-report entry that has no report name"
            )
        params = data.get("parameters")
        last_run = data.get("last_run")
        parsed_last: Report | None = None
        if isinstance(last_run, Mapping) and last_run.get("id") is not None:
            parsed_last = Report.from_json(last_run, report_type=data["report"])
        return cls(
            report=data["report"],
            title=str(data.get("title") or data["report"]),
            parameters={str(k): (v if isinstance(v, Mapping) else {}) for k, v in params.items()}
            if isinstance(params, Mapping)
            else {},
            last_run=parsed_last,
        )

    @property
    def required_parameters(self) -> frozenset[str]:
        return frozenset(name for name, spec in self.parameters.items() if spec.get("required") is True)


# Why a cancel leaves a queued report where it is (see `cancel_action`); for messages.
QUEUED_CANNOT_STOP = (
    "Canvas cannot stop a report that has not started (deleting it only hides it until its turn "
    "comes, and then it runs anyway)"
)


def cancel_action(status: str | None) -> str | None:
    """How to stop a report Canvas has not finished: abort while running, leave it while queued,
    delete it otherwise (compiling, or a status this provider does not know).

    Canvas aborts only `running` reports (404 in any other state). Deleting one that has not
    started does not stop it: Canvas only marks it deleted, its queued job still runs it and
    marks it running again (`AccountReports.generate_report`), so it would come back and hold
    the account's report queue all the same, while a retry could no longer find it. Left
    queued, a retry reconnects to it instead of queueing another behind it.
    """
    if status == "running":
        return "abort"
    if status == "created":
        return "leave"
    if classify(status) is Phase.WAITING:
        return "delete"
    return None
