"""Counters: what the simulator saw, per endpoint, report type and report id."""

from __future__ import annotations

from sim_helpers import finish


def test_counts_every_endpoint_and_resets(sim_env):
    sim, _running, client = sim_env
    client.reports()
    report = client.start("provisioning_csv", users="true")
    client.start("grade_export_csv")
    client.reports("/provisioning_csv")
    for _ in range(3):
        client.status("provisioning_csv", report["id"])
    assert client.reports("/provisioning_csv/999999/abort", method="PUT").status_code == 404  # still counted
    finish(sim)
    body = client.status("provisioning_csv", report["id"]).json()
    client.http.get(body["file_url"], timeout=10)
    client.reports(f"/provisioning_csv/{report['id']}", method="DELETE")
    counters = sim.counters
    assert counters.requests == {
        "available": 1,
        "start": 2,
        "index": 1,
        "status": 4,
        "abort": 1,
        "download": 1,
        "files": 1,
        "files_session": 1,  # a CSV: the files domain's own URL, let in by its session cookie
        "store": 1,
        "delete": 1,
    }
    assert counters.starts == {"provisioning_csv": 1, "grade_export_csv": 1}
    assert counters.status_polls == {report["id"]: 4}
    assert counters.files_auth_headers == 0
    assert counters.throttled == 0
    assert counters.total_requests == 14
    counters.reset()
    assert counters.total_requests == 0
    assert not counters.starts
    assert not counters.status_polls
    assert counters.bytes_served == 0


def test_unknown_paths_count_as_other(sim_env):
    sim, _running, client = sim_env
    client.request("GET", "/nowhere")
    assert sim.counters.requests["other"] == 1
