"""The retry and throttle policy: every branch of decide(), pace(), and its bounds as properties."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.canvas.retry import (
    CERTIFICATE_ADVICE,
    RETRYABLE_STATUS,
    Attempt,
    Done,
    Failure,
    GiveUp,
    Retry,
    RetryPolicy,
    backoff,
    decide,
    pace,
    rate_limit_remaining,
    retry_after,
)

from .helpers import FixedRandom

POLICY = RetryPolicy()
RATE_LIMIT_403 = "403 Forbidden (Rate Limit Exceeded)"


LOW, HIGH = FixedRandom(0.0), FixedRandom(0.999999)


def attempt(number=1, elapsed=0.0, *, idempotent=True, status=None, headers=None, body="", failure=None):
    return Attempt(
        number=number,
        elapsed=elapsed,
        idempotent=idempotent,
        status=status,
        headers=headers,
        body_excerpt=body,
        failure=failure,
    )


# --------------------------------------------------------------------------- policy


def test_default_policy_values():
    assert POLICY.max_attempts == 8
    assert POLICY.max_elapsed == 300.0
    assert POLICY.max_retry_after == 120.0
    assert {500, 502, 503, 504} == RETRYABLE_STATUS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"max_elapsed": 0},
        {"base_delay": -1},
        {"max_delay": -0.5},
        {"max_retry_after": -1},
        {"low_remaining": 0},  # pace() divides by it
        {"pace_delay": -1},
        {"throttle_jitter": -0.1},
    ],
)
def test_policy_bounds_are_checked(kwargs):
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("-1", None),
        ("soon", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after(value, expected):
    assert retry_after({"Retry-After": value}) == expected


def test_retry_after_absent():
    assert retry_after(None) is None
    assert retry_after({"x": "1"}) is None


@pytest.mark.parametrize(
    ("value", "expected"), [("700.0", 700.0), ("0.0", 0.0), ("-12.5", -12.5), ("x", None)]
)
def test_rate_limit_remaining(value, expected):
    assert rate_limit_remaining({"X-Rate-Limit-Remaining": value}) == expected
    assert rate_limit_remaining({"x-rate-limit-remaining": value}) == expected


# --------------------------------------------------------------------------- decide: final answers


@pytest.mark.parametrize("status", [200, 201, 204, 302])
@pytest.mark.parametrize("idempotent", [True, False])
def test_success_is_done(status, idempotent):
    assert decide(POLICY, attempt(status=status, idempotent=idempotent)) == Done()


@pytest.mark.parametrize("status", [400, 401, 404, 405, 409, 422, 501])
@pytest.mark.parametrize("idempotent", [True, False])
def test_client_errors_are_done(status, idempotent):
    assert decide(POLICY, attempt(status=status, idempotent=idempotent, body="nope")) == Done()


@pytest.mark.parametrize("body", ["", "Forbidden", '{"errors":[{"message":"user not authorized"}]}'])
def test_plain_403_is_not_throttling(body):
    assert decide(POLICY, attempt(status=403, body=body)) == Done()


# --------------------------------------------------------------------------- decide: throttling


def test_429_waits_retry_after_plus_up_to_as_much_again():
    # Workers refused together must not come back together: the wait is 1-2x the hint.
    reason = "Canvas throttled the request (HTTP 429)"
    assert decide(POLICY, attempt(status=429, headers={"Retry-After": "17"}), LOW) == Retry(
        17.0, reason, throttled=True
    )
    assert decide(POLICY, attempt(status=429, headers={"Retry-After": "17"}), FixedRandom(0.5)) == Retry(
        25.5, reason, throttled=True
    )
    high = decide(POLICY, attempt(status=429, headers={"Retry-After": "17"}), HIGH)
    assert isinstance(high, Retry)
    assert 33.99 < high.delay < 34.0


def test_throttle_jitter_is_configurable():
    exact = RetryPolicy(throttle_jitter=0.0)
    assert decide(exact, attempt(status=429, headers={"Retry-After": "17"}), HIGH).delay == 17.0
    wide = RetryPolicy(throttle_jitter=3.0)
    assert decide(wide, attempt(status=429, headers={"Retry-After": "2"}), FixedRandom(0.5)).delay == 5.0


def test_throttle_jitter_uses_the_default_rng_when_none_given():
    delays = {decide(POLICY, attempt(status=429, headers={"Retry-After": "4"})).delay for _ in range(50)}
    assert all(4.0 <= delay < 8.0 for delay in delays)
    assert len(delays) > 1


def test_429_retry_after_lowercase_header():
    assert decide(POLICY, attempt(status=429, headers={"retry-after": "3.5"}), LOW) == Retry(
        3.5, "Canvas throttled the request (HTTP 429)", throttled=True
    )


def test_429_retry_after_is_capped_before_the_jitter():
    assert (
        decide(POLICY, attempt(status=429, headers={"Retry-After": "3600"}), LOW).delay
        == POLICY.max_retry_after
    )
    high = decide(POLICY, attempt(status=429, headers={"Retry-After": "3600"}), HIGH).delay
    assert POLICY.max_retry_after < high < 2 * POLICY.max_retry_after


def test_429_without_retry_after_backs_off():
    assert decide(POLICY, attempt(number=3, status=429), LOW) == Retry(
        2.0, "Canvas throttled the request (HTTP 429)", throttled=True
    )
    assert (
        decide(POLICY, attempt(number=3, status=429, headers={"Retry-After": "Tue, 1 Jan"}), LOW).delay == 2.0
    )


@pytest.mark.parametrize("body", [RATE_LIMIT_403, "rate limit exceeded"])
def test_403_rate_limit_text_is_throttling(body):
    decision = decide(POLICY, attempt(status=403, body=body, headers={"X-Rate-Limit-Remaining": "0.0"}), LOW)
    assert decision == Retry(0.5, "Canvas throttled the request (HTTP 403)", throttled=True)


def test_403_rate_limit_honours_retry_after():
    decision = decide(POLICY, attempt(status=403, body=RATE_LIMIT_403, headers={"Retry-After": "9"}), LOW)
    assert decision.delay == 9.0


@pytest.mark.parametrize("status", [429, 403])
def test_throttled_non_idempotent_start_is_retried(status):
    # Canvas throttles before handling the request: the report was not started.
    decision = decide(
        POLICY,
        attempt(status=status, body=RATE_LIMIT_403, idempotent=False, headers={"Retry-After": "4"}),
        LOW,
    )
    assert decision == Retry(4.0, f"Canvas throttled the request (HTTP {status})", throttled=True)


# --------------------------------------------------------------------------- decide: 5xx and network


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUS))
def test_5xx_retried_with_backoff_when_idempotent(status):
    assert decide(POLICY, attempt(number=1, status=status), LOW) == Retry(
        0.5, f"Canvas answered HTTP {status}"
    )
    assert decide(POLICY, attempt(number=4, status=status), LOW).delay == 4.0
    high = decide(POLICY, attempt(number=4, status=status), HIGH).delay
    assert 7.99 < high <= 8.0


def test_5xx_ignores_retry_after():
    assert decide(POLICY, attempt(status=503, headers={"Retry-After": "100"}), LOW).delay == 0.5


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (Failure.CONNECT, "could not connect to Canvas"),
        (Failure.RESET, "the connection to Canvas was reset"),
        (Failure.TIMEOUT, "Canvas did not answer in time"),
    ],
)
def test_network_failures_retried_when_idempotent(failure, reason):
    assert decide(POLICY, attempt(number=2, failure=failure), LOW) == Retry(1.0, reason)


def test_connect_failure_retried_for_non_idempotent():
    assert decide(POLICY, attempt(failure=Failure.CONNECT, idempotent=False), LOW) == Retry(
        0.5, "could not connect to Canvas"
    )


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_refused_certificate_is_given_up_at_once_and_never_outcome_unknown(idempotent):
    # No request left the client: a start is known not to have run; a retry meets the same certificate.
    refused = attempt(failure=Failure.CERTIFICATE, idempotent=idempotent)
    decision = decide(POLICY, replace(refused, detail="certificate has expired"), LOW, peer="the file host")
    assert decision == GiveUp(
        "the TLS certificate of the file host could not be verified: certificate has expired",
        fix=CERTIFICATE_ADVICE,
    )


@pytest.mark.parametrize("failure", [Failure.RESET, Failure.TIMEOUT])
def test_reset_or_timeout_on_non_idempotent_is_outcome_unknown(failure):
    decision = decide(POLICY, attempt(failure=failure, idempotent=False))
    assert isinstance(decision, GiveUp)
    assert decision.outcome_unknown is True


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUS))
def test_5xx_on_non_idempotent_is_outcome_unknown(status):
    decision = decide(POLICY, attempt(status=status, idempotent=False))
    assert decision == GiveUp(f"Canvas answered HTTP {status}", outcome_unknown=True)


def test_outcome_unknown_even_on_the_last_attempt():
    decision = decide(RetryPolicy(max_attempts=1), attempt(failure=Failure.TIMEOUT, idempotent=False))
    assert decision == GiveUp("Canvas did not answer in time", outcome_unknown=True)


# --------------------------------------------------------------------------- decide: bounds


@pytest.mark.parametrize(
    "bad",
    [
        {"status": 503},
        {"status": 429},
        {"status": 403, "body": RATE_LIMIT_403},
        {"failure": Failure.CONNECT},
        {"failure": Failure.RESET},
    ],
)
def test_max_attempts_bound(bad):
    policy = RetryPolicy(max_attempts=3)
    assert isinstance(decide(policy, attempt(number=2, **bad)), Retry)
    decision = decide(policy, attempt(number=3, **bad))
    assert isinstance(decision, GiveUp)
    assert decision.outcome_unknown is False
    assert "after 3 attempts" in decision.reason


def test_single_attempt_policy_never_retries():
    assert isinstance(decide(RetryPolicy(max_attempts=1), attempt(status=500)), GiveUp)


def test_max_elapsed_bound_with_backoff():
    policy = RetryPolicy(max_elapsed=10.0)
    assert decide(policy, attempt(number=1, elapsed=9.5, status=500), LOW) == Retry(
        0.5, "Canvas answered HTTP 500"
    )
    decision = decide(policy, attempt(number=1, elapsed=9.6, status=500), LOW)
    assert isinstance(decision, GiveUp)
    assert "10s" in decision.reason
    assert decision.outcome_unknown is False


def test_max_elapsed_bound_with_retry_after():
    policy = RetryPolicy(max_elapsed=60.0)
    assert isinstance(decide(policy, attempt(status=429, headers={"Retry-After": "60"})), Retry)
    assert isinstance(decide(policy, attempt(status=429, headers={"Retry-After": "61"})), GiveUp)
    assert isinstance(decide(policy, attempt(elapsed=30, status=429, headers={"Retry-After": "31"})), GiveUp)
    # The hint fits the budget but its jitter would not: the wait is cut to the budget left.
    assert decide(policy, attempt(elapsed=30, status=429, headers={"Retry-After": "20"}), HIGH).delay == 30.0


def test_default_rng_is_used_when_none_given():
    decision = decide(POLICY, attempt(number=2, status=502))
    assert isinstance(decision, Retry)
    assert 1.0 <= decision.delay <= 2.0


# --------------------------------------------------------------------------- backoff


def test_backoff_doubles_and_caps():
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    assert [backoff(policy, n, HIGH) for n in range(1, 7)] == pytest.approx([1, 2, 4, 8, 10, 10], abs=1e-5)
    assert [backoff(policy, n, LOW) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert backoff(policy, 0, LOW) == 0.5


def test_backoff_for_a_very_long_sequence_does_not_overflow():
    policy = RetryPolicy(max_attempts=100_000, base_delay=0.001, max_delay=0.01, max_elapsed=1e9)
    assert backoff(policy, 5_000, LOW) == 0.005
    assert isinstance(decide(policy, attempt(number=5_000, status=500), LOW), Retry)


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=100)),
    st.floats(min_value=0, max_value=1000),
    st.integers(min_value=-5, max_value=5000),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_within_half_ceiling_and_ceiling(base, cap, number, draw):
    policy = RetryPolicy(base_delay=base, max_delay=cap)
    exponent = max(0, number - 1)
    # base * 2**60 > 1e12 > cap whenever base >= 1e-6: no float arithmetic on huge exponents here
    ceiling = 0.0 if base == 0 else (cap if exponent > 60 else min(cap, base * 2**exponent))
    delay = backoff(policy, number, FixedRandom(draw))
    assert ceiling / 2 <= delay <= ceiling


# --------------------------------------------------------------------------- properties of decide


OUTCOMES = st.one_of(
    st.builds(dict, status=st.sampled_from(sorted(RETRYABLE_STATUS))),
    st.builds(
        dict,
        status=st.just(429),
        headers=st.one_of(
            st.none(),
            st.builds(lambda s: {"Retry-After": s}, st.sampled_from(["0", "1", "5.5", "30", "600", "x"])),
        ),
    ),
    st.builds(dict, status=st.just(403), body=st.just(RATE_LIMIT_403)),
    st.builds(dict, failure=st.sampled_from(list(Failure))),
)


@settings(max_examples=100, deadline=None, database=None)
@given(
    max_attempts=st.integers(min_value=1, max_value=60),
    max_elapsed=st.floats(min_value=0.01, max_value=1000),
    base_delay=st.floats(min_value=0, max_value=20),
    max_delay=st.floats(min_value=0, max_value=200),
    max_retry_after=st.floats(min_value=0, max_value=300),
    idempotent=st.booleans(),
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=60),
    durations=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=60),
    seed=st.integers(),
)
def test_total_delay_of_a_full_retry_sequence_never_exceeds_max_elapsed(
    max_attempts, max_elapsed, base_delay, max_delay, max_retry_after, idempotent, outcomes, durations, seed
):
    policy = RetryPolicy(
        max_attempts=max_attempts,
        max_elapsed=max_elapsed,
        base_delay=base_delay,
        max_delay=max_delay,
        max_retry_after=max_retry_after,
    )
    rng = random.Random(seed)
    elapsed, total_delay, number = 0.0, 0.0, 1
    while True:
        outcome = outcomes[(number - 1) % len(outcomes)]
        elapsed += durations[(number - 1) % len(durations)]
        decision = decide(policy, attempt(number, elapsed, idempotent=idempotent, **outcome), rng)
        if not isinstance(decision, Retry):
            assert isinstance(decision, GiveUp)
            break
        assert decision.delay >= 0
        total_delay += decision.delay
        elapsed += decision.delay
        number += 1
        assert number <= max_attempts
    assert total_delay <= max_elapsed


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.one_of(st.integers(min_value=0, max_value=10**6), st.floats(min_value=0, max_value=1e6)),
    st.floats(min_value=0, max_value=1e4),
    st.sampled_from([429, 403]),
    st.sampled_from(["Retry-After", "retry-after"]),
    st.booleans(),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.floats(min_value=0, max_value=5),
)
def test_any_bounded_retry_after_is_honoured_then_jittered(
    hinted, cap, status, name, idempotent, draw, jitter
):
    policy = RetryPolicy(max_retry_after=cap, max_elapsed=1e7, throttle_jitter=jitter)
    decision = decide(
        policy,
        attempt(status=status, body=RATE_LIMIT_403, headers={name: str(hinted)}, idempotent=idempotent),
        FixedRandom(draw),
    )
    honoured = min(float(hinted), cap)
    assert decision == Retry(
        honoured * (1 + jitter * draw), f"Canvas throttled the request (HTTP {status})", throttled=True
    )
    assert honoured <= decision.delay <= honoured * (1 + jitter)


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.floats(min_value=0, max_value=1e4),
    st.floats(min_value=0, max_value=1e4),
    st.floats(min_value=0.01, max_value=1e4),
)
def test_retry_after_beyond_the_budget_gives_up(hinted, elapsed, max_elapsed):
    policy = RetryPolicy(max_retry_after=1e9, max_elapsed=max_elapsed)
    assume(elapsed + hinted != max_elapsed)
    decision = decide(policy, attempt(elapsed=elapsed, status=429, headers={"Retry-After": repr(hinted)}))
    assert isinstance(decision, Retry) == (elapsed + hinted <= max_elapsed)


# --------------------------------------------------------------------------- pace


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, 0.0),
        ({}, 0.0),
        ({"X-Rate-Limit-Remaining": "700.0"}, 0.0),
        ({"X-Rate-Limit-Remaining": "150"}, 0.0),
        ({"x-rate-limit-remaining": "75"}, 0.5),
        ({"X-RATE-LIMIT-REMAINING": "0.0"}, 1.0),
        ({"x-rate-limit-remaining": "-40"}, 1.0),
        ({"x-rate-limit-remaining": "junk"}, 0.0),
        ({"x-rate-limit-remaining": "inf"}, 0.0),
    ],
)
def test_pace_from_remaining(headers, expected):
    assert pace(POLICY, headers) == pytest.approx(expected)


def test_pace_scales_with_policy():
    policy = RetryPolicy(low_remaining=100.0, pace_delay=4.0)
    assert pace(policy, {"x-rate-limit-remaining": "25"}) == pytest.approx(3.0)
    assert pace(policy, {"x-rate-limit-remaining": "100"}) == 0.0


@settings(max_examples=80, deadline=None, database=None)
@given(st.floats(allow_nan=True))
def test_pace_is_between_zero_and_pace_delay(remaining):
    delay = pace(POLICY, {"x-rate-limit-remaining": repr(remaining)})
    assert 0.0 <= delay <= POLICY.pace_delay
