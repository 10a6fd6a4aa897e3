"""Canvas report statuses and what each means for a client: keep waiting, done, or failed.

Apart from the Report model so that the polling rules (needed when a DAG is parsed, to check the
operators' arguments) can load without the model's dataclasses.
"""

from __future__ import annotations

import enum


class Phase(str, enum.Enum):
    """What a status means for a client: keep waiting, done, or failed."""

    WAITING = "waiting"
    SUCCESS = "success"
    FAILURE = "failure"


WAITING_STATES = frozenset({"created", "running", "compiling"})
SUCCESS_STATES = frozenset({"complete"})
FAILURE_STATES = frozenset({"error", "aborted", "deleted"})
KNOWN_STATES = WAITING_STATES | SUCCESS_STATES | FAILURE_STATES


def classify(status: str | None) -> Phase:
    """Map a Canvas status to a phase.

    An unknown or missing status is treated as still waiting (the caller keeps its deadline);
    `progress` is never consulted because Canvas reports 100 on `error` and `aborted` too.
    """
    if status in SUCCESS_STATES:
        return Phase.SUCCESS
    if status in FAILURE_STATES:
        return Phase.FAILURE
    return Phase.WAITING
