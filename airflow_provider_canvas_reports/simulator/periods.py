"""The period of ``students_with_no_submissions_csv`` as Canvas's report job settles it.

Canvas does not check the period when the report starts. When its job runs, it reads
``start_at`` and ``end_at`` in the account's time zone (a value it cannot parse counts as
absent), fills in a missing bound two weeks from the other (both missing: the last two weeks),
moves ``start_at`` to two weeks before ``end_at`` when the period is longer, and writes what it
changed back into the report's parameters. A period that ends before it starts is used as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

#: Reports whose job settles a period this way.
PERIOD_REPORTS = frozenset({"students_with_no_submissions_csv"})
_LONGEST = timedelta(weeks=2)


def _parse(value: Any, zone: tzinfo) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def settled_period(
    report: str, parameters: Mapping[str, Any], started_at: float, zone: tzinfo
) -> dict[str, str]:
    """What the job writes back into the parameters when it runs at ``started_at`` (maybe nothing)."""
    if report not in PERIOD_REPORTS:
        return {}
    start = _parse(parameters.get("start_at"), zone)
    end = _parse(parameters.get("end_at"), zone)
    changed: dict[str, datetime] = {}
    if start and end:
        if end - start > _LONGEST:
            changed["start_at"] = end - _LONGEST
    elif start:
        changed["end_at"] = start + _LONGEST
    elif end:
        changed["start_at"] = end - _LONGEST
    else:
        now = datetime.fromtimestamp(started_at, tz=zone)
        changed = {"start_at": now - _LONGEST, "end_at": now}
    return {name: moment.astimezone(zone).isoformat(timespec="seconds") for name, moment in changed.items()}
