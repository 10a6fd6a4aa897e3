"""The token and the download links' signatures never reach a log, an XCom, a rendered field,
a trigger event or an exception.

The flows run for real with a distinctive token: dag.test() runs of start -> deferrable sensor
-> download (a ZIP report, extracted), of a report that fails, and of one that times out and is
cancelled; plus the same waits driven directly (each trigger event and exception captured as
objects). Then everything is scanned:

- every log record (caplog at DEBUG on the root logger) and everything printed (capfd: the task
  runner's structured log lines, tracebacks included);
- every file under AIRFLOW_HOME (task logs if any were written, the SQLite metadata DB and its
  journal, byte for byte);
- the metadata DB rows of these runs: XComs, rendered template fields, task instances (their
  ``next_kwargs`` hold the trigger event a deferred task resumed with) and their history, and
  triggers;
- the trigger events and exception texts of the direct runs.

Secrets searched: the token; every signature the simulator issued (the store's presigned
``X-Amz-Signature`` and ``X-Amz-Credential`` values, the files host's signed ticket); the
attachment URL's ``verifier``; and the presigned query parameter names themselves. The files
host and the store must also have received no Authorization header.

A download that gives up on the files host must not name its signed path (found by this suite,
fixed in 800d078); nor may urllib3's DEBUG request lines (the transport cuts them: see
test_urllib3_debug_lines...).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from secrets import token_hex
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.sdk import DAG
from canvas_harness import REPORT, Sim, listing, run_task, simulator

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
from airflow_provider_canvas_reports.simulator import Fault
from airflow_provider_canvas_reports.simulator.context import CTX
from tests.fixtures.dag_runs import run_dag

# Made at run time: dag.test() stores this module's source (the DAG file) in the metadata DB, so a
# literal here would be "found" in the DB scan.
TOKEN = "tok-SECRET-" + token_hex(16)
POLICY = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1, max_elapsed=10, read_timeout=5)
REPORT_ID = "{{ ti.xcom_pull(task_ids='start', key='report_id') }}"
PARAMETER_NAMES = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm")
# The third-party DEBUG logger that prints request lines (see test_urllib3_debug_lines...).
REQUEST_LINE_LOGGER = "urllib3.connectionpool"


@dataclass
class Secrets:
    """What must never be seen: the token, and every link credential the simulator hands out."""

    sim: Sim
    signatures: list[str] = field(default_factory=list)

    def verifiers(self) -> list[str]:
        # The simulator's attachment URL carries verifier=<uuid>, as Canvas's does; the uuid
        # is sha256(seed:id)[:40].
        seed = self.sim.sim.config.seed
        return [
            hashlib.sha256(f"{seed}:{attachment_id}".encode()).hexdigest()[:40]
            for attachment_id in self.sim.sim.attachments
        ]

    def sessions(self) -> list[str]:
        # The files domain's session cookies (a CSV's download): credentials for an hour.
        return list(self.sim.sim._runners[0].app[CTX].file_sessions)

    def values(self) -> list[str]:
        return [TOKEN, *self.signatures, *self.verifiers(), *self.sessions()]

    def found_in(self, text: str, *, names: bool = True) -> list[str]:
        wanted = self.values() + (list(PARAMETER_NAMES) if names else [])
        return [secret for secret in wanted if secret and secret in text]

    def found_in_bytes(self, data: bytes) -> list[str]:
        return [secret for secret in self.values() if secret and secret.encode() in data]


def record_signatures(sim: Sim) -> list[str]:
    """Watch the simulator's signer: every signature it issues is recorded (answers unchanged)."""
    signer = sim.sim._runners[0].app[CTX].signer
    issued: list[str] = []
    files_path, store_path = signer.files_path, signer.store_path

    def files(*args: Any, **kwargs: Any) -> str:
        path = files_path(*args, **kwargs)
        issued.append(path.rsplit("/", 1)[1].split("-", 1)[1])  # /files/<id>/<expires>-<signature>
        return path

    def store(*args: Any, **kwargs: Any) -> str:
        path = store_path(*args, **kwargs)
        query = parse_qs(urlsplit(path).query)
        issued.extend([query["X-Amz-Signature"][0], query["X-Amz-Credential"][0]])
        return path

    signer.files_path, signer.store_path = files, store
    return issued


