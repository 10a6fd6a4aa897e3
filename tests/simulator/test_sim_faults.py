"""Fault injection: every kind, on the endpoints where it matters."""

from __future__ import annotations

import time

import pytest
import requests
from sim_helpers import SimFactory, finish

from airflow_provider_canvas_reports.simulator import Fault
from airflow_provider_canvas_reports.simulator.faults import FaultPlan


def _complete(sim, client) -> dict:
    started = client.start()
    finish(sim)
    body = client.status("provisioning_csv", started["id"]).json()
    assert body["status"] == "complete"
    return body


def test_500_is_canvas_json(sim_env):
    sim, _running, client = sim_env
    report = client.start()
    sim.faults.add(Fault(endpoint="status", kind="500"))
    resp = client.status("provisioning_csv", report["id"])
    assert resp.status_code == 500
    assert resp.json()["errors"] == [{"message": "An error occurred."}]
    assert "error_report_id" in resp.json()
    assert client.status("provisioning_csv", report["id"]).status_code == 200  # times=1
    assert sim.counters.faults["500"] == 1


@pytest.mark.parametrize("kind", ["502", "503", "504"])
def test_gateway_errors_are_html(sim_env, kind):
    sim, _running, client = sim_env
    sim.faults.add(Fault(endpoint="available", kind=kind))
    resp = client.reports()
    assert resp.status_code == int(kind)
    assert resp.headers["content-type"].startswith("text/html")


def test_404_and_401_kinds(sim_env):
    sim, _running, client = sim_env
    sim.faults.add(Fault(endpoint="index", kind="404"))
    sim.faults.add(Fault(endpoint="index", kind="401"))
    assert client.reports("/provisioning_csv").status_code == 404
    resp = client.reports("/provisioning_csv")
    assert resp.status_code == 401
    assert "www-authenticate" in resp.headers


def test_reset_closes_without_answer(sim_env):
    sim, _running, client = sim_env
    report = client.start()
    sim.faults.add(Fault(endpoint="status", kind="reset"))
    with pytest.raises(requests.ConnectionError):
        client.status("provisioning_csv", report["id"])
    assert client.status("provisioning_csv", report["id"]).status_code == 200


def test_reset_after_send_on_start_creates_the_report(sim_env):
    sim, _running, client = sim_env
    sim.faults.add(Fault(endpoint="start", kind="reset_after_send"))
    with pytest.raises(requests.ConnectionError):
        client.reports("/provisioning_csv", method="POST", data={"parameters[users]": "true"})
    # The response was lost, the report was not.
    assert sim.counters.starts["provisioning_csv"] == 1
    listed = client.reports("/provisioning_csv").json()
    assert len(listed) == 1
    assert listed[0]["status"] in ("created", "running")


def test_slow_delays_the_answer(sim_env):
    sim, _running, client = sim_env
    sim.faults.add(Fault(endpoint="available", kind="slow", delay=0.4))
    began = time.monotonic()
    assert client.reports().status_code == 200
    assert time.monotonic() - began >= 0.4
    sim.faults.add(Fault(endpoint="available", kind="slow", delay=1.0))
    with pytest.raises(requests.Timeout):
        client.reports(timeout=0.3)


def test_stall_in_the_middle_of_a_download(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="store", kind="stall", delay=0.4))
    began = time.monotonic()
    content = client.http.get(report["file_url"], timeout=10).content
    assert time.monotonic() - began >= 0.4
    assert len(content) == report["attachment"]["size"]


def test_truncate_announces_full_length_then_closes(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="store", kind="truncate", fraction=0.3))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.http.get(report["file_url"], timeout=10)
    sim.faults.add(Fault(endpoint="status", kind="truncate"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        client.status("provisioning_csv", report["id"])


def test_wrong_length_is_shorter_than_the_attachment(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="store", kind="wrong_length", report_id=report["id"]))
    resp = client.http.get(report["file_url"], timeout=10)
    assert resp.status_code == 200
    assert int(resp.headers["content-length"]) == len(resp.content)
    assert len(resp.content) < report["attachment"]["size"]


def test_html_login_page_instead_of_the_file(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="store", kind="html"))
    resp = client.http.get(report["file_url"], timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert b"<html" in resp.content


def test_throttle_kind_on_start(make_sim: SimFactory):
    sim, _running, client = make_sim(throttle="403")
    sim.faults.add(Fault(endpoint="start", kind="throttle"))
    resp = client.reports("/provisioning_csv", method="POST", data={"parameters[users]": "true"})
    assert resp.status_code == 403
    assert resp.text == "403 Forbidden (Rate Limit Exceeded)\n"
    assert sim.counters.starts["provisioning_csv"] == 0
    assert sim.counters.throttled == 1


def test_redirect_loop(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="files", kind="redirect_loop", times=None))
    with pytest.raises(requests.TooManyRedirects):
        client.http.get(report["file_url"], timeout=10)


def test_auth_redirect_ends_on_login_page(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="files", kind="auth_redirect"))
    resp = client.http.get(report["file_url"], timeout=10)
    assert resp.status_code == 200
    assert "Log In to Canvas" in resp.text


def test_expired_store_link(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    sim.faults.add(Fault(endpoint="store", kind="expired"))
    resp = client.http.get(report["file_url"], timeout=10)
    assert resp.status_code == 403
    assert b"Request has expired" in resp.content


def test_while1_prefix(sim_env):
    sim, _running, client = sim_env
    report = client.start()
    sim.faults.add(Fault(endpoint="status", kind="while1"))
    resp = client.status("provisioning_csv", report["id"])
    assert resp.text.startswith("while(1);{")


def test_report_id_and_times_target_faults(sim_env):
    sim, _running, client = sim_env
    one, two = client.start()["id"], client.start()["id"]
    fault = sim.faults.add(Fault(endpoint="status", kind="503", report_id=two, times=2))
    assert client.status("provisioning_csv", one).status_code == 200
    assert client.status("provisioning_csv", two).status_code == 503
    assert client.status("provisioning_csv", two).status_code == 503
    assert client.status("provisioning_csv", two).status_code == 200
    assert fault.used == 2
    assert fault.exhausted
    assert sim.faults.pending == []


def test_wildcard_endpoint_and_clear(sim_env):
    sim, _running, client = sim_env
    sim.faults.add(Fault(kind="500", times=None))
    assert client.reports().status_code == 500
    assert client.reports("/provisioning_csv").status_code == 500
    sim.faults.clear()
    assert client.reports().status_code == 200


def test_random_failures(make_sim: SimFactory):
    _sim, _running, client = make_sim(fail_rate=1.0, fail_kinds=("503",), fail_endpoints=("available",))
    assert client.reports().status_code == 503
    assert client.reports("/provisioning_csv").status_code == 200


def test_random_failure_rate_is_seeded():
    def draws(seed: int) -> list[str | None]:
        plan = FaultPlan(seed, fail_rate=0.3, fail_kinds=("500", "reset"))
        return [f.kind if (f := plan.take("status")) else None for _ in range(50)]

    assert draws(1) == draws(1)
    assert 5 < sum(d is not None for d in draws(1)) < 30


def test_fault_validation():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="explode")
    with pytest.raises(ValueError, match="unknown endpoint"):
        Fault(endpoint="reports", kind="500")
