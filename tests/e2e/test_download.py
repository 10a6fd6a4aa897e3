"""DownloadReportOperator end to end: dag.test() against the simulator over real HTTP, file:// lake.

Every test checks what landed byte for byte against the file the simulator generated, or that
the destination is exactly as it was before a failed run (no object, no temp, old object intact).
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_canvas_reports.canvas.report import Phase
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
from airflow_provider_canvas_reports.simulator import Fault
from airflow_provider_canvas_reports.simulator.reportfiles import ZIP_TYPE, BuiltFile

PROVISIONING_TABLES = ("users", "accounts", "terms", "courses", "sections", "enrollments")
# Fast client retries so fault tests spend their time on the faults, not on backoff.
FAST_RETRIES = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, max_elapsed=20)


# --- helpers ----------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(folder: Path) -> dict[str, bytes]:
    """Everything in a folder, hidden files included (a leftover temp must show up)."""
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def finished_report(canvas: Any, report: str, parameters: dict[str, Any] | None = None) -> int:
    """Start a report through the hook (real HTTP) and wait until Canvas says it is over."""
    hook = CanvasHook()
    started = hook.start_report(report, parameters or {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = hook.get_report(report, started.id)
        if current.phase is not Phase.WAITING:
            hook.close()
            return started.id
        time.sleep(0.1)
    raise AssertionError(f"report {started.id} did not finish")


def generated_file(canvas: Any, report_id: int) -> Path:
    attachment = canvas.sim.reports[report_id].attachment
    assert attachment is not None
    return Path(attachment.file.path)


def download_dag(dag_id: str, **operator_kwargs: Any) -> DAG:
    operator_kwargs.setdefault("download_retry_delay", 0.05)
    operator_kwargs.setdefault("canvas_retry_policy", FAST_RETRIES)
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
        DownloadReportOperator(task_id="land", **operator_kwargs)
    return dag


def asset_events(dag_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == dag_id)).all()
        return [
            {
                "uri": event.asset.uri,
                "extra": dict(event.extra or {}),
                "aliases": sorted(alias.name for alias in event.source_aliases),
                "task_id": event.source_task_id,
            }
            for event in events
        ]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "canvas"


@pytest.fixture
def canvas(canvas_simulator: Any) -> Any:
    return canvas_simulator


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far: stdlib logging records and what dag.test()'s task runner printed."""

    def text() -> str:
        out = capfd.readouterr()
        return caplog.text + out.out + out.err

    return text


RunDag = Callable[..., Any]


# --- content ----------------------------------------------------------------------------------


