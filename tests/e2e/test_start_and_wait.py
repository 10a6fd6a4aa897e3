"""Start and wait, end to end: DAGs run with dag.test() against the Canvas simulator over HTTP.

dag.test() runs each task in-process and a deferred task's trigger inline, rebuilt from its
serialised kwargs (through airflow.sdk.serde), then resumes the task with the event; so the
deferrable paths here really go through ReportStatusTrigger (asserted through its log lines
and the simulator's poll counts).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS
from airflow.sdk import DAG

from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
from airflow_provider_canvas_reports.simulator import Fault
from tests.fixtures.simulator import queued_until_the_sensor_starts
from tests.fixtures.turns import turns

REPORT = "provisioning_csv"
REPORT_ID = "{{ ti.xcom_pull(task_ids='start', key='report_id') }}"
TRIGGER_LINE = "[airflow_provider_canvas_reports.triggers.reports.ReportStatusTrigger]"
LINK_KEY = "_link_CanvasReportsLink"
HAS_TASK_STATE_STORE = AIRFLOW_V_3_3_PLUS


def start_and_sense(dag_id: str, *, parameters: dict[str, Any] | None = None, **sensor_kwargs: Any) -> DAG:
    sensor_kwargs.setdefault("deferrable", True)
    sensor_kwargs.setdefault("poke_interval", 0.2)
    sensor_kwargs.setdefault("timeout", 60)
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        start = StartAccountReportOperator(
            task_id="start", report=REPORT, parameters=parameters or {"users": True}, deferrable=True
        )
        wait = ReportCompleteSensor(task_id="wait", report=REPORT, report_id=REPORT_ID, **sensor_kwargs)
        start >> wait
    return dag


def start_and_wait(dag_id: str, **start_kwargs: Any) -> DAG:
    """One start task that waits for its report (``wait_for_completion``), polling every 0.2 s."""
    start_kwargs.setdefault("poll_interval", 0.2)
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        StartAccountReportOperator(
            task_id="start",
            report=REPORT,
            parameters={"users": True},
            wait_for_completion=True,
            **start_kwargs,
        )
    return dag


def no_token(canvas: Any, result: Any, output: str) -> None:
    for task in result.tasks.values():
        assert canvas.token not in json.dumps(task.xcoms, default=str)
    assert canvas.token not in output


class TestDeferrableSensor:
    @pytest.mark.parametrize(
        ("parameters", "content_type", "suffix"),
        [
            ({"users": True}, "text/csv", ".csv"),
            ({"users": True, "courses": True}, "application/zip", ".zip"),
        ],
        ids=["csv-one-table", "zip-two-tables"],
    )
    def test_success(self, canvas_simulator, run_dag, capsys, parameters, content_type, suffix):
        held = queued_until_the_sensor_starts(canvas_simulator.sim)
        result = run_dag(start_and_sense(f"sw_success_{suffix[1:]}", parameters=parameters, **held))
        assert result.states() == {"start": "success", "wait": "success"}
        started, final = result["start"].return_value, result["wait"].return_value
        assert started["status"] == "created"
        assert final["id"] == started["id"] == result["start"].xcoms["report_id"]
        assert final["status"] == "complete"
        assert final["attachment"]["content-type"] == content_type
        assert final["attachment"]["filename"].endswith(suffix)
        assert canvas_simulator.starts[REPORT] == 1
        # The wait went through the trigger: it logged polls and the sensor's one check was not all.
        output = capsys.readouterr().out
        assert TRIGGER_LINE in output
        assert "Wait ended (success)" in output
        assert canvas_simulator.sim.counters.status_polls[final["id"]] >= 2
        # The extra link, computed by the worker at the end of each task, never with the token.
        url = f"{canvas_simulator.url}/accounts/self/settings#tab-reports"
        assert result["start"].xcoms["canvas_reports_url"] == url
        assert result["start"].xcoms[LINK_KEY] == url
        assert result["wait"].xcoms[LINK_KEY] == url
        no_token(canvas_simulator, result, output)

    def test_the_link_survives_the_deferral_without_xcom_push(self, canvas_simulator, run_dag, capsys):
        # do_xcom_push=False keeps the results out of XCom, not the link: the resumed try reads it.
        held = queued_until_the_sensor_starts(canvas_simulator.sim)
        result = run_dag(start_and_wait("sw_no_xcom_push", deferrable=True, do_xcom_push=False, **held))
        assert result.states() == {"start": "success"}
        url = f"{canvas_simulator.url}/accounts/self/settings#tab-reports"
        assert result["start"].xcoms[LINK_KEY] == url
        assert "report_id" not in result["start"].xcoms
        assert "return_value" not in result["start"].xcoms
        assert "XCom not found" not in capsys.readouterr().out

    @pytest.mark.parametrize(
        ("fate", "said"),
        [
            ("error", "ended with status 'error': Failed, the report failed to generate a file"),
            ("aborted_by_other", "ended with status 'aborted': Report has been aborted"),
            ("deleted_by_other", "(HTTP 404"),  # seen before or only after the deletion
        ],
    )
    def test_failed_reports_fail_the_sensor_with_canvas_reason(
        self, canvas_simulator, run_dag, capsys, fate, said
    ):
        canvas_simulator.sim.script_report(REPORT, fate)
        result = run_dag(start_and_sense(f"sw_{fate}"))
        assert result.states() == {"start": "success", "wait": "failed"}
        output = capsys.readouterr().out
        report_id = result["start"].xcoms["report_id"]
        assert f"#{report_id}" in output
        assert said in output
        assert canvas_simulator.requests["abort"] == canvas_simulator.requests["delete"] == 0

    def test_soft_fail_skips(self, canvas_simulator, run_dag):
        canvas_simulator.sim.script_report(REPORT, "error")
        result = run_dag(start_and_sense("sw_soft_fail", soft_fail=True))
        assert result.states() == {"start": "success", "wait": "skipped"}

    @pytest.mark.parametrize(
        ("fate", "action", "final", "said"),
        [
            # Canvas cannot stop a queued report: it is left for a retry to reconnect to.
            ("stuck_created", None, "created", "Left it queued in Canvas: Canvas cannot stop a report"),
            ("stuck_running", "abort", "aborted", "Cancelled it in Canvas: aborted it (it was running)"),
        ],
    )
    def test_stuck_report_is_cancelled_at_the_deadline(
        self, canvas_simulator, run_dag, capsys, fate, action, final, said
    ):
        canvas_simulator.sim.script_report(REPORT, fate)
        result = run_dag(start_and_sense(f"sw_{fate}", timeout=1.5))
        assert result.states() == {"start": "success", "wait": "failed"}
        for call in ("abort", "delete"):
            assert canvas_simulator.requests[call] == (call == action)
        report_id = result["start"].xcoms["report_id"]
        assert canvas_simulator.sim.reports[report_id].status == final
        output = capsys.readouterr().out
        assert "did not finish within 2s (the timeout)" in output
        assert said in output

    @pytest.mark.simulator(
        throttle="429", bucket_capacity=120, request_cost=50, actual_cost=35, leak_per_second=10
    )
    def test_throttle_storm(self, canvas_simulator, run_dag):
        held = queued_until_the_sensor_starts(canvas_simulator.sim)
        result = run_dag(
            start_and_sense(
                "sw_throttle", parameters={"users": True, "courses": True}, adaptive_polling=False, **held
            )
        )
        assert result.states() == {"start": "success", "wait": "success"}
        assert result["wait"].return_value["status"] == "complete"
        assert canvas_simulator.sim.counters.throttled > 0  # Canvas did throttle, and the wait rode it out


class TestPokeAndReschedule:
    @pytest.mark.parametrize("mode", ["poke", "reschedule"])
    def test_success_returns_the_final_report(self, canvas_simulator, run_dag, mode):
        held = queued_until_the_sensor_starts(canvas_simulator.sim)
        result = run_dag(start_and_sense(f"sw_{mode}", deferrable=False, mode=mode, **held))
        assert result.states() == {"start": "success", "wait": "success"}
        final = result["wait"].return_value
        assert final["status"] == "complete"
        assert final["id"] == result["start"].xcoms["report_id"]
        assert canvas_simulator.sim.counters.status_polls[final["id"]] >= 2

    @pytest.mark.parametrize("mode", ["poke", "reschedule"])
    def test_timeout_cancels_then_fails(self, canvas_simulator, run_dag, capsys, mode):
        canvas_simulator.sim.script_report(REPORT, "stuck_running")
        result = run_dag(start_and_sense(f"sw_{mode}_timeout", deferrable=False, mode=mode, timeout=1))
        assert result.states() == {"start": "success", "wait": "failed"}
        assert canvas_simulator.requests["abort"] == 1
        output = capsys.readouterr().out
        assert "(the sensor's timeout)" in output
        assert "Cancelled it in Canvas: aborted it" in output


class TestExecutionTimeout:
    """Airflow's execution_timeout ends a wait in the worker: the report is stopped in Canvas too
    (Airflow calls on_kill after the timeout has unwound the wait)."""

    @pytest.mark.parametrize("task", ["start-wait-in-worker", "sensor-poke"])
    def test_the_report_is_aborted(self, canvas_simulator, run_dag, capsys, task):
        canvas_simulator.sim.script_report(REPORT, "stuck_running")
        limit = timedelta(seconds=2)
        if task == "sensor-poke":
            dag = start_and_sense(
                "sw_exec_timeout_poke", deferrable=False, poke_interval=0.2, execution_timeout=limit
            )
            waiting = "wait"
        else:
            dag = start_and_wait(
                "sw_exec_timeout_start", deferrable=False, adaptive_polling=False, execution_timeout=limit
            )
            waiting = "start"
        result = run_dag(dag)
        assert result[waiting].state == "failed"
        report_id = result["start"].xcoms["report_id"]
        assert canvas_simulator.sim.reports[report_id].status == "aborted"
        assert canvas_simulator.requests["abort"] == 1
        assert f"Cancelled Canvas report {REPORT} #{report_id}: aborted it (it was running)." in (
            capsys.readouterr().out
        )


class TestStartOperatorWaiting:
    @pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-worker"])
    def test_wait_for_completion_returns_the_final_report(
        self, canvas_simulator, run_dag, capsys, deferrable
    ):
        result = run_dag(start_and_wait(f"sw_wait_{deferrable}", deferrable=deferrable))
        assert result.states() == {"start": "success"}
        final = result["start"].return_value
        assert final["status"] == "complete"
        assert final["id"] == result["start"].xcoms["report_id"]
        assert (TRIGGER_LINE in capsys.readouterr().out) is deferrable
        assert canvas_simulator.starts[REPORT] == 1

    @pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-worker"])
    def test_error_fails_with_canvas_reason(self, canvas_simulator, run_dag, capsys, deferrable):
        canvas_simulator.sim.script_report(REPORT, "error")
        result = run_dag(start_and_wait(f"sw_wait_error_{deferrable}", deferrable=deferrable))
        assert result.states() == {"start": "failed"}
        assert "Failed, the report failed to generate a file" in capsys.readouterr().out

    def test_deadline_aborts_a_running_report(self, canvas_simulator, run_dag, capsys):
        canvas_simulator.sim.script_report(REPORT, "stuck_running")
        result = run_dag(start_and_wait("sw_wait_deadline", deferrable=True, timeout=1.5))
        assert result.states() == {"start": "failed"}
        assert canvas_simulator.requests["abort"] == 1
        assert "Cancelled it in Canvas: aborted it (it was running)" in capsys.readouterr().out


def test_the_canvas_connection_may_come_from_a_template(canvas_simulator, run_dag):
    # One DAG file for several Canvas instances: the connection id rendered per run.
    with DAG(
        "sw_templated_conn",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params={"canvas": "canvas_default"},
    ) as dag:
        start = StartAccountReportOperator(
            task_id="start", report=REPORT, parameters={"users": True}, canvas_conn_id="{{ params.canvas }}"
        )
        wait = ReportCompleteSensor(
            task_id="wait",
            report=REPORT,
            report_id=REPORT_ID,
            canvas_conn_id="{{ params.canvas }}",
            deferrable=True,
            poke_interval=0.2,
        )
        start >> wait
    result = run_dag(dag)
    assert result.states() == {"start": "success", "wait": "success"}
    assert result["wait"].return_value["status"] == "complete"


class CrashAfterStart(StartAccountReportOperator):
    """Dies on its first try right after the parent started the report (a worker lost mid-task)."""

    def execute(self, context: Any) -> Any:
        try:
            result = super().execute(context)
        except TaskDeferred:
            if context["ti"].try_number == 1:  # about to hand the wait to the triggerer
                raise RuntimeError("simulated worker crash between start and wait") from None
            raise
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash between start and wait")
        return result


class TestRetriesNeverDuplicate:
    def test_retry_after_a_crash_reconnects_and_the_sensor_waits(self, canvas_simulator, run_dag, capsys):
        with DAG("sw_crash_then_sensor", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            start = CrashAfterStart(
                task_id="start",
                report=REPORT,
                parameters={"users": True},
                retries=1,
                retry_delay=timedelta(0),
            )
            wait = ReportCompleteSensor(
                task_id="wait", report=REPORT, report_id=REPORT_ID, deferrable=True, poke_interval=0.2
            )
            start >> wait
        result = run_dag(dag)
        assert result.states() == {"start": "success", "wait": "success"}
        assert result["start"].try_number == 2
        assert canvas_simulator.starts[REPORT] == 1  # exactly one report for both tries
        assert canvas_simulator.requests["start"] == 1
        assert result["wait"].return_value["id"] == result["start"].return_value["id"]
        output = capsys.readouterr().out
        assert "simulated worker crash" in output
        # 3.3+: found through task_state_store; 3.1/3.2: through the report index.
        assert ("an earlier try started" if HAS_TASK_STATE_STORE else "Adopting Canvas report") in output

    def test_retry_after_a_crash_before_deferring_reconnects(self, canvas_simulator, run_dag, capsys):
        with DAG("sw_crash_before_defer", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            CrashAfterStart(
                task_id="start", report=REPORT, parameters={"users": True}, wait_for_completion=True,
                deferrable=True, poll_interval=0.2, retries=1, retry_delay=timedelta(0),
            )  # fmt: skip
        result = run_dag(dag)
        assert result.states() == {"start": "success"}
        assert result["start"].try_number == 2
        assert result["start"].return_value["status"] == "complete"
        assert canvas_simulator.starts[REPORT] == 1
        assert canvas_simulator.requests["start"] == 1
        expected = "Reconnecting to the report an earlier try started" if HAS_TASK_STATE_STORE else "Adopting"
        assert expected in capsys.readouterr().out

    def test_lost_start_answer_is_adopted(self, canvas_simulator, run_dag, capsys):
        canvas_simulator.sim.faults.add(Fault(endpoint="start", kind="reset_after_send", times=1))
        result = run_dag(start_and_sense("sw_lost_post"))
        assert result.states() == {"start": "success", "wait": "success"}
        assert canvas_simulator.starts[REPORT] == 1
        assert canvas_simulator.requests["start"] == 1
        assert result["wait"].return_value["id"] == result["start"].xcoms["report_id"]
        assert "Adopting Canvas report" in capsys.readouterr().out


def test_templated_report_and_parameters_render_in_a_run(canvas_simulator, run_dag):
    with DAG(
        "sw_templates", schedule=None, start_date=datetime(2026, 1, 1), params={"term": "2026FA"}
    ) as dag:
        start = StartAccountReportOperator(
            task_id="start",
            report="{{ 'provisioning' }}_csv",
            parameters={"users": True, "enrollment_term_id": "sis_term_id:{{ params.term }}"},
        )
        wait = ReportCompleteSensor(
            task_id="wait", report="provisioning_csv", report_id=REPORT_ID, deferrable=True, poke_interval=0.2
        )
        start >> wait
    result = run_dag(dag)
    assert result.states() == {"start": "success", "wait": "success"}
    assert result["wait"].return_value["parameters"]["enrollment_term_id"] == "sis_term_id:2026FA"


def test_a_start_that_fails_before_starting_logs_only_its_own_error(canvas_simulator, run_dag, capsys):
    # At the end of every try the worker asks each extra link for its URL. A start that failed
    # before it had a report has none, and must say so without an XCom lookup: Airflow's client
    # logs a missing XCom as an error, which reads as a second fault.
    with DAG("sw_fails_early", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        StartAccountReportOperator(task_id="start", report="no_such_csv")
    result = run_dag(dag)
    assert result.states() == {"start": "failed"}
    output = capsys.readouterr().out
    assert "Canvas does not offer report 'no_such_csv'" in output
    assert "XCom not found" not in output
    assert result["start"].xcoms[LINK_KEY] == ""
    assert canvas_simulator.starts == {}


def test_start_tasks_released_together_take_turns(canvas_simulator, run_dag, capsys):
    """The DAG's start tasks with the same upstream tasks, and a mapped one's instances, each wait
    their place (rank by task_id, plus map index) x start_spacing; a start task alone does not."""
    spacing = 0.01
    with DAG("start_spacing", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        first, *_ = (
            StartAccountReportOperator(
                task_id=f"start_{name}", report=REPORT, parameters={"users": True}, start_spacing=spacing
            )
            for name in ("a", "b", "c")
        )
        StartAccountReportOperator.partial(task_id="start_m", report=REPORT, start_spacing=spacing).expand(
            parameters=[{"users": True}, {"courses": True}, {"terms": True}]
        )
        first >> StartAccountReportOperator(
            task_id="after", report=REPORT, parameters={"users": True}, start_spacing=spacing
        )
    result = run_dag(dag)
    assert set(result.states().values()) == {"success"}
    assert canvas_simulator.starts[REPORT] == 7
    waits = turns(capsys.readouterr().out)
    assert {turn.kind for turn in waits} == {"StartAccountReportOperator"}
    # (place, rank, of, map index): start_a is first (no wait) and `after` is alone (no wait).
    assert sorted((t.place, t.rank, t.of, t.map_index) for t in waits) == [
        (1, 1, 4, -1),
        (2, 2, 4, -1),
        (3, 3, 4, 0),
        (4, 3, 4, 1),
        (5, 3, 4, 2),
    ]
    assert all(t.pause == pytest.approx(t.place * spacing, abs=0.005) for t in waits)