@pytest.fixture
def secrets() -> Iterator[Secrets]:
    with simulator(tokens={TOKEN: True}, run_seconds=0.6) as sim:
        assert sim.token == TOKEN
        found = Secrets(sim)
        found.signatures = record_signatures(sim)
        yield found
        assert sim.counters.files_auth_headers == 0


@pytest.fixture
def everything(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Callable[[], tuple[list[logging.LogRecord], str]]:
    """Every log record from DEBUG up, and everything printed, since the test began."""
    caplog.set_level(logging.DEBUG)
    printed: list[str] = []

    def collect() -> tuple[list[logging.LogRecord], str]:
        out = capfd.readouterr()
        printed.append(out.out + out.err)
        return list(caplog.records), "".join(printed)

    return collect


def scan_records(secrets: Secrets, records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    leaks = []
    for record in records:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1]) + " " + str(record.exc_info[1])
        text += " " + " ".join(
            str(v) for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")
        )
        leaks.extend((record.name, secret) for secret in secrets.found_in(text))
    return leaks


def scan_printed(secrets: Secrets, printed: str) -> list[str]:
    return secrets.found_in(printed)


def scan_airflow_home(secrets: Secrets) -> dict[str, list[str]]:
    home = Path(os.environ["AIRFLOW_HOME"])
    found = {}
    for path in home.rglob("*"):
        if path.is_file():
            hits = secrets.found_in_bytes(path.read_bytes())
            if hits:
                found[str(path.relative_to(home))] = hits
    return found


def db_rows(dag_ids: list[str]) -> dict[str, list[str]]:
    """The rows of these DAGs' runs that could hold a secret, as text."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rendered
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    rows: dict[str, list[str]] = {
        "xcom": [],
        "rendered": [],
        "task_instance": [],
        "history": [],
        "trigger": [],
    }
    with create_session() as session:
        for xcom in session.scalars(select(XComModel).where(XComModel.dag_id.in_(dag_ids))):
            rows["xcom"].append(json.dumps(XComModel.deserialize_value(xcom), default=str))
        if hasattr(Rendered, "dag_id"):
            rendered = select(Rendered).where(Rendered.dag_id.in_(dag_ids))
        else:  # Airflow 3.4+: the rows are keyed by the task instance (try) they belong to
            rendered = (
                select(Rendered)
                .join(TaskInstance, Rendered.task_instance_id == TaskInstance.id)  # type: ignore[attr-defined]
                .where(TaskInstance.dag_id.in_(dag_ids))
                .execution_options(include_all_attempts=True)
            )
        for rtif in session.scalars(rendered):
            rows["rendered"].append(json.dumps(rtif.rendered_fields, default=str))
        for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id.in_(dag_ids))):
            rows["task_instance"].append(
                json.dumps([ti.next_kwargs, ti.next_method, ti.rendered_map_index], default=str)
            )
        for old in session.scalars(_earlier_tries(dag_ids)):
            rows["history"].append(json.dumps([old.next_kwargs, old.next_method], default=str))
        for trigger in session.scalars(select(Trigger)):
            rows["trigger"].append(json.dumps([trigger.classpath, trigger.kwargs], default=str))
    return rows


def _earlier_tries(dag_ids: list[str]) -> Any:
    """The rows of the tries before each task instance's latest: TaskInstanceHistory up to
    Airflow 3.3; from 3.4, task_instance rows outside the working set."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    try:
        from airflow.models.taskinstancehistory import TaskInstanceHistory
    except ModuleNotFoundError:
        return (
            select(TaskInstance)
            .where(TaskInstance.dag_id.in_(dag_ids), TaskInstance.working_set.is_(None))  # type: ignore[attr-defined]
            .execution_options(include_all_attempts=True)
        )
    return select(TaskInstanceHistory).where(TaskInstanceHistory.dag_id.in_(dag_ids))