def test_csv_report_lands_byte_for_byte_after_start_and_wait(
    canvas: Any, run_dag: RunDag, lake: Path, logs: Callable[[], str]
) -> None:
    with DAG("dl_csv_chain", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        start = StartAccountReportOperator(
            task_id="start",
            report="last_user_access_csv",
            wait_for_completion=True,
            deferrable=False,
            poll_interval=0.2,
        )
        land = DownloadReportOperator(
            task_id="land",
            report="last_user_access_csv",
            report_id="{{ ti.xcom_pull(task_ids='start')['id'] }}",
            destination=lake.as_uri() + "/{{ ds }}/",
        )
        start >> land

    result = run_dag(dag)

    assert result.states() == {"start": "success", "land": "success"}
    report_id = result["start"].return_value["id"]
    source = generated_file(canvas, report_id)
    attachment = canvas.sim.reports[report_id].attachment
    landed = result["land"].return_value
    folder = next((lake).iterdir())
    expected_bytes = source.read_bytes()
    assert landed == [
        {
            "uri": (folder / attachment.display_name).as_uri(),
            "name": attachment.display_name,
            "size": len(expected_bytes),
            "sha256": sha256(expected_bytes),
        }
    ]
    assert listing(folder) == {attachment.display_name: expected_bytes}
    # One asset event per object, through the default alias, with the report in its extra.
    assert asset_events("dl_csv_chain") == [
        {
            "uri": landed[0]["uri"],
            "extra": {
                "report": "last_user_access_csv",
                "report_id": report_id,
                "uri": landed[0]["uri"],
                "name": attachment.display_name,
                "size": len(expected_bytes),
                "sha256": sha256(expected_bytes),
            },
            "aliases": ["canvas-reports"],
            "task_id": "land",
        }
    ]
    # The token went to the Canvas host only, and nothing secret reached a log.
    assert canvas.sim.counters.files_auth_headers == 0
    text = logs()
    assert "Landed 1 object(s)" in text
    for secret in (canvas.token, "X-Amz-Signature", "/objects/account_reports"):
        assert secret not in text


def test_the_report_id_xcom_key_serves_as_report_id_through_output(
    canvas: Any, run_dag: RunDag, lake: Path
) -> None:
    # As the README shows: start.output["report_id"] (the key the start pushes), not ["id"].
    with DAG("dl_output_key", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        start = StartAccountReportOperator(task_id="start", report="last_user_access_csv")
        wait = ReportCompleteSensor(
            task_id="wait",
            report="last_user_access_csv",
            report_id=start.output["report_id"],
            poke_interval=0.2,
        )
        land = DownloadReportOperator(
            task_id="land",
            report="last_user_access_csv",
            report_id=start.output["report_id"],
            destination=lake.as_uri(),
        )
        start >> wait >> land

    result = run_dag(dag)

    assert result.states() == {"start": "success", "wait": "success", "land": "success"}
    report_id = result["start"].return_value["id"]
    assert result["wait"].return_value["id"] == report_id
    assert [obj["size"] for obj in result["land"].return_value] == [
        len(generated_file(canvas, report_id).read_bytes())
    ]


def test_zip_report_lands_one_object_per_member(canvas: Any, run_dag: RunDag, lake: Path) -> None:
    report_id = finished_report(canvas, "provisioning_csv", dict.fromkeys(PROVISIONING_TABLES, True))
    source = generated_file(canvas, report_id)

    spools = lake.parent / "spools"
    spools.mkdir(parents=True)
    foreign = spools / "canvas-report-0000aaaa0000aaaa-x.spool"
    foreign.write_bytes(b"another task's spool")
    result = run_dag(
        download_dag(
            "dl_zip",
            report="provisioning_csv",
            report_id=report_id,
            destination=lake.as_uri(),
            spool_dir=str(spools),
        )
    )

    assert result["land"].state == "success"
    # The ZIP was spooled there and removed; another task's spool is not ours to touch.
    assert list(spools.iterdir()) == [foreign]
    with zipfile.ZipFile(source) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    assert sorted(members) == sorted(f"{t}.csv" for t in PROVISIONING_TABLES)
    assert listing(lake) == members
    assert result["land"].return_value == [
        {
            "uri": (lake / name).as_uri(),
            "name": name,
            "size": len(data),
            "sha256": sha256(data),
        }
        for name, data in members.items()
    ]
    events = asset_events("dl_zip")
    assert sorted(e["uri"] for e in events) == sorted((lake / n).as_uri() for n in members)
    assert all(e["aliases"] == ["canvas-reports"] and e["extra"]["report_id"] == report_id for e in events)


def test_a_term_name_with_a_slash_lands_whole(canvas: Any, run_dag: RunDag, lake: Path) -> None:
    # mgp_grade_export_csv names each member after a term, and "2025/26" is a common term name:
    # Canvas's ZIP holds "Summer 2025/26.csv", which must not land as "26.csv".
    report_id = finished_report(canvas, "mgp_grade_export_csv", {"enrollment_term_id": 4})
    with zipfile.ZipFile(generated_file(canvas, report_id)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    assert sorted(members) == ["Summer 2025/26.csv"]

    result = run_dag(
        download_dag("dl_mgp", report="mgp_grade_export_csv", report_id=report_id, destination=lake.as_uri())
    )

    assert result["land"].state == "success"
    assert listing(lake) == {"Summer 2025_26.csv": members["Summer 2025/26.csv"]}
    assert [item["name"] for item in result["land"].return_value] == ["Summer 2025_26.csv"]


def test_zip_report_lands_as_one_object_without_extraction(canvas: Any, run_dag: RunDag, lake: Path) -> None:
    report_id = finished_report(canvas, "provisioning_csv", {"users": True, "courses": True})
    source = generated_file(canvas, report_id)
    name = canvas.sim.reports[report_id].attachment.display_name
    assert name.endswith(".zip")

    result = run_dag(
        download_dag(
            "dl_zip_whole",
            report="provisioning_csv",
            report_id=report_id,
            destination=lake.as_uri(),
            extract_zip=False,
            asset_alias="canvas-zips",
        )
    )

    assert result["land"].state == "success"
    assert listing(lake) == {name: source.read_bytes()}
    assert [e["aliases"] for e in asset_events("dl_zip_whole")] == [["canvas-zips"]]


def test_direct_download_from_a_self_hosted_canvas(start_simulator: Any, run_dag: RunDag, lake: Path) -> None:
    """Self-hosted Canvas may answer the file URL with 200 itself, without redirects."""
    canvas = start_simulator(direct_download=True)
    report_id = finished_report(canvas, "provisioning_csv", {"users": True})

    result = run_dag(
        download_dag("dl_direct", report="provisioning_csv", report_id=report_id, destination=lake.as_uri())
    )

    assert result["land"].state == "success"
    assert list(listing(lake).values()) == [generated_file(canvas, report_id).read_bytes()]


# --- failures leave the destination untouched ---------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        ("store", "truncate"),  # the connection closes mid-body
        ("store", "wrong_length"),  # a complete answer, shorter than the attachment
        ("store", "html"),  # a 200 login page instead of the file
        ("store", "reset"),  # TCP reset before any answer
        ("files", "expired"),  # the signed link was refused
    ],
)
def test_download_failure_leaves_destination_untouched(
    canvas: Any, run_dag: RunDag, lake: Path, endpoint: str, kind: str
) -> None:
    report_id = finished_report(canvas, "provisioning_csv", {"users": True, "courses": True})
    lake.mkdir(parents=True)
    (lake / "users.csv").write_bytes(b"yesterday's users\n")
    before = listing(lake)
    canvas.sim.add_fault(Fault(endpoint=endpoint, kind=kind, times=None, report_id=report_id))

    result = run_dag(
        download_dag("dl_fault", report="provisioning_csv", report_id=report_id, destination=lake.as_uri())
    )

    assert result["land"].state == "failed"
    assert listing(lake) == before
    assert asset_events("dl_fault") == []
    # The whole download was tried again, a bounded number of times.
    assert canvas.sim.counters.requests["download"] >= 3


def test_transient_download_failure_is_retried_and_lands_once(
    canvas: Any, run_dag: RunDag, lake: Path
) -> None:
    report_id = finished_report(canvas, "provisioning_csv", {"users": True, "courses": True})
    canvas.sim.add_fault(Fault(endpoint="store", kind="truncate", times=1, report_id=report_id))

    result = run_dag(
        download_dag(
            "dl_transient", report="provisioning_csv", report_id=report_id, destination=lake.as_uri()
        )
    )

    assert result["land"].state == "success"
    assert result["land"].try_number == 1  # retried inside the try, not by Airflow
    assert canvas.sim.counters.requests["store"] == 2
    with zipfile.ZipFile(generated_file(canvas, report_id)) as zf:
        assert listing(lake) == {info.filename: zf.read(info) for info in zf.infolist()}


def test_report_in_error_fails_with_canvas_reason_and_no_retry(
    canvas: Any, run_dag: RunDag, lake: Path, logs: Callable[[], str]
) -> None:
    canvas.sim.script_report("provisioning_csv", "error")
    report_id = finished_report(canvas, "provisioning_csv", {"users": True})

    result = run_dag(
        download_dag(
            "dl_error", report="provisioning_csv", report_id=report_id, destination=lake.as_uri(), retries=2
        )
    )

    assert result["land"].state == "failed"
    assert result["land"].try_number == 1  # no file will ever appear: retrying is pointless
    text = logs()
    assert f"#{report_id} ended with status 'error'" in text
    assert "There is no file to download" in text
    assert not lake.exists()
    assert canvas.sim.counters.requests["download"] == 0


def test_report_still_running_is_not_downloaded(start_simulator: Any, run_dag: RunDag, lake: Path) -> None:
    canvas = start_simulator(run_seconds=600)
    report = CanvasHook().start_report("provisioning_csv", {"users": True})

    result = run_dag(
        download_dag("dl_running", report="provisioning_csv", report_id=report.id, destination=lake.as_uri())
    )

    assert result["land"].state == "failed"
    assert not lake.exists()
    assert canvas.sim.counters.requests["download"] == 0


# --- overwrite policy -----------------------------------------------------------------------------


def test_overwrite_replace_fail_and_skip_identical(canvas: Any, run_dag: RunDag, lake: Path) -> None:
    report_id = finished_report(canvas, "provisioning_csv", {"users": True, "terms": True})
    with zipfile.ZipFile(generated_file(canvas, report_id)) as zf:
        fresh = {info.filename: zf.read(info) for info in zf.infolist()}
    lake.mkdir(parents=True)

    def run(dag_id: str, policy: str) -> Any:
        return run_dag(
            download_dag(
                dag_id,
                report="provisioning_csv",
                report_id=report_id,
                destination=lake.as_uri(),
                overwrite=policy,
            )
        )

    # replace (the default): an old object is replaced by the new one.
    (lake / "users.csv").write_bytes(b"old\n")
    assert run("dl_replace", "replace")["land"].state == "success"
    assert listing(lake) == fresh

    # fail: an existing object stops the task before anything is written.
    (lake / "users.csv").write_bytes(b"old\n")
    (lake / "terms.csv").unlink()
    before = listing(lake)
    assert run("dl_fail", "fail")["land"].state == "failed"
    assert listing(lake) == before

    # skip_identical: identical objects are kept as they are (same inode), others replaced.
    (lake / "users.csv").write_bytes(fresh["users.csv"])
    inode = (lake / "users.csv").stat().st_ino
    result = run("dl_skip", "skip_identical")
    assert result["land"].state == "success"
    assert listing(lake) == fresh
    assert (lake / "users.csv").stat().st_ino == inode
    assert [o["name"] for o in result["land"].return_value] == ["users.csv", "terms.csv"]


# --- hostile ZIPs ---------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes], *, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buf.getvalue()


def serve_instead(canvas: Any, report_id: int, path: Path) -> None:
    """Make the simulator serve `path` as the report's file (Canvas's attachment metadata follows)."""
    attachment = canvas.sim.reports[report_id].attachment
    size = path.stat().st_size
    attachment.file = BuiltFile(path=path, size=size, rows=0, content_type=ZIP_TYPE, members=())
    attachment.size = size


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({"users.csv": b"a\n", "../../escaped.csv": b"x\n"}, "UnsafeNameError"),
        ({"users.csv": b"a\n", "/etc/cron.d/evil": b"x\n"}, "UnsafeNameError"),
        ({"users.csv": b"0" * (64 << 20)}, "ZipBombError"),  # ~1000:1 deflate ratio
    ],
    ids=["traversal", "absolute", "bomb"],
)
def test_hostile_zip_is_refused_and_nothing_lands(
    canvas: Any,
    run_dag: RunDag,
    tmp_path: Path,
    lake: Path,
    members: dict[str, bytes],
    error: str,
    logs: Callable[[], str],
) -> None:
    report_id = finished_report(canvas, "provisioning_csv", {"users": True, "courses": True})
    evil = tmp_path / "evil.zip"
    evil.write_bytes(_zip_bytes(members))
    serve_instead(canvas, report_id, evil)

    result = run_dag(
        download_dag("dl_evil", report="provisioning_csv", report_id=report_id, destination=lake.as_uri())
    )

    assert result["land"].state == "failed"
    assert result["land"].try_number == 1
    assert listing(lake) == {}
    assert not (tmp_path / "lake" / "escaped.csv").exists()
    assert canvas.sim.counters.requests["store"] == 1  # refused at once, not retried
    assert error in logs()


