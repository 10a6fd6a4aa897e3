"""One API call as a sans-IO conversation: the retry loop written once for both transports.

`api_call()` is a generator. It yields `Send` (make this request) or `Sleep` (wait this long),
receives a `Received` or a `Failed` after each `Send`, and returns the decoded JSON and
headers, or raises a typed CanvasError. The sync transport drives it with `requests` and
`time.sleep`, the async one with aiohttp and `asyncio.sleep`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_canvas_reports.canvas.errors import (
    CanvasResponseError,
    CanvasRetryExhaustedError,
    RequestContext,
    StartOutcomeUnknownError,
    error_from_response,
    not_json_error,
    sanitise_excerpt,
)
from airflow_provider_canvas_reports.canvas.headers import header
from airflow_provider_canvas_reports.canvas.retry import (
    Attempt,
    Done,
    Failure,
    GiveUp,
    Retry,
    RetryPolicy,
    decide,
    pace,
)

# Error bodies are read up to this size: enough for Canvas's JSON errors, bounded for a proxy's page.
MAX_ERROR_BODY = 64 * 1024
# 2xx answers likewise: far beyond any account-reports answer (a page of 100 reports is ~100 KB).
MAX_JSON_BODY = 32 * 1024 * 1024


def body_limit(status: int) -> int:
    """How much of an answer with this status a transport reads (`interpret` names a cut one)."""
    return MAX_JSON_BODY if 200 <= status < 300 else MAX_ERROR_BODY


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # absolute path on the Canvas host, or a full URL for Link-header pages
    context: RequestContext
    query: Sequence[tuple[str, str]] = ()
    form: Sequence[tuple[str, str]] = ()
    idempotent: bool = True


@dataclass(frozen=True)
class Send:
    request: ApiRequest


@dataclass(frozen=True)
class Sleep:
    seconds: float
    reason: str = ""  # why: the drivers log it, so a long retry budget is never silent
    # How loudly: a retry after an error is a warning; waiting out Canvas's throttle, which many
    # tasks on one token meet every night, is news (info); pacing is routine (debug).
    level: int = logging.WARNING


@dataclass(frozen=True)
class Received:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Failed:
    failure: Failure
    detail: str = ""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    data: Any


PACING = "pacing requests: Canvas reports the rate-limit bucket is low"


@dataclass
class Pacer:
    """Spaces out requests on one token when Canvas says its bucket runs low."""

    not_before: float = 0.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def pause(self) -> Sleep | None:
        """The wait a request on this token must take now, if any (the drivers log its reason)."""
        wait = self.not_before - self.clock()
        return Sleep(wait, PACING, logging.DEBUG) if wait > 0 else None

    def note(self, policy: RetryPolicy, headers: Mapping[str, str]) -> None:
        delay = pace(policy, headers)
        if delay:
            self.not_before = max(self.not_before, self.clock() + delay)


Step = Send | Sleep
Outcome = Received | Failed | None


def api_call(
    request: ApiRequest,
    policy: RetryPolicy,
    *,
    pacer: Pacer | None = None,
    secrets: Sequence[str] = (),
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    base_url: str = "",
) -> Generator[Step, Outcome, ApiResponse]:
    """The conversation for one API call (see the module's docstring); `base_url` names the
    Canvas host in an error when it could not be reached."""
    started = clock()
    number = 0
    while True:
        number += 1
        if pacer is not None and (pause := pacer.pause()) is not None:
            yield pause
        outcome = yield Send(request)
        if isinstance(outcome, Failed):
            attempt = Attempt(
                number, clock() - started, request.idempotent, failure=outcome.failure, detail=outcome.detail
            )
        elif isinstance(outcome, Received):
            if pacer is not None:
                pacer.note(policy, outcome.headers)
            attempt = Attempt(
                number,
                clock() - started,
                request.idempotent,
                status=outcome.status,
                headers=outcome.headers,
                # Only errors are described (and throttling told apart) by their body; sanitising
                # costs ~60 us, a sixth of a status poll's CPU, so 2xx answers skip it.
                body_excerpt=""
                if 200 <= outcome.status < 300
                else sanitise_excerpt(outcome.body[:512], secrets=secrets),
            )
        else:  # pragma: no cover - a driver bug, not a Canvas behaviour
            raise TypeError(f"api_call expected Received or Failed, got {type(outcome).__name__}")

        decision = decide(policy, attempt, rng)
        if isinstance(decision, Done):
            assert isinstance(outcome, Received)
            try:
                return interpret(outcome, request.context, secrets=secrets)
            except CanvasResponseError as exc:
                ctype = (header(outcome.headers, "content-type") or "").lower()
                if request.idempotent or not 200 <= outcome.status < 300 or "json" not in ctype:
                    raise
                # Canvas accepted the start (2xx JSON) but the body is cut or garbled: the report
                # may exist, so it is found through the index rather than started again. (An HTML
                # page is a proxy or login page that never reached Canvas: that error stands.)
                raise StartOutcomeUnknownError(
                    f"Canvas accepted the request to {request.context.action} on account "
                    f"{request.context.account_id}, but its answer could not be read ({exc}). It was "
                    "not repeated; look in the report index before starting again."
                ) from None
        if isinstance(decision, GiveUp):
            raise _give_up(decision, outcome, request, secrets, base_url)
        yield retry_sleep(decision, f"to {request.context.doing}", number, policy)


def retry_sleep(decision: Retry, doing: str, number: int, policy: RetryPolicy) -> Sleep:
    """The wait before attempt `number` + 1, saying which request it repeats and how many are left."""
    return Sleep(
        decision.delay,
        f"{decision.reason} {doing}, attempt {number} of {policy.max_attempts}",
        logging.INFO if decision.throttled else logging.WARNING,
    )


def interpret(received: Received, context: RequestContext, *, secrets: Sequence[str] = ()) -> ApiResponse:
    """A final answer: JSON on 2xx, a typed error otherwise."""
    if not 200 <= received.status < 300:
        raise error_from_response(received.status, received.headers, received.body, context, secrets=secrets)
    ctype = header(received.headers, "content-type")
    text = received.body.decode("utf-8", "replace")
    # Browser-session answers carry this anti-hijacking prefix; token answers do not, but it costs nothing.
    text = text.removeprefix("while(1);")
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        if len(received.body) >= MAX_JSON_BODY:  # cut by the transport's bounded read
            raise CanvasResponseError(
                f"Canvas's answer to {context.doing} went on past {MAX_JSON_BODY >> 20} MiB, where it "
                "was cut; no account-reports answer is that large. Check the connection host is the "
                "Canvas URL (not a proxy or another service).",
                status=received.status,
            ) from None
        raise not_json_error(received.status, ctype, received.body, context, secrets=secrets) from None
    return ApiResponse(received.status, received.headers, data)


def _give_up(
    decision: GiveUp, outcome: Outcome, request: ApiRequest, secrets: Sequence[str], base_url: str
) -> Exception:
    ctx = request.context
    if decision.outcome_unknown:
        return StartOutcomeUnknownError(
            f"Canvas may have received the request to {ctx.doing}, but "
            f"{decision.reason}. It was not repeated, so that no second report starts; look in the report "
            "index before starting again."
        )
    if isinstance(outcome, Received):
        return error_from_response(outcome.status, outcome.headers, outcome.body, ctx, secrets=secrets)
    from airflow_provider_canvas_reports.canvas.endpoints import redact_url

    host = f" ({redact_url(base_url)})" if base_url else ""
    if decision.fix:
        return CanvasRetryExhaustedError(
            f"Could not {ctx.doing} at {redact_url(base_url)}: {decision.reason}. {decision.fix}"
        )
    return CanvasRetryExhaustedError(
        f"Could not {ctx.doing}: {decision.reason}. Check that the Canvas host{host} "
        "is reachable from the worker; the task can be retried."
    )
