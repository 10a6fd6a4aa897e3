"""The account reports API routes, over real HTTP."""

from __future__ import annotations

import re

import requests
from sim_helpers import SimFactory, finish

from tests.fixtures.canvas_objects import REPORT_KEYS

NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def test_available_reports_whole_list_sorted_by_title(sim_env):
    _sim, _running, client = sim_env
    resp = client.reports()
    assert resp.status_code == 200
    assert "link" not in resp.headers
    items = resp.json()
    titles = [item["title"] for item in items]
    assert titles == sorted(titles)
    assert len(items) == 20
    by_name = {item["report"]: item for item in items}
    assert set(by_name["provisioning_csv"]) == {"title", "report", "parameters", "last_run"}
    assert by_name["provisioning_csv"]["parameters"]["users"] == {
        "required": False,
        "description": "Include the users CSV",
    }
    assert by_name["mgp_grade_export_csv"]["parameters"]["enrollment_term_id"]["required"] is True
    assert by_name["outcome_export_csv"]["parameters"] is None
    assert by_name["provisioning_csv"]["last_run"] is None


def test_available_reports_last_run_and_includes(sim_env):
    _sim, _running, client = sim_env
    started = client.start("grade_export_csv")
    items = {i["report"]: i for i in client.reports(params={"include[]": "description_html"}).json()}
    assert items["grade_export_csv"]["last_run"]["id"] == started["id"]
    assert "description_html" in items["grade_export_csv"]


def test_available_reports_can_be_empty(make_sim: SimFactory):
    _sim, _running, client = make_sim(reports=[])
    assert client.reports().json() == []
    assert client.reports("/provisioning_csv", method="POST").status_code == 404


def test_start_form_encoded_echoes_strings_and_lists(sim_env):
    _sim, _running, client = sim_env
    resp = client.reports(
        "/provisioning_csv",
        method="POST",
        data={
            "parameters[users]": "true",
            "parameters[enrollments]": "1",
            "parameters[enrollment_states][]": ["active", "invited"],
            "parameters[skip_message]": "true",
        },
    )
    assert resp.status_code == 200
    report = resp.json()
    assert set(report) == set(REPORT_KEYS)  # attachment absent, not null
    assert report["status"] == "created"
    assert report["progress"] == 0
    assert report["file_url"] is None
    assert report["started_at"] is None
    assert report["ended_at"] is None
    assert ISO_WITH_OFFSET.match(report["created_at"])
    params = report["parameters"]
    assert params["users"] == "true"
    assert params["enrollments"] == "1"
    assert params["enrollment_states"] == ["active", "invited"]
    # The job fills in locale and extra_text; the start's answer comes before it runs.
    assert "locale" not in params
    assert "extra_text" not in params


def test_start_json_body_keeps_types(sim_env):
    _sim, _running, client = sim_env
    resp = client.reports(
        "/sis_export_csv", method="POST", json={"parameters": {"users": True, "enrollment_term_id": 2}}
    )
    assert resp.status_code == 200
    params = resp.json()["parameters"]
    assert params["users"] is True
    assert params["enrollment_term_id"] == 2


def test_the_job_fills_in_locale_and_extra_text(sim_env):
    sim, _running, client = sim_env
    started = client.start("sis_export_csv", users="true", enrollments="1", enrollment_term_id="2")
    assert "extra_text" not in started["parameters"]
    finish(sim)
    params = client.status("sis_export_csv", started["id"]).json()["parameters"]
    assert params["locale"] == "en"
    assert params["extra_text"] == "Term: Fall 2025; Reports: users enrollments;"


def test_start_multipart_form(sim_env):
    _sim, _running, client = sim_env
    resp = client.reports("/provisioning_csv", method="POST", files={"parameters[users]": (None, "true")})
    assert resp.status_code == 200
    assert resp.json()["parameters"]["users"] == "true"


