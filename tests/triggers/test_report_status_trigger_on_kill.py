"""ReportStatusTrigger.on_kill: cancel the report only once Airflow says its task stopped waiting.

Airflow 3.3.2 calls ``on_kill`` both for a user action and for a trigger that moved to another
triggerer (RELIABILITY.md). Here the task instances are real rows in the test's metadata DB, the
trigger gets the task instance the way the triggerer hands it over, and its question goes through
Airflow's own in-process supervisor comms and execution API (what ``dag.test()`` runs triggers
with) to that DB. Canvas is the simulator, over real HTTP.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.simulator import CanvasSimulator, Fault
from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger, retry_policy_kwargs
from tests.fixtures.dag_runs import register

DAG_ID = "canvas_on_kill_task_state"
SENSOR = "wait_for_export"
MAPPED = "wait_for_exports"
FAST_RETRIES = RetryPolicy(max_attempts=2, base_delay=0.02, max_delay=0.05, max_retry_after=0.2)


@pytest.fixture(autouse=True)
async def _close_sessions():
    yield
    await aio.close_shared_sessions()


@pytest.fixture(scope="module")
def dag(airflow_db: Any) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

    with DAG(DAG_ID, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
        ReportCompleteSensor(task_id=SENSOR, report="provisioning_csv", report_id=1, deferrable=True)
        ReportCompleteSensor.partial(task_id=MAPPED, report="provisioning_csv", deferrable=True).expand(
            report_id=[1, 2]
        )
    register(dag)
    return dag


class Run:
    """A DAG run in the metadata DB; a test sets its task instances' states, as Airflow would."""

    def __init__(self, run_id: str) -> None:
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState
        from airflow.utils.types import DagRunTriggeredByType, DagRunType

        self.run_id = run_id
        now = datetime.now(timezone.utc)
        with create_session() as session:
            serialized = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
            assert serialized is not None
            serialized.create_dagrun(
                run_id=run_id,
                logical_date=now,
                data_interval=(now, now),
                run_after=now,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.RUNNING,
                session=session,
            )

    def _ti(self, session: Any, task_id: str, map_index: int) -> Any:
        from airflow.models.taskinstance import TaskInstance
        from sqlalchemy import select

        return session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.run_id == self.run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        ).one()

    def set_state(self, state: str | None, task_id: str = SENSOR, map_index: int = -1) -> None:
        from airflow.utils.session import create_session

        with create_session() as session:
            self._ti(session, task_id, map_index).state = state

    def task_instance(self, task_id: str = SENSOR, map_index: int = -1) -> Any:
        """The task instance as the triggerer hands it to a trigger it starts."""
        from airflow.executors.workloads import TaskInstance as TaskInstanceDTO
        from airflow.utils.session import create_session

        with create_session() as session:
            return TaskInstanceDTO.model_validate(self._ti(session, task_id, map_index), from_attributes=True)