def flow(dag_id: str, lake: Path, *, wait: dict[str, Any] | None = None) -> DAG:
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        start = StartAccountReportOperator(task_id="start", report=REPORT, canvas_retry_policy=POLICY,
                                           parameters={"users": True, "courses": True})  # fmt: skip
        sense = ReportCompleteSensor(task_id="wait", report=REPORT, report_id=REPORT_ID, deferrable=True,
                                     poke_interval=0.1, canvas_retry_policy=POLICY,
                                     **{"timeout": 30, **(wait or {})})  # fmt: skip
        land = DownloadReportOperator(task_id="land", report=REPORT, report_id=REPORT_ID, destination=lake.as_uri(),
                                      canvas_retry_policy=POLICY, download_attempts=1)  # fmt: skip
        waited = StartAccountReportOperator(task_id="start_and_wait", report=REPORT, wait_for_completion=True,
                                            deferrable=True, poll_interval=0.1, timeout=30,
                                            parameters={"users": True}, canvas_retry_policy=POLICY)  # fmt: skip
        start >> sense >> land
        land >> waited
    return dag


def test_no_secret_anywhere_after_successful_failing_and_timed_out_runs(
    secrets: Secrets, everything: Any, airflow_db: Any, tmp_path: Path
) -> None:
    sim = secrets.sim
    lake = tmp_path / "lake"

    ok = run_dag(flow("secrets_ok", lake))
    assert ok.states() == {
        "start": "success",
        "wait": "success",
        "land": "success",
        "start_and_wait": "success",
    }
    assert sorted(listing(lake)) == ["courses.csv", "users.csv"]

    sim.sim.script_report(REPORT, "error")
    failed = run_dag(flow("secrets_failing", tmp_path / "lake2"))
    assert failed["wait"].state == "failed"

    sim.sim.script_report(REPORT, "stuck_running")
    timed_out = run_dag(flow("secrets_timeout", tmp_path / "lake3", wait={"timeout": 1}))
    assert timed_out["wait"].state == "failed"
    assert sim.status(timed_out["start"].xcoms["report_id"]) == "aborted"

    # A download that fails at the store: its error names the store URL (without the query).
    sim.sim.add_fault(Fault(endpoint="store", kind="503", times=None))
    store_down = run_dag(flow("secrets_store_down", tmp_path / "lake4"))
    assert store_down["land"].state == "failed"
    sim.sim.faults.clear()

    # The flows really handed out credentials: the scan below has something to miss.
    assert len(secrets.signatures) >= 6
    assert secrets.verifiers()

    records, printed = everything()
    assert "Wait ended (success)" in printed  # the triggers' own log lines are part of the scan
    assert "Could not download report" in printed  # so are the tasks' tracebacks
    assert scan_records(secrets, records) == []
    assert scan_printed(secrets, printed) == []
    assert scan_airflow_home(secrets) == {}
    rows = db_rows(["secrets_ok", "secrets_failing", "secrets_timeout", "secrets_store_down"])
    assert rows["xcom"]
    assert rows["rendered"]
    assert rows["task_instance"]
    for table, texts in rows.items():
        assert [secrets.found_in(text) for text in texts if secrets.found_in(text)] == [], table
    assert sim.counters.files_auth_headers == 0


@pytest.mark.parametrize("fate", [None, "error", "stuck_created", "stuck_running", "deleted_by_other"])
def test_no_secret_in_trigger_events_results_or_exceptions(
    secrets: Secrets, everything: Any, fate: str | None
) -> None:
    """The waits driven directly: each trigger event and each exception is scanned as an object."""
    sim = secrets.sim
    if fate:
        sim.sim.script_report(REPORT, fate)
    start = run_task(StartAccountReportOperator(task_id="start", report=REPORT, parameters={"users": True},
                                                canvas_retry_policy=POLICY))  # fmt: skip
    wait = run_task(ReportCompleteSensor(task_id="wait", report=REPORT, report_id=start.result["id"], deferrable=True,
                                         poke_interval=0.1, timeout=1.5, canvas_retry_policy=POLICY))  # fmt: skip
    assert wait.deferred or fate == "deleted_by_other"
    assert (wait.error is None) == (fate is None)
    for run in (start, wait):
        texts = [json.dumps(run.result, default=str), json.dumps(run.events, default=str)]
        if run.error is not None:
            texts += [str(run.error), repr(run.error), repr(run.error.__cause__), repr(run.error.__context__)]
        for text in texts:
            assert secrets.found_in(text) == []
    records, printed = everything()
    assert scan_records(secrets, records) == []
    assert scan_printed(secrets, printed) == []