def test_unknown_report_type_is_404_to_start_and_an_empty_index(sim_env):
    _sim, _running, client = sim_env
    assert client.reports("/no_such_csv", method="POST").json() == NOT_FOUND
    # The controller's index does not check the type (type_scope.active): no runs, 200.
    index = client.reports("/no_such_csv")
    assert (index.status_code, index.json()) == (200, [])


def test_enrollment_term_validation(sim_env):
    _sim, _running, client = sim_env
    for good in ("active_terms", "3", "sis_term_id:2026FA", "2,3", "sis_term_id:2025FA,active_terms"):
        resp = client.reports(
            "/grade_export_csv", method="POST", data={"parameters[enrollment_term_id]": good}
        )
        assert resp.status_code == 200, good
    for bad in ("spring", "999", "sis_term_id:NOPE", "2,x"):
        resp = client.reports(
            "/grade_export_csv", method="POST", data={"parameters[enrollment_term_id]": bad}
        )
        assert resp.status_code == 400
        assert resp.json() == {"error": f"invalid enrollment_term_id '{bad}'"}


def test_status_route_and_wrong_type_in_path(sim_env):
    _sim, _running, client = sim_env
    report = client.start()
    resp = client.status("provisioning_csv", report["id"])
    assert resp.status_code == 200
    assert resp.json()["id"] == report["id"]
    assert client.status("sis_export_csv", report["id"]).json() == NOT_FOUND
    assert client.status("provisioning_csv", 999999).status_code == 404
    assert client.status("provisioning_csv", "abc").status_code == 404  # type: ignore[arg-type]


def test_account_id_forms(sim_env):
    _sim, _running, client = sim_env
    report = client.start(account="1")
    assert client.status("provisioning_csv", report["id"], account="self").status_code == 200
    sub = client.start(account="sis_account_id:SCI")
    assert client.status("provisioning_csv", sub["id"], account="3").status_code == 200
    # A report belongs to its account: another account's path does not find it.
    assert client.status("provisioning_csv", sub["id"], account="self").status_code == 404
    assert client.reports(account="sis_account_id:NOPE").json() == NOT_FOUND
    assert client.reports(account="77").status_code == 404


def test_index_newest_first_paginated_with_link_header(sim_env):
    sim, _running, client = sim_env
    ids = []
    for _ in range(13):
        ids.append(client.start()["id"])
        sim.advance(1)  # distinct created_at
    client.start("sis_export_csv")  # another type is not listed
    first = client.reports("/provisioning_csv")
    assert first.status_code == 200
    assert [r["id"] for r in first.json()] == ids[::-1][:10]
    link = first.headers["link"]
    rels = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', link))
    assert set(rels) == {"current", "next", "first", "last"}
    assert "page=2" in rels["next"]
    assert "per_page=10" in rels["next"]
    assert rels["next"].startswith(client.url)
    second = client.http.get(rels["next"], timeout=10)
    assert [r["id"] for r in second.json()] == ids[::-1][10:]
    assert 'rel="prev"' in second.headers["link"]
    assert 'rel="next"' not in second.headers["link"]
    past = client.reports("/provisioning_csv", params={"page": 5})
    assert past.status_code == 200
    assert past.json() == []
    big = client.reports("/provisioning_csv", params={"per_page": 500})
    assert len(big.json()) == 13
    assert "per_page=100" in big.headers["link"]


def test_index_excludes_deleted(sim_env):
    _sim, _running, client = sim_env
    keep, gone = client.start()["id"], client.start()["id"]
    assert client.status("provisioning_csv", gone).status_code == 200
    assert client.reports(f"/provisioning_csv/{gone}", method="DELETE").status_code == 200
    assert [r["id"] for r in client.reports("/provisioning_csv").json()] == [keep]


def test_delete_then_404(sim_env):
    sim, _running, client = sim_env
    report = client.start()
    finish(sim)
    assert client.status("provisioning_csv", report["id"]).json()["status"] == "complete"
    resp = client.reports(f"/provisioning_csv/{report['id']}", method="DELETE")
    assert resp.status_code == 200
    assert resp.json()["status"] == "deleted"
    assert client.status("provisioning_csv", report["id"]).json() == NOT_FOUND
    assert client.reports(f"/provisioning_csv/{report['id']}", method="DELETE").status_code == 404


