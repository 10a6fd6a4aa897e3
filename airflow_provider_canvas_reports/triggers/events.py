"""What a wait for a report ends with: the event dict, its validation, and the trigger's retry kwargs.

The trigger (in the triggerer) and the operators' worker-side loop both produce the event; the
operators validate it when the task resumes. Kept apart from the trigger's module so that the
operator and sensor modules (imported by every DAG parse) do not load ``airflow.triggers``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_canvas_reports.canvas.polling import OUTCOMES, SUCCESS

if TYPE_CHECKING:
    from airflow_provider_canvas_reports.canvas.polling import Outcome, Waiter
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy


def retry_policy_kwargs(policy: RetryPolicy | None) -> dict[str, float | int] | None:
    """A RetryPolicy as plain numbers, fit for trigger kwargs."""
    return None if policy is None else dataclasses.asdict(policy)


def retry_policy_from_kwargs(values: Mapping[str, Any] | None) -> RetryPolicy | None:
    """The reverse; unknown names are dropped (a triggerer may run another provider version)."""
    if not values:
        return None
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy  # the triggerer's side only

    known = {f.name for f in dataclasses.fields(RetryPolicy)}
    return RetryPolicy(**{name: value for name, value in values.items() if name in known})


def event_payload(outcome: Outcome, waiter: Waiter, *, account_id: str | None, now: float) -> dict[str, Any]:
    """The event both waits produce (the trigger, and the worker-side loop): JSON values only."""
    report = outcome.report
    return {
        "status": outcome.kind,
        "message": outcome.message,
        "summary": waiter.summary(now),
        "report": waiter.report_type,
        "report_id": waiter.report_id,
        "account_id": account_id,
        "report_status": report.status if report is not None else None,
        "report_json": report.as_json() if report is not None else None,
    }


class InvalidEventError(ValueError):
    """The task resumed with an event this provider's trigger cannot have sent."""


@dataclass(frozen=True)
class ReportEvent:
    """A validated event: `status` is one of success, failure, timeout, error."""

    status: str
    message: str
    summary: str
    report: str
    report_id: int
    account_id: str | None
    report_status: str | None
    report_json: dict[str, Any] | None


def parse_event(event: Any, *, report_id: int | str | None, report: str | None = None) -> ReportEvent:
    """Validate what a task resumed with. A missing or unknown event is an error, never success.

    :param report_id: the report the task waits for; None to take it from the event.
    :param report: the report type the task waits for; None to take it from the event.
    """
    label = f"#{report_id}" if report_id is not None else "(unknown id)"
    if not isinstance(event, Mapping):
        raise InvalidEventError(
            f"The task resumed without a valid event from ReportStatusTrigger (got {type(event).__name__}); "
            f"the state of Canvas report {label} is unknown. Retry the task."
        )
    status = event.get("status")
    if status not in OUTCOMES:
        raise InvalidEventError(
            f"ReportStatusTrigger sent an unknown event status {str(status)[:40]!r} for Canvas report "
            f"{label}; expected one of {', '.join(sorted(OUTCOMES))}."
        )
    sent_id = str(event.get("report_id"))[:40]
    if not sent_id.isdigit() or (report_id is not None and sent_id != str(report_id)):
        raise InvalidEventError(
            f"ReportStatusTrigger sent an event about report #{sent_id}, but this task waits for "
            f"Canvas report {label}."
        )
    sent_report = str(event.get("report") or "")[:80]
    if report is not None and sent_report != report:
        raise InvalidEventError(
            f"ReportStatusTrigger sent an event about a {sent_report!r} report #{sent_id}, but this task "
            f"waits for a {report!r} report."
        )
    raw = event.get("report_json")
    if raw is not None and not isinstance(raw, Mapping):
        raise InvalidEventError(f"The event for Canvas report #{sent_id} carries a malformed report.")
    if raw is not None and "id" in raw and str(raw.get("id"))[:40] != sent_id:
        raise InvalidEventError(
            f"The event for Canvas report #{sent_id} carries report #{str(raw.get('id'))[:40]} instead."
        )
    if status == SUCCESS and (raw is None or raw.get("status") != "complete"):
        raise InvalidEventError(
            f"ReportStatusTrigger reported success for Canvas report #{sent_id} without a complete report."
        )
    report_status = event.get("report_status")
    return ReportEvent(
        status=status,
        message=str(event.get("message") or ""),
        summary=str(event.get("summary") or ""),
        report=sent_report,
        report_id=int(sent_id),
        account_id=str(event["account_id"]) if event.get("account_id") not in (None, "") else None,
        report_status=report_status if isinstance(report_status, str) else None,
        report_json=dict(raw) if raw is not None else None,
    )
