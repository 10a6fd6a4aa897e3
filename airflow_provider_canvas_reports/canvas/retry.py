"""The retry and throttle policy, as pure decisions.

Both transports (requests and aiohttp) ask `decide()` what to do after each attempt, so
the rules exist once. Nothing here sleeps or does I/O.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_canvas_reports.canvas.errors import is_rate_limited
from airflow_provider_canvas_reports.canvas.headers import header


class Failure(str, enum.Enum):
    """How an attempt failed before a response arrived."""

    CONNECT = "connect"  # never reached Canvas: safe to repeat anything
    RESET = "reset"  # the connection dropped: the request may have been processed
    TIMEOUT = "timeout"  # no answer in time: the request may have been processed
    CERTIFICATE = "certificate"  # the server's TLS certificate was refused: never reached, never retried


#: What to do about a refused certificate, said after the error names whose it was and why.
CERTIFICATE_ADVICE = (
    "If a private certificate authority signed it (a self-hosted Canvas, or a proxy that inspects "
    "TLS), set REQUESTS_CA_BUNDLE for the workers and the triggerer to a file of that authority's "
    "certificates together with the public ones (certifi's bundle): every host of a download is "
    "verified against that one file; the task can then be retried."
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for one logical request. All values are JSON-friendly numbers."""

    max_attempts: int = 8
    max_elapsed: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 120.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # Below this many units left in the leaky bucket, requests are spaced out before Canvas throttles.
    low_remaining: float = 150.0
    pace_delay: float = 1.0
    # A throttled request waits Retry-After plus up to this fraction of it more, at random: workers
    # refused together and waiting exactly the hint come back together and are refused again.
    throttle_jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.max_elapsed <= 0 or min(self.base_delay, self.max_delay, self.max_retry_after) < 0:
            raise ValueError("RetryPolicy times must be positive")
        if self.low_remaining <= 0 or self.pace_delay < 0:
            raise ValueError("RetryPolicy.low_remaining must be positive and pace_delay not negative")
        if self.throttle_jitter < 0:
            raise ValueError("RetryPolicy.throttle_jitter must not be negative")

    @classmethod
    def coerce(cls, value: Any, *, name: str = "retry_policy") -> RetryPolicy:
        """A RetryPolicy, or one built from a dict of its fields; anything else is refused by name."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{name} must be a RetryPolicy or a dict of its fields, not {value!r}")
        fields = cls.__dataclass_fields__
        if unknown := [key for key in value if key not in fields]:
            raise TypeError(
                f"{name} has unknown field(s) {', '.join(map(repr, unknown))}; RetryPolicy's fields are: "
                f"{', '.join(fields)}"
            )
        wrong = [
            f"{key}={item!r}"
            for key, item in value.items()
            if isinstance(item, bool) or not isinstance(item, (int, float))
        ]
        if wrong:
            raise TypeError(f"{name}: {', '.join(wrong)}: RetryPolicy's fields are numbers")
        return cls(**value)  # __post_init__ names a field out of bounds


@dataclass(frozen=True)
class Attempt:
    """What happened on attempt `number` (1-based), `elapsed` seconds after the first began."""

    number: int
    elapsed: float
    idempotent: bool = True
    status: int | None = None
    headers: Mapping[str, str] | None = None
    body_excerpt: str = ""
    failure: Failure | None = None
    detail: str = ""  # of a failure: why a certificate was refused


@dataclass(frozen=True)
class Done:
    """The answer is final (success or a client error to report)."""


@dataclass(frozen=True)
class Retry:
    delay: float
    reason: str
    throttled: bool = False  # Canvas's rate limit, not an error: callers log it more quietly


@dataclass(frozen=True)
class GiveUp:
    reason: str
    # True when a non-idempotent request may have reached Canvas: the caller must reconcile.
    outcome_unknown: bool = False
    # What the user must change before a retry can succeed, when it is not the network's mood.
    fix: str | None = None


Decision = Done | Retry | GiveUp

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta form); HTTP dates are treated as absent."""
    raw = header(headers, "retry-after")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def rate_limit_remaining(headers: Mapping[str, str] | None) -> float | None:
    raw = header(headers, "x-rate-limit-remaining")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def backoff(policy: RetryPolicy, number: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    # The exponent is bounded: 2 ** 5000 cannot become a float, and 2.0 ** 1000 is beyond any max_delay.
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(max(0, number - 1), 1000))
    draw = (rng or random).random()
    return ceiling / 2 + draw * ceiling / 2


