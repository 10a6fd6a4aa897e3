"""The system-test session: Canvas simulators and one real Airflow deployment pointed at them.

``system`` (session scope) starts, once:

- four Canvas simulators, served from threads of this test process so tests read their counters
  and report states directly (the simulator has no HTTP endpoint for them). They differ only in
  timing and size, and accept one distinctive token that the secrets test hunts for:
  ``canvas_default`` (the nightly example's connection), ``canvas_big`` (16 MiB files, for
  killing downloads), ``canvas_queued`` (reports stay ``created`` for a while) and
  ``canvas_long`` (reports run for a while);
- the deployment of :mod:`.deployment` with the nightly example DAG and
  ``dags/canvas_system_dags.py`` in its dags folder, and ``AIRFLOW_CONN_<ID>`` for each simulator.

When a system test fails, its report gets the tails of every component's log and where the
whole AIRFLOW_HOME is; the folder is kept after a session with failures, removed otherwise.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator, SimulatorConfig

from .deployment import REPO_ROOT, Deployment

NIGHTLY_DAG_ID = "example_canvas_nightly_provisioning"
NIGHTLY_DAG_FILE = REPO_ROOT / "example_dags" / "example_canvas_nightly_provisioning.py"
SYSTEM_DAG_FILE = Path(__file__).parent / "dags" / "canvas_system_dags.py"
SYSTEM_DAG_IDS = (
    "canvas_system_kill_download_csv",
    "canvas_system_kill_download_zip",
    "canvas_system_kill_start_wait",
    "canvas_system_long_poke",
    "canvas_system_long_wait",
    "canvas_system_queued_wait",
    "canvas_system_take_turns",
)
MiB = 1 << 20

# Connection id -> simulator settings. Small data except where size is the point. Reports run
# for several seconds at least: a trigger that fires within a second or two of its task's
# deferral hits Airflow 3.3.2's scheduler race (apache/airflow#67287: the stale executor event
# of the deferring try arrives after the resume was queued, and the try is failed), which these
# tests are not about. See RELIABILITY.md.
SIMULATORS: dict[str, dict[str, Any]] = {
    "canvas_default": {"users": 200, "run_seconds": 8.0},
    "canvas_big": {"users": 200, "run_seconds": 6.0, "pad_to_bytes": 16 * MiB},
    "canvas_queued": {"users": 100, "queue_seconds": 30.0, "run_seconds": 2.0},
    "canvas_long": {"users": 100, "run_seconds": 60.0},
}


class AccessLog(logging.Handler):
    """Collects the simulators' access log lines (request lines carry the signed URLs)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        with self._guard:
            self.lines.append(line)

    def snapshot(self) -> list[str]:
        with self._guard:
            return list(self.lines)


@dataclass
class Sim:
    conn_id: str
    sim: CanvasSimulator
    running: RunningSimulator

    def new_reports(self, before: set[int]) -> list[int]:
        return sorted(set(self.sim.reports) - before)


@dataclass
class System:
    deployment: Deployment
    sims: dict[str, Sim]
    token: str
    lake: Path
    access_log: AccessLog
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def api(self) -> Any:
        return self.deployment.api


def _connection(url: str, token: str) -> str:
    return json.dumps({"conn_type": "canvas", "host": url, "password": token, "extra": {"account_id": "1"}})


_FAILED: list[str] = []  # system tests that failed this session


@pytest.fixture(scope="session")
def system() -> Iterator[System]:
    # Our own folder rather than tmp_path_factory's: pytest keeps only the newest three session
    # folders, so other pytest runs on the machine would delete the logs of a failure. It is
    # removed after a session without failures, and kept (and named in the report) otherwise.
    root = Path(tempfile.mkdtemp(prefix="canvas-system-"))
    token = "canvas-systest-token-" + secrets.token_hex(16)
    access_log = AccessLog()
    aiohttp_access = logging.getLogger("aiohttp.access")
    saved = (aiohttp_access.level, aiohttp_access.propagate)
    aiohttp_access.addHandler(access_log)
    aiohttp_access.setLevel(logging.INFO)
    aiohttp_access.propagate = False
    lake = root / "lake"
    lake.mkdir()
    with ExitStack() as stack:

        @stack.callback
        def _restore_logger() -> None:
            aiohttp_access.removeHandler(access_log)
            aiohttp_access.setLevel(saved[0])
            aiohttp_access.propagate = saved[1]

        sims: dict[str, Sim] = {}
        env: dict[str, str] = {}
        for conn_id, settings in SIMULATORS.items():
            config = SimulatorConfig(
                tokens={token: True},
                access_log=True,
                data_dir=str(root / "simulator-data" / conn_id),
                **settings,
            )
            sim = CanvasSimulator(config)
            running = stack.enter_context(sim.run_in_thread())
            sims[conn_id] = Sim(conn_id, sim, running)
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = _connection(running.url, token)
        env.update(
            {
                "AIRFLOW_VAR_CANVAS_LAKE_URL": lake.as_uri() + "/",
                "CANVAS_SYSTEST_LAKE": lake.as_uri() + "/",
                "CANVAS_POLL_INTERVAL": "1",
            }
        )
        deployment = Deployment(root, dag_files=(NIGHTLY_DAG_FILE, SYSTEM_DAG_FILE), env=env)
        stack.callback(deployment.stop)
        deployment.migrate_db()
        deployment.start_all()
        deployment.wait_ready((NIGHTLY_DAG_ID, *SYSTEM_DAG_IDS))
        system = System(deployment, sims, token, lake, access_log)
        try:
            yield system
        finally:
            # What the scenarios observed beyond their assertions, next to the logs.
            notes = {"timeline": deployment.timeline, **system.notes}
            (root / "notes.json").write_text(json.dumps(notes, indent=1, default=str))
    if _FAILED:
        print(f"\nsystem tests failed ({', '.join(_FAILED)}); the deployment's files are kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and "system" in getattr(item, "fixturenames", ()):
        _FAILED.append(item.name)
        system: System | None = item.funcargs.get("system") if hasattr(item, "funcargs") else None  # type: ignore[attr-defined]
        if system is not None:
            deployment = system.deployment
            report.sections.append(
                (
                    "system deployment",
                    f"AIRFLOW_HOME (kept): {deployment.home}\n{deployment.describe(80)}",
                )
            )
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The secrets scan runs last, so it also scans every log the crash scenarios left."""
    here = Path(__file__).parent
    last = [i for i in items if Path(str(i.path)).parent == here and i.name.startswith("test_no_secrets")]
    for item in last:
        items.remove(item)
        items.append(item)