def test_no_files_host_signature_in_a_failed_download(
    secrets: Secrets, everything: Any, tmp_path: Path
) -> None:
    sim = secrets.sim
    start = run_task(StartAccountReportOperator(task_id="start", report=REPORT, parameters={"users": True},
                                                canvas_retry_policy=POLICY, wait_for_completion=True,
                                                deferrable=False, poll_interval=0.1))  # fmt: skip
    assert start.error is None, start.message
    sim.sim.add_fault(Fault(endpoint="files", kind="503", times=None))
    land = run_task(DownloadReportOperator(task_id="land", report=REPORT, report_id=start.result["id"],
                                           destination=(tmp_path / "lake").as_uri(), canvas_retry_policy=POLICY,
                                           download_attempts=1))  # fmt: skip
    files_port = sim.running.files_url.rsplit(":", 1)[1]
    assert land.message == (
        f"Could not download report #{start.result['id']}: the file host answered HTTP 503 after 2 attempts "
        f"(http://127.0.0.1:{files_port}). The task can be retried."
    )
    assert secrets.signatures  # the files host's ticket was issued, and is what must not show
    assert secrets.found_in(land.message) == []
    records, printed = everything()
    assert scan_records(secrets, records) == []
    assert scan_printed(secrets, printed) == []


def test_urllib3_debug_lines_carry_neither_presigned_queries_nor_the_token(
    secrets: Secrets, everything: Any, tmp_path: Path
) -> None:
    """At DEBUG, urllib3 logs each request line; the transport cuts them to what may be shown.

    Presigned store URLs (query strings) and the files host's signed ticket (its path) are
    short-lived credentials that would otherwise reach a DEBUG task log: off the Canvas origin
    only the origin, method, status and size remain. Headers are never logged, so the token is
    not among them either.
    """
    start = run_task(StartAccountReportOperator(task_id="start", report=REPORT, parameters={"users": True},
                                                canvas_retry_policy=POLICY, wait_for_completion=True,
                                                deferrable=False, poll_interval=0.1))  # fmt: skip
    land = run_task(DownloadReportOperator(task_id="land", report=REPORT, report_id=start.result["id"],
                                           destination=(tmp_path / "lake").as_uri(), canvas_retry_policy=POLICY))  # fmt: skip
    assert land.error is None, land.message
    records, _ = everything()
    lines = [r.getMessage() for r in records if r.name == REQUEST_LINE_LOGGER]
    canvas = secrets.sim.url
    # Canvas's own requests keep their paths (not their queries) ...
    assert any(line.startswith(f'{canvas} "GET /api/v1/accounts/self/reports/{REPORT}/') for line in lines)
    assert any(line.startswith(f'{canvas} "GET /accounts/') and "/download" in line for line in lines)
    # ... no signature of the files host (its path) or of the store (its query) is left ...
    assert len(secrets.signatures) >= 3  # the files host's ticket and the store's two values
    assert secrets.found_in(" ".join(lines)) == []
    # ... and their hops are still there, with neither path nor query.
    hidden = [line for line in lines if '"GET /... HTTP' in line and not line.startswith(canvas)]
    assert len({line.split(" ", 1)[0] for line in hidden}) == 2, lines


def test_the_async_download_logs_no_link_credential_at_debug(secrets: Secrets, everything: Any) -> None:
    """The async transport (aiohttp) follows the same redirect chain; aiohttp's client logs no
    request lines and ours logs no URL, so nothing at DEBUG names a hop's path or query."""
    start = run_task(StartAccountReportOperator(task_id="start", report=REPORT, parameters={"users": True},
                                                canvas_retry_policy=POLICY, wait_for_completion=True,
                                                deferrable=False, poll_interval=0.1))  # fmt: skip
    assert start.error is None, start.message
    everything()  # the sync start and wait above are the other tests' subject

    async def download() -> int:
        from airflow_provider_canvas_reports.canvas.report import Report
        from airflow_provider_canvas_reports.transport.aio import hold_shared_sessions

        async with hold_shared_sessions():
            hook = CanvasHook(retry_policy=POLICY)
            async with await hook.aopen_report_file(Report.from_json(start.result)) as opened:
                return sum([len(chunk) async for chunk in opened.chunks])

    assert asyncio.run(download()) == start.result["attachment"]["size"]
    assert len(secrets.signatures) >= 3  # the chain was walked: the files host's ticket, the store's values
    records, printed = everything()
    assert scan_records(secrets, records) == []
    assert scan_printed(secrets, printed) == []
