"""Start tasks of one DAG released together take turns, in real task runners (LocalExecutor).

Each task reads its place from the DAG the task runner parsed: its rank by task_id among the
DAG's start tasks with the same upstream tasks (`operators/_turns.py`). dag.test() runs tasks
in the test's process; this checks the same in the worker processes of a deployment.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.turns import turns

from .conftest import System
from .helpers import REPORT

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

DAG_ID = "canvas_system_take_turns"
TASKS = ("start_courses", "start_terms", "start_users")


def test_start_tasks_released_together_take_turns(system: System) -> None:
    sim = system.sims["canvas_default"]
    starts_before = sim.sim.counters.starts[REPORT]
    system.api.unpause(DAG_ID)
    system.api.trigger(DAG_ID, "take-turns")
    run = system.deployment.wait_run(DAG_ID, "take-turns", timeout=180)
    assert run["state"] == "success", system.deployment.describe_run(DAG_ID, "take-turns")
    assert sim.sim.counters.starts[REPORT] == starts_before + 3

    places = {}
    for task_id in TASKS:
        [log_file] = system.deployment.task_log_files(DAG_ID, "take-turns", task_id)
        # The task runner writes one JSON object per line; the message is its "event".
        events = [json.loads(line).get("event", "") for line in log_file.read_text().splitlines() if line]
        found = turns("\n".join(events))
        assert {t.kind for t in found} <= {"StartAccountReportOperator"}
        places[task_id] = [(t.pause, t.place, t.rank, t.of) for t in found] or None
    # By task_id: the first goes at once (no line), the others wait 1 and 2 x start_spacing (0.2 s).
    assert places == {
        "start_courses": None,
        "start_terms": [(0.2, 1, 1, 3)],
        "start_users": [(0.4, 2, 2, 3)],
    }
