"""Start tasks of one DAG released together take turns, in real task runners (LocalExecutor).

Each task reads its place from the DAG the task runner parsed: its rank by task_id among the
DAG's start tasks with the same upstream tasks (`operators/_turns.py`). dag.test() runs tasks
in the test's process; this checks the same in the worker processes of a deployment.
"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import System
from .helpers import REPORT

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

DAG_ID = "canvas_system_take_turns"
TASKS = ("start_courses", "start_terms", "start_users")
TURN = re.compile(
    r"Waiting ([\d.]+)s before the first request to Canvas: place (\d+) among the "
    r"StartAccountReportOperator tasks released together \(rank (\d+) of the DAG's (\d+)"
)


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
        found = [m for e in events if (m := TURN.search(e))]
        places[task_id] = [(float(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in found] or None
    # By task_id: the first goes at once (no line), the others wait 1 and 2 x start_spacing (0.2 s).
    assert places == {
        "start_courses": None,
        "start_terms": [(0.2, 1, 1, 3)],
        "start_users": [(0.4, 2, 2, 3)],
    }
