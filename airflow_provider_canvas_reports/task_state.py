"""What Airflow now records for a task instance, asked when the task is killed: whether its
report is still wanted decides whether a kill stops it in Canvas."""

from __future__ import annotations

from typing import Any

# A task in one of these states will never use its report: a kill then stops the report. In any
# other (marked success, cleared, still running) the report may still be wanted: a cleared task's
# next try waits for it again, and after a success the download lands it once it completes.
# Skipped covers a DAG run's timeout too (the scheduler skips its unfinished tasks, deferred ones
# included); "gone": the task instance (or its DAG run) was deleted.
GIVEN_UP_STATES = frozenset({"failed", "upstream_failed", "skipped", "removed", "gone"})


def task_state(ti: Any) -> str:
    """The state Airflow now records for `ti`'s task instance.

    ``none`` for a cleared task, ``gone`` when the task instance no longer exists; raises when
    the state cannot be read. Asked through the process's supervisor (the Task SDK's task-states
    request, in a worker or a triggerer); blocks until the supervisor answers.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    states = RuntimeTaskInstance.get_task_states(
        dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
    )
    runs = states.get(ti.run_id) or {}
    # The API keys a mapped task instance as "<task_id>_<map_index>".
    key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
    if key not in runs:
        return "gone"
    state = runs[key]
    return "none" if state is None else str(getattr(state, "value", state))


def kept_because(state: str) -> str | None:
    """Why a kill leaves the report to finish, for a task Airflow now records in `state`; None
    when the task gave the report up and the kill stops it."""
    if state in GIVEN_UP_STATES:
        return None
    if state == "deferred":  # seen by a trigger only: the task still waits for the report
        return (
            "its task is still deferred, so this trigger was stopped for another reason than a user "
            "action (it moved to another triggerer, which keeps waiting for the report)"
        )
    return (
        f"its task is now '{state}' (marked success or cleared, say, or its worker is stopping), and "
        "the report may still be wanted: a next try waits for the same report, and after a success "
        "the download lands it once it completes"
    )


def unknown_state_note(exc: BaseException, where: str) -> str:
    """What a kill that cannot read its task's state says: it leaves the report, and where to stop
    it by hand (`where`) if the task was in fact marked failed."""
    return (
        f"could not tell whether its task still waits for it ({str(exc) or type(exc).__name__}). "
        f"If the task was marked failed, stop the report by hand {where}"
    )


def is_execution_timeout(exc: BaseException | None) -> bool:
    """Whether `exc` is Airflow's execution_timeout firing."""
    try:
        from airflow.sdk.exceptions import AirflowTaskTimeout
    except ImportError:  # Airflow 3.1: the class moved to the Task SDK in 3.2
        from airflow.exceptions import AirflowTaskTimeout  # type: ignore[no-redef]
    return isinstance(exc, AirflowTaskTimeout)
