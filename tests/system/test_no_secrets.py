"""The nightly example DAG, scheduled on a real deployment, leaks no credential anywhere.

Every simulator accepts one distinctive token, so every system test run (crashes included, since
this test runs last) used it. Afterwards the token and the signed download links (the store's
presigned ``X-Amz-Signature`` and the files host's signed ticket, both credentials while they
live, and the ``verifier`` Canvas puts in a file's URL, which opens it without a token) must
appear in no file under AIRFLOW_HOME (task logs, trigger logs, the logs of every
component, the metadata DB and its WAL), no XCom value, no rendered template field and no
trigger event the REST API shows. The files host and the store must never have seen an
``Authorization`` header.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import NIGHTLY_DAG_ID, System
from .deployment import wait_for
from .helpers import expected_objects, landed

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

TABLES = ("users", "courses", "sections", "enrollments", "terms", "accounts")
# Signed links as the simulator hands them out (see simulator/signing.py).
STORE_SIGNATURE = re.compile(r"X-Amz-Signature=([0-9a-f]{64})")
FILES_TICKET = re.compile(r"/files/\d+/\d+-([0-9a-f]{64})")
VERIFIER = re.compile(r"[?&]verifier=([^&\s\"']+)")
# Names that only occur in a signed URL: their presence means a URL was logged or stored whole.
URL_MARKERS = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm", "verifier=")


def _scheduled_run(system: System) -> dict[str, Any]:
    """Unpause the nightly DAG: the scheduler creates its latest scheduled run by itself."""
    system.api.unpause(NIGHTLY_DAG_ID)
    runs = wait_for(
        "the scheduler to create the nightly run",
        lambda: system.api.dag_runs(NIGHTLY_DAG_ID),
        timeout=60,
    )
    assert len(runs) == 1, runs
    assert runs[0]["run_type"] == "scheduled"
    return system.deployment.wait_run(NIGHTLY_DAG_ID, runs[0]["dag_run_id"], timeout=180)


def _api_documents(system: System) -> dict[str, str]:
    """Every task instance's API view (rendered fields, trigger) and XComs, as JSON text."""
    api = system.api
    documents = {}
    for dag in api.get("/dags", params={"limit": 100})["dags"]:
        dag_id = dag["dag_id"]
        for run in api.dag_runs(dag_id):
            run_id = run["dag_run_id"]
            for task_id in api.task_instances(dag_id, run_id):
                for attempt in api.tries(dag_id, run_id, task_id):
                    documents[f"{dag_id}/{run_id}/{task_id}/try {attempt['try_number']}"] = json.dumps(
                        attempt
                    )
                ti = api.task_instance(dag_id, run_id, task_id)
                documents[f"{dag_id}/{run_id}/{task_id} (task instance)"] = json.dumps(ti)
                xcoms = api.xcoms(dag_id, run_id, task_id)
                documents[f"{dag_id}/{run_id}/{task_id} (xcom)"] = json.dumps(xcoms, default=str)
                for attempt_number in range(1, ti["try_number"] + 1):
                    log = api.log(dag_id, run_id, task_id, attempt_number)
                    documents[f"{dag_id}/{run_id}/{task_id} (log via API, try {attempt_number})"] = log
    return documents


def _verifiers(system: System) -> set[str]:
    """The ``verifier`` of every report file, as Canvas's API hands it out: it opens the file
    without a token, so it is a credential too."""
    found = set()
    for each in system.sims.values():
        for report_id, state in list(each.sim.reports.items()):
            if state.attachment is None:
                continue
            resp = requests.get(
                f"{each.running.url}/api/v1/accounts/{state.account_id}/reports/{state.report}/{report_id}",
                headers={"Authorization": f"Bearer {system.token}"},
                timeout=30,
            )
            if resp.status_code == 200 and resp.json().get("attachment"):
                found.update(VERIFIER.findall(resp.json()["attachment"].get("url") or ""))
    return found


def _find(needles: dict[str, bytes], haystacks: dict[str, bytes]) -> list[str]:
    hits = []
    for where, data in haystacks.items():
        lowered = data.lower()
        for label, needle in needles.items():
            if needle.lower() in lowered:
                hits.append(f"{label} in {where}")
    return hits


def test_no_secrets_in_logs_xcom_rendered_fields_or_events(system: System) -> None:
    deployment = system.deployment
    sim = system.sims["canvas_default"]
    before = set(sim.sim.reports)
    run = _scheduled_run(system)
    assert run["state"] == "success", deployment.describe_run(NIGHTLY_DAG_ID, run["dag_run_id"])

    # The nightly export did its job: one object per table, byte for byte Canvas's file.
    (report_id,) = sim.new_reports(before)
    ds = run["logical_date"][:10]
    folder = system.lake / "canvas" / "provisioning" / ds
    expected = expected_objects(sim, report_id)
    assert sorted(expected) == sorted(f"{t}.csv" for t in TABLES)
    assert landed(folder) == expected

    # The credentials to look for.
    access = "\n".join(system.access_log.snapshot())
    signatures = set(STORE_SIGNATURE.findall(access))
    tickets = set(FILES_TICKET.findall(access))
    assert signatures, "the store served no presigned URL: the download chain was not exercised"
    assert tickets, "the files host saw no signed ticket: the download chain was not exercised"
    verifiers = _verifiers(system)
    assert verifiers, "no report file carried a verifier: nothing to look for"
    needles = {"the API token": system.token.encode()}
    needles.update({f"store signature {s[:8]}...": s.encode() for s in signatures})
    needles.update({f"files ticket {t[:8]}...": t.encode() for t in tickets})
    needles.update({f"file verifier {v[:6]}...": v.encode() for v in verifiers})
    needles.update({m: m.encode() for m in URL_MARKERS})

    # Everything under AIRFLOW_HOME: task and trigger logs, component logs, DB (+ WAL), config.
    files = {str(p.relative_to(deployment.home)): p.read_bytes() for p in deployment.all_files()}
    trigger_logs = [f for f in files if ".log.trigger." in f]
    assert trigger_logs, "no trigger log files: the scan would miss what triggers log"
    assert any(Path(f).name == "airflow.db" for f in files)
    assert len([f for f in files if f.startswith("process-logs/")]) >= 4
    # The scan sees real content: report ids are logged (and the scan is case-insensitive).
    assert any(f"#{report_id}".encode() in data for data in files.values())
    hits = _find(needles, files)

    # What the REST API shows: task instances (rendered fields, trigger), XComs, served logs.
    documents = _api_documents(system)
    rendered = [json.loads(d) for k, d in documents.items() if k.endswith("(task instance)")]
    assert any(ti["rendered_fields"] for ti in rendered)
    # The served logs are read, not an error body: the nightly run's logs name its report.
    served = [d for k, d in documents.items() if "(log via API" in k and NIGHTLY_DAG_ID in k]
    assert any(f"#{report_id}" in log for log in served), "the served task logs were not read"
    hits += _find(needles, {k: v.encode() for k, v in documents.items()})

    assert not hits, "credentials leaked:\n" + "\n".join(hits)
    # The token went to the Canvas hosts only.
    for each in system.sims.values():
        assert each.sim.counters.files_auth_headers == 0, each.conn_id
    assert sim.sim.counters.requests["files"] >= 1
    assert sim.sim.counters.requests["store"] >= 1