@pytest.fixture
def run(dag: Any, request: pytest.FixtureRequest) -> Run:
    return Run(f"{request.node.originalname}-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def supervisor(airflow_db: Any) -> Any:
    """Airflow's in-process supervisor comms, answering from the test's metadata DB."""
    import psutil
    import structlog
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms, InProcessTestSupervisor

    sup = InProcessTestSupervisor(
        id=uuid.uuid4(),
        pid=os.getpid(),
        process=psutil.Process(),
        process_log=structlog.get_logger(),
        client=InProcessTestSupervisor._api_client(),
    )
    sup.comms = InProcessSupervisorComms(supervisor=sup)
    return sup


@pytest.fixture
def supervisor_comms(supervisor: Any, dag: Any) -> Iterator[None]:
    from airflow.sdk.execution_time.supervisor import set_supervisor_comms
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    with set_supervisor_comms(supervisor.comms):
        # The in-process API builds its routes on the first request (seconds on a busy machine):
        # done here, so that on_kill's bounded wait for the answer measures the question alone.
        RuntimeTaskInstance.get_task_states(dag_id=DAG_ID, task_ids=[SENSOR])
        yield


def trigger_for(report_id: int, ti: Any, **kwargs: Any) -> ReportStatusTrigger:
    trig = ReportStatusTrigger(
        canvas_conn_id="canvas_default",
        report="provisioning_csv",
        report_id=report_id,
        poll_interval=0.1,
        deadline=time.time() + 30,
        adaptive_polling=False,
        **kwargs,
    )
    trig.task_instance = ti
    return trig


def start(canvas: CanvasSimulator, fate: str = "stuck_running") -> int:
    """A report that stays queued (``stuck_created``) or, once it left the queue, running."""
    canvas.script_report("provisioning_csv", fate)
    hook = CanvasHook()
    report_id = hook.start_report("provisioning_csv", {"users": True}).id
    give_up = time.monotonic() + 30
    while fate == "stuck_running" and hook.get_report("provisioning_csv", report_id).status != "running":
        assert time.monotonic() < give_up, f"report #{report_id} never started running"
        time.sleep(0.05)
    return report_id


def cancel_calls(canvas: CanvasSimulator) -> int:
    return canvas.counters.requests["abort"] + canvas.counters.requests["delete"]


@pytest.mark.usefixtures("supervisor_comms")
class TestUserAction:
    """The task left ``deferred``: marked failed or skipped (a DAG run's timeout skips it too), the
    report is stopped; marked success, or cleared, it is left for the download or the next try."""

    @pytest.mark.parametrize("state", ["failed", "upstream_failed", "skipped", "removed"])
    async def test_a_running_report_is_aborted(
        self, canvas: CanvasSimulator, run: Run, state: str | None, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start(canvas)
        trig = trigger_for(report_id, run.task_instance())
        polling = asyncio.ensure_future(anext(trig.run()))
        await asyncio.sleep(0.5)
        run.set_state(state)
        polling.cancel()  # the triggerer cancels run(), then calls on_kill
        with pytest.raises(asyncio.CancelledError):
            await polling
        await trig.on_kill()
        assert canvas.counters.requests["abort"] == 1
        assert canvas.reports[report_id].status == "aborted"
        assert f"(task state {state})" in capsys.readouterr().out

    @pytest.mark.parametrize("state", ["success", None], ids=["success", "cleared"])
    async def test_a_report_still_needed_keeps_running(
        self, canvas: CanvasSimulator, run: Run, state: str | None, capsys: pytest.CaptureFixture[str]
    ):
        # Marked success, the tasks after it download the report; cleared, the next try waits for it.
        report_id = start(canvas)
        run.set_state(state)
        await trigger_for(report_id, run.task_instance()).on_kill()
        assert cancel_calls(canvas) == 0
        assert canvas.reports[report_id].status == "running"
        assert f"its task is now '{state or 'none'}'" in capsys.readouterr().out

    async def test_cancelled_again_meanwhile_as_airflow_does_the_stop_still_happens(
        self, canvas: CanvasSimulator, run: Run
    ):
        # Airflow 3.3.2's trigger runner cancels the trigger's task again on every pass of its
        # loop until it ends, on_kill included: the state check and the cancel must outlive that.
        report_id = start(canvas)
        run.set_state("failed")
        kill = asyncio.ensure_future(trigger_for(report_id, run.task_instance()).on_kill())
        await asyncio.sleep(0)  # on_kill has started: it awaits the state now
        kill.cancel("__airflow_user_action__")
        with pytest.raises(asyncio.CancelledError):
            await kill
        await asyncio.wait_for(asyncio.gather(*ReportStatusTrigger._stopping), 30)
        assert canvas.counters.requests["abort"] == 1
        assert canvas.reports[report_id].status == "aborted"

    async def test_a_queued_report_is_left_and_the_log_says_why(
        self, canvas: CanvasSimulator, run: Run, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start(canvas, "stuck_created")
        run.set_state("failed")
        await trigger_for(report_id, run.task_instance()).on_kill()
        # Deleting it would not stop it (its queued job runs it anyway), and it would hide it.
        assert canvas.counters.requests["delete"] == canvas.counters.requests["abort"] == 0
        assert canvas.reports[report_id].status == "created"
        assert "Canvas cannot stop a report that has not started" in capsys.readouterr().out

    async def test_canvas_failing_is_logged_never_raised(
        self, canvas: CanvasSimulator, run: Run, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start(canvas)
        run.set_state("failed")
        for endpoint in ("status", "abort", "delete"):
            canvas.faults.add(Fault(endpoint=endpoint, kind="503", times=None))
        trig = trigger_for(report_id, run.task_instance(), retry_policy=retry_policy_kwargs(FAST_RETRIES))
        await trig.on_kill()
        assert canvas.reports[report_id].status == "running"
        assert "Could not cancel Canvas report" in capsys.readouterr().out


@pytest.mark.usefixtures("supervisor_comms")
class TestTriggerMoved:
    """The task is still ``deferred``: the trigger moved to another triggerer, which still waits."""

    async def test_the_report_keeps_running(
        self, canvas: CanvasSimulator, run: Run, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start(canvas)
        run.set_state("deferred")
        await trigger_for(report_id, run.task_instance()).on_kill()
        assert cancel_calls(canvas) == 0
        assert canvas.reports[report_id].status == "running"
        assert "its task is still deferred" in capsys.readouterr().out

    async def test_mapped_task_instances_are_told_apart(self, canvas: CanvasSimulator, run: Run):
        moved, marked = start(canvas), start(canvas)
        run.set_state("deferred", MAPPED, 0)
        run.set_state("failed", MAPPED, 1)
        await trigger_for(moved, run.task_instance(MAPPED, 0)).on_kill()
        await trigger_for(marked, run.task_instance(MAPPED, 1)).on_kill()
        assert canvas.reports[moved].status == "running"
        assert canvas.reports[marked].status == "aborted"
        assert cancel_calls(canvas) == 1


async def test_state_unknown_leaves_the_report_and_says_how_to_stop_it(
    canvas: CanvasSimulator, run: Run, capsys: pytest.CaptureFixture[str]
):
    # No supervisor comms (as outside a triggerer): the state cannot be read. Aborting a report
    # another triggerer waits for would fail that run, so the report is left, with a warning.
    report_id = start(canvas)
    run.set_state("failed")
    await trigger_for(report_id, run.task_instance()).on_kill()
    assert cancel_calls(canvas) == 0
    assert canvas.reports[report_id].status == "running"
    out = capsys.readouterr().out
    assert "could not tell whether its task still waits" in out
    assert "stop the report by hand in Canvas" in out
