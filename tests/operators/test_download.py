"""DownloadReportOperator as a unit: arguments, outlets, errors and OpenLineage facets.

No dag.test() here (that is tests/e2e/test_download*.py): ``execute`` runs directly against a
simulator over real HTTP, so these tests also run on the oldest supported Airflow.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from airflow.sdk import Asset, AssetAlias

from airflow_provider_canvas_reports.canvas.errors import DownloadError, ReportNotFoundError
from airflow_provider_canvas_reports.canvas.report import Phase
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.lineage import canvas_dataset, object_dataset
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator, SimulatorConfig
from airflow_provider_canvas_reports.storage.errors import DestinationError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def canvas(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CanvasSimulator, RunningSimulator]]:
    sim = CanvasSimulator(SimulatorConfig(users=60, queue_seconds=0.1, run_seconds=0.5))
    with sim.run_in_thread() as running:
        monkeypatch.setenv(
            "AIRFLOW_CONN_CANVAS_DEFAULT",
            json.dumps({"conn_type": "canvas", "host": running.url, "password": running.token}),
        )
        yield sim, running


def finished(report: str, parameters: dict[str, Any]) -> int:
    hook = CanvasHook()
    started = hook.start_report(report, parameters)
    deadline = time.monotonic() + 30
    while hook.get_report(report, started.id).phase is Phase.WAITING:
        assert time.monotonic() < deadline, "report did not finish"
        time.sleep(0.05)
    hook.close()
    return started.id


# --- construction -------------------------------------------------------------------------------


def test_default_outlet_is_the_canvas_reports_alias() -> None:
    op = DownloadReportOperator(task_id="t", report="r", report_id=1, destination="file:///tmp/x/")
    assert op.outlets == [AssetAlias("canvas-reports")]
    assert set(op.template_fields) >= {"report", "report_id", "destination", "account_id", "canvas_conn_id"}


def test_alias_name_is_configurable_and_joins_user_outlets() -> None:
    mine = Asset("s3://lake/marker")
    op = DownloadReportOperator(
        task_id="t", report="r", report_id=1, destination="file:///tmp/x/", asset_alias="sis", outlets=[mine]
    )
    assert op.outlets == [mine, AssetAlias("sis")]
    quiet = DownloadReportOperator(
        task_id="q", report="r", report_id=1, destination="file:///tmp/x/", asset_alias=None
    )
    assert quiet.outlets == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overwrite": "sometimes"}, "not a known policy"),
        ({"download_attempts": 0}, "at least 1"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DownloadReportOperator(task_id="t", report="r", report_id=1, destination="file:///tmp/x/", **kwargs)


# --- execution errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("report_id", ["None", "", "{{ oops }}", "-3"])
def test_report_id_that_is_not_an_id_fails_without_retry(report_id: str, tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = DownloadReportOperator(
        task_id="t", report="provisioning_csv", report_id=report_id, destination=tmp_path.as_uri()
    )
    with pytest.raises(AirflowFailException, match="Invalid Canvas report id"):
        op.execute({})
    assert list(tmp_path.iterdir()) == []


def test_aborted_report_fails_without_retry_and_writes_nothing(canvas: Any, tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    sim, _ = canvas
    sim.script_report("provisioning_csv", "aborted_by_other")
    report_id = finished("provisioning_csv", {"users": True})
    op = DownloadReportOperator(
        task_id="t", report="provisioning_csv", report_id=report_id, destination=tmp_path.as_uri()
    )
    with pytest.raises(AirflowFailException, match=r"ended with status 'aborted'.*no file"):
        op.execute({})
    assert list(tmp_path.iterdir()) == []


def test_unknown_report_id_is_a_clear_error(canvas: Any, tmp_path: Path) -> None:
    op = DownloadReportOperator(
        task_id="t", report="provisioning_csv", report_id=999, destination=tmp_path.as_uri()
    )
    with pytest.raises(ReportNotFoundError, match=r"Canvas has no report provisioning_csv #999"):
        op.execute({})


def test_destination_without_a_filesystem_is_refused_before_downloading(canvas: Any) -> None:
    sim, _ = canvas
    report_id = finished("provisioning_csv", {"users": True})
    op = DownloadReportOperator(
        task_id="t", report="provisioning_csv", report_id=report_id, destination="nosuchfs://bucket/x/"
    )
    with pytest.raises(DestinationError, match="Destination scheme 'nosuchfs' has no filesystem"):
        op.execute({})
    assert sim.counters.requests["download"] == 0


def test_download_error_is_raised_after_bounded_attempts(canvas: Any, tmp_path: Path) -> None:
    from airflow_provider_canvas_reports.simulator import Fault

    sim, _ = canvas
    report_id = finished("provisioning_csv", {"users": True})
    sim.add_fault(Fault(endpoint="store", kind="truncate", times=None))
    op = DownloadReportOperator(
        task_id="t",
        report="provisioning_csv",
        report_id=report_id,
        destination=tmp_path.as_uri(),
        asset_alias=None,
        download_attempts=2,
        download_retry_delay=0.01,
    )
    with pytest.raises(DownloadError, match="Nothing was written"):
        op.execute({})
    assert sim.counters.requests["store"] == 2
    assert list(tmp_path.iterdir()) == []


# --- OpenLineage --------------------------------------------------------------------------------


def test_openlineage_facets_name_the_report_and_every_landed_object(canvas: Any, tmp_path: Path) -> None:
    _, running = canvas
    report_id = finished("provisioning_csv", {"users": True, "courses": True})
    op = DownloadReportOperator(
        task_id="t",
        report="provisioning_csv",
        report_id=str(report_id),
        destination=tmp_path.as_uri() + "/",
        account_id="self",
        asset_alias=None,
    )
    assert op.get_openlineage_facets_on_complete(None) is None  # nothing landed yet

    landed = op.execute({})
    lineage = op.get_openlineage_facets_on_complete(None)

    assert lineage is not None
    port = running.url.rsplit(":", 1)[1]
    [source] = lineage.inputs
    assert (source.namespace, source.name) == (f"http://127.0.0.1:{port}", "self/provisioning_csv")
    assert [(o.namespace, o.name) for o in lineage.outputs] == [
        ("file", str(tmp_path / "users.csv")),
        ("file", str(tmp_path / "courses.csv")),
    ]
    assert [o.outputFacets["outputStatistics"].size for o in lineage.outputs] == [o["size"] for o in landed]
    for obj in landed:
        data = (tmp_path / obj["name"]).read_bytes()
        assert obj["sha256"] == hashlib.sha256(data).hexdigest()
    # Nothing secret in what OpenLineage would send.
    from openlineage.client.serde import Serde

    sent = Serde.to_json(lineage.inputs[0]) + "".join(Serde.to_json(o) for o in lineage.outputs)
    assert running.token not in sent


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://lake/canvas/2026-01-01/users.csv", ("s3://lake", "canvas/2026-01-01/users.csv")),
        ("s3a://lake/users.csv", ("s3://lake", "users.csv")),
        ("gs://bucket/a/b.csv", ("gs://bucket", "a/b.csv")),
        ("gcs://bucket/a/b.csv", ("gs://bucket", "a/b.csv")),
        ("abfs://container/a.csv", ("abfss://container", "a.csv")),
        ("file:///data/lake/users.csv", ("file", "/data/lake/users.csv")),
    ],
)
def test_object_dataset_names_follow_openlineage_conventions(uri: str, expected: tuple[str, str]) -> None:
    assert object_dataset(uri) == expected


def test_canvas_dataset_namespace_is_the_origin_only() -> None:
    assert canvas_dataset("https://school.instructure.com/", "1", "grade_export_csv") == (
        "https://school.instructure.com",
        "1/grade_export_csv",
    )
    assert canvas_dataset("http://127.0.0.1:8900/canvas", "self", "x")[0] == "http://127.0.0.1:8900"


def test_operator_works_without_openlineage_installed(tmp_path: Path) -> None:
    """The openlineage extra is optional: with it missing, the operator imports, builds and runs."""
    code = f"""
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        # Provider registration (get_provider_info) may load; nothing that does lineage work.
        if name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage.")):
            if not name.endswith(".get_provider_info"):
                raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, Missing())
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
op = DownloadReportOperator(task_id="t", report="r", report_id="x", destination={str(tmp_path.as_uri())!r})
assert op.get_openlineage_facets_on_complete(None) is None
print("ok", sorted(m for m in sys.modules if m.startswith("openlineage")))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ok []"


@pytest.mark.parametrize("name", ["a#b.csv", "a?b.csv", "100%.csv", "Fall 2025 [1].csv"])
def test_asset_uris_keep_the_whole_object_name(name):
    from airflow.sdk import Asset

    from airflow_provider_canvas_reports.operators.download import asset_uri

    uri = f"file:///lake/canvas/{name}"
    announced = Asset(asset_uri(uri)).uri
    assert announced.rsplit("/", 1)[0] == "file:///lake/canvas"
    assert unquote(announced.rsplit("/", 1)[1]) == name  # nothing cut: one asset per object