def test_a_report_deleted_while_queued_comes_back_when_its_job_starts_it(make_sim: SimFactory):
    # Canvas's delete only marks it deleted; its queued job still runs it and marks it running.
    sim, _running, client = make_sim(queue_seconds=5)
    report_id = client.start()["id"]
    answer = client.reports(f"/provisioning_csv/{report_id}", method="DELETE").json()
    assert (answer["status"], answer["started_at"]) == ("deleted", None)
    assert client.status("provisioning_csv", report_id).json() == NOT_FOUND
    assert client.reports("/provisioning_csv").json() == []
    sim.advance(6)
    back = client.status("provisioning_csv", report_id).json()
    assert back["status"] == "running"
    assert back["started_at"] is not None
    assert [r["id"] for r in client.reports("/provisioning_csv").json()] == [report_id]
    finish(sim)
    assert client.status("provisioning_csv", report_id).json()["status"] == "complete"


def test_delete_running_report_aborts_it(sim_env):
    sim, _running, client = sim_env
    report = client.start()
    sim.advance(2)
    assert client.status("provisioning_csv", report["id"]).json()["status"] == "running"
    assert client.reports(f"/provisioning_csv/{report['id']}", method="DELETE").json()["status"] == "deleted"
    snap = sim.reports[report["id"]].snapshot()
    assert snap.status == "deleted"
    assert snap.started_at is not None
    assert snap.ended_at is not None


def test_abort_only_while_running(make_sim: SimFactory):
    sim, _running, client = make_sim(queue_seconds=5)
    report = client.start()
    path = f"/provisioning_csv/{report['id']}/abort"
    # Still created: Canvas answers 404.
    assert client.reports(path, method="PUT").json() == NOT_FOUND
    sim.advance(6)
    resp = client.reports(path, method="PUT")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "aborted"
    assert body["progress"] == 100
    assert body["parameters"]["extra_text"] == "Report has been aborted"
    assert body["ended_at"] is not None
    # Already aborted: 404 again, and it stays aborted.
    assert client.reports(path, method="PUT").status_code == 404
    finish(sim)
    assert client.status("provisioning_csv", report["id"]).json()["status"] == "aborted"


def test_abort_complete_report_is_404(sim_env):
    sim, _running, client = sim_env
    report = client.start()
    finish(sim)
    assert client.reports(f"/provisioning_csv/{report['id']}/abort", method="PUT").status_code == 404


def test_all_header_names_lowercase(sim_env):
    sim, _running, client = sim_env
    for _ in range(12):
        client.start()
    resp = client.reports("/provisioning_csv")
    raw_names = list(resp.raw.headers.keys())
    assert raw_names
    assert all(name == name.lower() for name in raw_names)
    assert {"link", "x-rate-limit-remaining", "x-request-cost", "content-type"} <= set(raw_names)
    report = client.start()
    finish(sim)
    download = client.http.get(client.status("provisioning_csv", report["id"]).json()["file_url"], timeout=10)
    assert download.status_code == 200
    for hop in [*download.history, download]:
        assert all(name == name.lower() for name in hop.raw.headers)


def test_legacy_fields_omits_run_time_and_user(make_sim: SimFactory):
    _sim, _running, client = make_sim(legacy_fields=True)
    report = client.start()
    assert "run_time" not in report
    assert "user" not in report


def test_unknown_route_is_canvas_404(sim_env):
    _sim, _running, client = sim_env
    resp = client.request("GET", "/api/v1/nothing/here")
    assert resp.status_code == 404
    assert resp.json() == NOT_FOUND


def test_login_page(sim_env):
    _sim, _running, client = sim_env
    page = requests.get(f"{client.url}/login", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "login_form" in page.text