# --- a killed earlier try -------------------------------------------------------------------------


def test_leftovers_of_a_killed_try_are_cleaned(canvas: Any, run_dag: RunDag, lake: Path) -> None:
    report_id = finished_report(canvas, "provisioning_csv", {"users": True, "courses": True})
    lake.mkdir(parents=True)
    # What kill -9 of the previous try leaves: a hidden temp of one of this task's objects. The
    # retry may come seconds later, so even a fresh one is removed.
    (lake / ".users.csv.partial-0123456789abcdef").write_bytes(b"half a file from a killed try")
    # Not ours to touch: another object's temp and an unrelated file.
    (lake / ".notes.txt.partial-0123456789abcdef").write_bytes(b"someone else's upload")
    (lake / "notes.txt").write_bytes(b"keep me")

    result = run_dag(
        download_dag("dl_stale", report="provisioning_csv", report_id=report_id, destination=lake.as_uri())
    )

    assert result["land"].state == "success"
    assert sorted(listing(lake)) == [
        ".notes.txt.partial-0123456789abcdef",
        "courses.csv",
        "notes.txt",
        "users.csv",
    ]
    assert (lake / "notes.txt").read_bytes() == b"keep me"


def test_leftover_of_a_killed_csv_try_is_cleaned(canvas: Any, run_dag: RunDag, lake: Path) -> None:
    report_id = finished_report(canvas, "last_user_access_csv")
    name = canvas.sim.reports[report_id].attachment.display_name
    lake.mkdir(parents=True)
    (lake / f".{name}.partial-fedcba9876543210").write_bytes(b"half")

    result = run_dag(
        download_dag(
            "dl_stale_csv", report="last_user_access_csv", report_id=report_id, destination=lake.as_uri()
        )
    )

    assert result["land"].state == "success"
    assert listing(lake) == {name: generated_file(canvas, report_id).read_bytes()}
