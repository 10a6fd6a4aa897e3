"""Throttling: Canvas's leaky bucket with up-front cost, in both answer modes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sim_helpers import SimFactory

from airflow_provider_canvas_reports.simulator.clock import Clock
from airflow_provider_canvas_reports.simulator.throttle import Throttle


def _parallel_gets(running, count: int) -> list[requests.Response]:
    url = f"{running.url}/api/v1/accounts/self/reports"
    headers = {"Authorization": f"Bearer {running.token}"}
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _i: requests.get(url, headers=headers, timeout=10), range(count)))


def test_parallel_requests_get_429_with_retry_after(make_sim: SimFactory):
    sim, running, _client = make_sim(throttle="429", bucket_capacity=200, request_cost=50, latency=0.4)
    answers = _parallel_gets(running, 8)
    codes = sorted(r.status_code for r in answers)
    assert codes.count(200) >= 1
    assert codes.count(429) >= 3
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert float(refused.headers["x-rate-limit-remaining"]) >= 0.0
    assert "x-request-cost" not in refused.headers
    assert sim.counters.throttled == codes.count(429)


def test_legacy_mode_answers_403_text(make_sim: SimFactory):
    _sim, running, _client = make_sim(throttle="403", bucket_capacity=200, request_cost=50, latency=0.4)
    answers = _parallel_gets(running, 8)
    refused = [r for r in answers if r.status_code == 403]
    assert refused
    assert refused[0].headers["content-type"].startswith("text/plain")
    assert refused[0].text == "403 Forbidden (Rate Limit Exceeded)\n"
    assert float(refused[0].headers["x-rate-limit-remaining"]) >= 0.0


@pytest.mark.parametrize("mode", ["403", "429"])
def test_a_refused_request_reports_the_bucket_after_the_refund(make_sim: SimFactory, mode: str):
    # request_throttle.rb sets X-Rate-Limit-Remaining after the request, once the up-front cost
    # is refunded: a refused request reports what the others left, often above 0.
    _sim, running, _client = make_sim(
        throttle=mode, bucket_capacity=60, request_cost=50, latency=0.5, leak_per_second=0.001
    )
    answers = _parallel_gets(running, 2)
    refused = [r for r in answers if r.status_code == int(mode)]
    assert len(refused) == 1
    # The other request still holds its 50 up front: 60 - 50 is left.
    assert refused[0].headers["x-rate-limit-remaining"] == "10.0"


def test_sequential_requests_are_not_throttled(make_sim: SimFactory):
    _sim, _running, client = make_sim(throttle="429", bucket_capacity=200, request_cost=50)
    for _ in range(15):
        resp = client.reports()
        assert resp.status_code == 200
        assert float(resp.headers["x-rate-limit-remaining"]) > 150
        assert float(resp.headers["x-request-cost"]) > 0


def test_throttle_off(make_sim: SimFactory):
    _sim, running, _client = make_sim(throttle=None, bucket_capacity=100, request_cost=50, latency=0.3)
    assert {r.status_code for r in _parallel_gets(running, 6)} == {200}


def test_bucket_leaks_and_refunds():
    clock = Clock(lambda: 0.0)
    throttle = Throttle(clock, "429", capacity=100, up_front=50, leak_per_second=10, actual_cost=20)
    first, second = throttle.reserve("t"), throttle.reserve("t")
    assert not first.throttled
    assert not second.throttled
    third = throttle.reserve("t")
    assert third.throttled
    assert third.retry_after == 5  # 50 units over, leaking 10 per second
    throttle.settle(third)
    cost, remaining = throttle.settle(first)
    assert cost == 20
    assert remaining == pytest.approx(100 - 50 - 20)
    throttle.settle(second)
    assert throttle.remaining("t") == pytest.approx(60)
    clock.advance(3)
    assert throttle.remaining("t") == pytest.approx(90)
    assert throttle.remaining("other-token") == 100


def test_invalid_config_throttle_mode():
    from airflow_provider_canvas_reports.simulator import SimulatorConfig

    with pytest.raises(ValueError, match="throttle"):
        SimulatorConfig(throttle="500")  # type: ignore[arg-type]
    assert SimulatorConfig(throttle=429).throttle == "429"  # type: ignore[arg-type]
