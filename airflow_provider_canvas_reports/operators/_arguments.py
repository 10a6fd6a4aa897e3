"""Operator arguments, checked when the DAG is parsed: each error names the argument and the fix.

A wrong type caught here would otherwise surface in a running task, sometimes after a report was
started (and then left running), sometimes as a bare TypeError from deep inside.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy

_DURATION = "seconds (a number) or a datetime.timedelta"


def duration(value: Any, *, name: str, default: float | None = None, allow_zero: bool = False) -> float:
    """A duration argument as seconds: positive, or 0 or more with `allow_zero`.

    None means `default` when there is one (a wait always has a deadline).
    """
    if value is None and default is not None:
        return default
    # A string of a number is taken: it is what Variable.get() gives for a value kept there.
    if isinstance(value, str) and is_number(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise TypeError(f"{name} must be a duration, {_DURATION}, not {value!r}")
    number = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if allow_zero:
        if not number >= 0 or math.isinf(number):  # NaN compares false
            raise ValueError(f"{name} must be a duration of 0 or more, not {value!r}")
    elif not number > 0 or math.isinf(number):
        raise ValueError(f"{name} must be a positive duration, not {value!r}")
    return number


def flag(value: Any, *, name: str) -> bool:
    """A switch: True or False, or those words (as Variable.get() gives them). Anything else is
    refused: the string "false" is truthy, so read as Python reads it, it would mean the opposite."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value


def count(value: Any, *, name: str) -> int:
    """A number of times (attempts, errors in a row): a whole number, 1 or more."""
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, 1 or more, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value!r}")
    return value


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def retry_policy(value: Any) -> RetryPolicy | None:
    """None, a RetryPolicy, or a dict of its fields (as a DAG might keep it in a Variable)."""
    if value is None:
        return None
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy

    return RetryPolicy.coerce(value, name="canvas_retry_policy")