def throttled_wait(policy: RetryPolicy, hinted: float, rng: random.Random | None = None) -> float:
    """Retry-After honoured, plus a random share of it up to `throttle_jitter` (1: 1-2x the hint)."""
    return hinted * (1.0 + policy.throttle_jitter * (rng or random).random())


def decide(
    policy: RetryPolicy, attempt: Attempt, rng: random.Random | None = None, *, peer: str = "Canvas"
) -> Decision:
    """Retry, give up or accept, after one attempt; `peer` names who answered, in the reasons."""
    remaining = rate_limit_remaining(attempt.headers)
    throttled = attempt.status is not None and (
        is_rate_limited(attempt.status, attempt.body_excerpt)
        # A throttling 403 whose body was not read, with the bucket at zero: no permission 403
        # carries it there. (Not `remaining or 1.0`: 0.0 is falsy, which would hide the case.)
        or (attempt.status == 403 and remaining is not None and remaining <= 0)
    )
    if attempt.failure is None and not throttled and attempt.status not in RETRYABLE_STATUS:
        return Done()

    if attempt.failure is Failure.CERTIFICATE:  # a retry would meet the same certificate
        return GiveUp(_describe(attempt, peer), fix=CERTIFICATE_ADVICE)

    # A start that may have reached Canvas is never repeated blindly; throttling is decided by
    # Canvas's middleware before the request is handled, and a refused connection never arrived.
    may_have_run = attempt.failure in (Failure.RESET, Failure.TIMEOUT) or (attempt.status in RETRYABLE_STATUS)
    if not attempt.idempotent and may_have_run:
        return GiveUp(_describe(attempt, peer), outcome_unknown=True)

    if attempt.number >= policy.max_attempts:
        return GiveUp(f"{_describe(attempt, peer)} after {attempt.number} attempts")

    hinted = retry_after(attempt.headers) if throttled else None
    if hinted is not None:
        # Canvas's hint is the least wait; the budget is checked against it, and the jittered
        # wait is cut to what the budget has left.
        least = min(hinted, policy.max_retry_after)
        delay = throttled_wait(policy, least, rng)
    else:
        least = delay = backoff(policy, attempt.number, rng)

    if attempt.elapsed + least > policy.max_elapsed:
        return GiveUp(f"{_describe(attempt, peer)}; the retry budget of {policy.max_elapsed:.0f}s is spent")
    delay = min(delay, policy.max_elapsed - attempt.elapsed)
    return Retry(delay=delay, reason=_describe(attempt, peer), throttled=throttled)


def pace(policy: RetryPolicy, headers: Mapping[str, str] | None) -> float:
    """Seconds to wait before the next request on this token, from the bucket level Canvas reports."""
    remaining = rate_limit_remaining(headers)
    if remaining is None or remaining >= policy.low_remaining:
        return 0.0
    # Linear in how close the bucket is to empty: a nearly empty bucket waits the full pace delay.
    return policy.pace_delay * (1.0 - max(0.0, remaining) / policy.low_remaining)


def _describe(attempt: Attempt, peer: str) -> str:
    if attempt.failure is not None:
        return {
            Failure.CONNECT: f"could not connect to {peer}",
            Failure.RESET: f"the connection to {peer} was reset",
            Failure.TIMEOUT: f"{peer} did not answer in time",
            Failure.CERTIFICATE: f"the TLS certificate of {peer} could not be verified: {attempt.detail}",
        }[attempt.failure]
    if attempt.status is not None and is_rate_limited(attempt.status, attempt.body_excerpt):
        return f"{peer} throttled the request (HTTP {attempt.status})"
    return f"{peer} answered HTTP {attempt.status}"
