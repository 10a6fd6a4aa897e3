"""The report state machine, driven by the simulated clock, seen over HTTP and directly."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sim_helpers import SimFactory, finish

from airflow_provider_canvas_reports.simulator.clock import Clock
from airflow_provider_canvas_reports.simulator.state import (
    ABORTED_TEXT,
    GENERIC_FAILURE,
    ReportState,
    ReportStore,
)


def _state(clock: Clock, **overrides) -> ReportState:
    fields = {
        "id": 1,
        "report": "provisioning_csv",
        "account_id": 1,
        "parameters": {},
        "user_id": 1,
        "user_name": "x",
        "created_at": clock.now(),
        "queue_seconds": 2.0,
        "run_seconds": 10.0,
        "compile_seconds": 3.0,
        "parallel": True,
        "fate": None,
        "extra_text": "Term: All Terms;",
        "failure": None,
        "rows_hint": 25_500,
        "clock": clock,
    }
    fields.update(overrides)
    return ReportState(**fields)


def test_progression_created_running_compiling_complete(make_sim: SimFactory):
    sim, _running, client = make_sim(users=2000, queue_seconds=2, run_seconds=10, compile_seconds=3)
    report = client.start(users="true", enrollments="true")
    rid = report["id"]
    assert report["status"] == "created"
    seen = []
    lines = []
    sim.wait_idle()
    for _ in range(9):  # t = 0, 2, ... 16: queued 2 s, runs 10 s, compiles 3 s
        body = client.status("provisioning_csv", rid).json()
        seen.append(body["status"])
        lines.append(body["current_line"])
        if body["status"] == "running":
            assert body["started_at"] is not None
            assert 0 <= body["progress"] < 100
            assert "attachment" not in body
            assert body["file_url"] is None
        sim.advance(2.0)
    assert seen[0] == "created"
    assert "running" in seen
    assert "compiling" in seen
    assert seen[-1] == "complete"
    assert lines == sorted(lines)
    assert all(line % 1000 == 0 for line, status in zip(lines, seen, strict=False) if status == "running")
    final = client.status("provisioning_csv", rid).json()
    assert final["progress"] == 100
    assert final["attachment"]["size"] > 0
    assert final["file_url"].endswith(f"/accounts/1/files/{final['attachment']['id']}/download")
    assert final["run_time"] == pytest.approx(13.0, abs=0.01)


def test_progress_rises_and_current_line_steps_of_1000():
    clock = Clock(lambda: 1_000_000.0)
    state = _state(clock)
    progress, lines = [], []
    clock.advance(2.0)
    for _ in range(9):
        clock.advance(1.0)
        snap = state.snapshot()
        assert snap.status == "running"
        progress.append(snap.progress)
        lines.append(snap.current_line)
    assert progress == sorted(progress)
    assert progress[0] < progress[-1] < 100
    assert all(line % 1000 == 0 for line in lines)
    assert lines[-1] > lines[0]


def test_one_table_is_not_parallel_no_compiling(make_sim: SimFactory):
    sim, _running, client = make_sim(compile_seconds=30)
    report = client.start(users="true")
    finish(sim, 11)
    assert client.status("provisioning_csv", report["id"]).json()["status"] == "complete"


def test_no_table_flag_ends_in_error_with_progress_100(sim_env):
    sim, _running, client = sim_env
    report = client.start("provisioning_csv", include_deleted="true")
    finish(sim)
    body = client.status("provisioning_csv", report["id"]).json()
    assert body["status"] == "error"
    assert body["progress"] == 100
    assert body["parameters"]["extra_text"].startswith(
        "Failed, please report the following error code to your system administrator: ErrorReport:"
    )
    assert "attachment" not in body
    assert body["file_url"] is None


@pytest.mark.parametrize(
    ("fate", "status", "text"),
    [
        ("error", "error", GENERIC_FAILURE),
        ("aborted_by_other", "aborted", ABORTED_TEXT),
    ],
)
def test_fates_ending_with_progress_100(make_sim: SimFactory, fate, status, text):
    sim, _running, client = make_sim()
    sim.script_report("provisioning_csv", fate)
    report = client.start()
    other = client.start()  # the script applies to one report only
    finish(sim)
    body = client.status("provisioning_csv", report["id"]).json()
    assert body["status"] == status
    assert body["progress"] == 100
    assert body["parameters"]["extra_text"] == text
    assert "attachment" not in body
    assert client.status("provisioning_csv", other["id"]).json()["status"] == "complete"


def test_deleted_by_someone_else_becomes_404(sim_env):
    sim, _running, client = sim_env
    sim.script_report(None, "deleted_by_other")
    report = client.start("grade_export_csv")
    sim.advance(2)
    assert client.status("grade_export_csv", report["id"]).json()["status"] == "running"
    sim.advance(10)
    assert client.status("grade_export_csv", report["id"]).status_code == 404
    assert client.reports("/grade_export_csv").json() == []


def test_stuck_created_and_stuck_running(sim_env):
    sim, _running, client = sim_env
    sim.script_report("provisioning_csv", "stuck_created")
    sim.script_report("provisioning_csv", "stuck_running")
    created = client.start()
    running = client.start()
    finish(sim, 3600 * 24)
    body = client.status("provisioning_csv", created["id"]).json()
    assert body["status"] == "created"
    assert body["started_at"] is None
    body = client.status("provisioning_csv", running["id"]).json()
    assert body["status"] == "running"
    assert body["progress"] < 100
    # A stuck running report can still be aborted.
    abort = client.reports(f"/provisioning_csv/{running['id']}/abort", method="PUT")
    assert abort.json()["status"] == "aborted"


def test_script_report_rejects_unknown_fate(sim_env):
    sim, _running, _client = sim_env
    with pytest.raises(ValueError, match="unknown fate"):
        sim.script_report(None, "exploded")


def test_file_still_generating_keeps_report_running():
    clock = Clock(lambda: 0.0)
    state = _state(clock, queue_seconds=0.0, compile_seconds=0.0, parallel=False)
    clock.advance(60)
    snap = state.snapshot()
    assert snap.status == "running"
    assert snap.progress == 99


def test_timestamps_have_offsets(make_sim: SimFactory):
    sim, _running, client = make_sim(utc_offset_minutes=-360)
    report = client.start()
    finish(sim)
    body = client.status("provisioning_csv", report["id"]).json()
    for key in ("created_at", "started_at", "ended_at"):
        assert body[key].endswith("-06:00")
    assert body["attachment"]["created_at"].endswith("-06:00")


def test_serialized_jobs_queue_behind_each_other():
    clock = Clock(lambda: 0.0)
    store = ReportStore(clock, serialize_jobs=True)
    first = store.add(_state(clock, id=1, queue_seconds=0.0, parallel=False))
    second = store.add(_state(clock, id=2, queue_seconds=0.0, parallel=False))
    clock.advance(5)
    assert first.status == "running"
    assert second.status == "created"
    assert store.abort(first)
    # The worker is free again: the queued report starts at once.
    clock.advance(0.5)
    assert second.status == "running"


def test_serialized_jobs_behind_a_stuck_report_stay_created(make_sim: SimFactory):
    sim, _running, client = make_sim(serialize_jobs=True)
    sim.script_report(None, "stuck_running")
    client.start()
    queued = client.start()
    finish(sim, 600)
    assert client.status("provisioning_csv", queued["id"]).json()["status"] == "created"


def test_mgp_without_term_exports_every_term(sim_env):
    # grade_reports.rb: a blank enrollment_term_id is root_account.enrollment_terms.active.
    sim, _running, client = sim_env
    mgp = client.start("mgp_grade_export_csv")
    finish(sim)
    body = client.status("mgp_grade_export_csv", mgp["id"]).json()
    assert body["status"] == "complete"
    assert body["attachment"]["content-type"] == "application/zip"


NO_SUBMISSIONS = "students_with_no_submissions_csv"


@pytest.mark.parametrize(
    ("sent", "settled"),
    [
        pytest.param(
            {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-10T00:00:00Z"}, {}, id="within-two-weeks"
        ),
        pytest.param(
            {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-15T00:00:00Z"}, {}, id="exactly-two-weeks"
        ),
        pytest.param(
            {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-02-01T00:00:00Z"},
            {"start_at": "2026-01-17T18:00:00-06:00"},
            id="longer-start-moved",
        ),
        pytest.param(
            {"start_at": "2026-01-01T00:00:00", "end_at": "2026-02-01T00:00:00Z"},
            {"start_at": "2026-01-17T18:00:00-06:00"},
            id="naive-bound-in-the-account-zone",
        ),
        pytest.param({"start_at": "2026-01-01"}, {"end_at": "2026-01-15T00:00:00-06:00"}, id="end-filled-in"),
        pytest.param(
            {"start_at": "last week", "end_at": "2026-02-01T00:00:00-06:00"},
            {"start_at": "2026-01-18T00:00:00-06:00"},
            id="unparseable-start-counts-as-absent",
        ),
        pytest.param(
            {"start_at": "2026-02-01T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"},
            {},
            id="reversed-used-as-given",
        ),
    ],
)
def test_no_submissions_period_is_settled_when_the_job_runs(sim_env, sent, settled):
    """Canvas never refuses the period: its job fills in or moves a bound and writes it back."""
    sim, _running, client = sim_env
    created = client.start(NO_SUBMISSIONS, **sent)
    assert {k: created["parameters"].get(k) for k in sent} == sent  # the start echoes what was sent
    finish(sim)
    report = client.status(NO_SUBMISSIONS, created["id"]).json()
    assert report["status"] == "complete"
    expected = {**sent, **settled}
    assert {k: report["parameters"].get(k) for k in expected} == expected


def test_no_submissions_without_a_period_covers_the_two_weeks_before_the_run(sim_env):
    sim, _running, client = sim_env
    created = client.start(NO_SUBMISSIONS)
    finish(sim)
    report = client.status(NO_SUBMISSIONS, created["id"]).json()
    start = datetime.fromisoformat(report["parameters"]["start_at"])
    end = datetime.fromisoformat(report["parameters"]["end_at"])
    assert end - start == timedelta(weeks=2)
    assert end == datetime.fromisoformat(report["started_at"])


def test_paused_job_workers_keep_new_reports_queued_until_resumed(make_sim: SimFactory):
    sim, _running, client = make_sim(queue_seconds=0, run_seconds=10)
    running = client.start()
    sim.advance(1)
    sim.pause_jobs()
    held = client.start()
    finish(sim, 3600)
    # Running jobs go on; the queued one never starts while the workers are down.
    assert client.status("provisioning_csv", running["id"]).json()["status"] == "complete"
    body = client.status("provisioning_csv", held["id"]).json()
    assert (body["status"], body["started_at"]) == ("created", None)
    sim.resume_jobs()
    sim.advance(5)
    body = client.status("provisioning_csv", held["id"]).json()
    assert body["status"] == "running"
    assert 40 <= body["progress"] <= 60  # it started at the resume, not at its creation
    finish(sim)
    assert client.status("provisioning_csv", held["id"]).json()["status"] == "complete"


def test_resumed_jobs_queue_behind_each_other_when_serialised():
    clock = Clock(lambda: 0.0)
    store = ReportStore(clock, serialize_jobs=True)
    store.pause_jobs()
    first = store.add(_state(clock, id=1, queue_seconds=0.0, parallel=False))
    second = store.add(_state(clock, id=2, queue_seconds=0.0, parallel=False))
    clock.advance(100)
    assert (first.status, second.status) == ("created", "created")
    store.resume_jobs()
    clock.advance(5)
    assert (first.status, second.status) == ("running", "created")
    clock.advance(10)  # the first one's job is done (its file is not: no file in this store)
    assert second.status == "running"


def test_pausing_holds_reports_already_queued_and_leaves_stuck_ones_stuck():
    clock = Clock(lambda: 0.0)
    store = ReportStore(clock)
    queued = store.add(_state(clock, id=1, queue_seconds=30.0, parallel=False))
    stuck = store.add(_state(clock, id=2, fate="stuck_created", parallel=False))
    store.pause_jobs()
    clock.advance(60)
    assert queued.status == "created"
    store.resume_jobs()
    clock.advance(1)
    assert (queued.status, stuck.status) == ("running", "created")


@pytest.mark.parametrize(
    ("flag", "status"),
    [
        ("true", "complete"),
        ("Yes", "complete"),
        ("on", "complete"),
        ("2", "complete"),
        ("off", "error"),
        ("no", "error"),
        ("none", "error"),
        (" true", "error"),
    ],
)
def test_table_flags_are_read_as_canvas_reads_booleans(sim_env, flag, status):
    """Canvas::Plugin.value_to_boolean: yes/y/true/t/on/1 in any case, else the leading integer."""
    sim, _running, client = sim_env
    created = client.start("provisioning_csv", users=flag)
    finish(sim)
    assert client.status("provisioning_csv", created["id"]).json()["status"] == status
