"""Memory stays flat however big the report: 512 MiB CSV and a ZIP with 512 MiB of members.

The download runs in a fresh subprocess that measures its own peak RSS (getrusage ru_maxrss)
before and after; the simulator serves from this process. Generated files are cached across runs
(CANVAS_TEST_CACHE, default <tmp>/canvas-provider-test-cache), so only the first run pays for
making them (~40 s on two cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
REPORT_BYTES = 512 * MiB
# Generous: the streaming path needs a few MiB of buffers (1 MiB chunks, 8 MiB upload parts);
# holding one file in memory would cost 512 MiB.
MAX_GROWTH_MIB = 300

MEASURE = r"""
import json, resource, sys, time

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.storage import resolve_destination

jobs = json.loads(sys.argv[1])
# Warm up everything but the download itself (imports, connection, filesystem).
CanvasHook().get_report(jobs[0]["report"], jobs[0]["report_id"])
resolve_destination(jobs[0]["destination"])
results = {"baseline_mib": peak_mib(), "runs": []}
for job in jobs:
    started = time.monotonic()
    op = DownloadReportOperator(task_id="land", asset_alias=None, **job)
    landed = op.execute({})
    results["runs"].append(
        {"report_id": job["report_id"], "landed": landed, "peak_mib": peak_mib(), "seconds": time.monotonic() - started}
    )
print("RESULT " + json.dumps(results))
"""


def cache_dir() -> Path:
    base = Path(
        os.environ.get("CANVAS_TEST_CACHE") or Path(tempfile.gettempdir()) / "canvas-provider-test-cache"
    )
    path = base / "simulator"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def big_canvas(monkeypatch: pytest.MonkeyPatch) -> Iterator[CanvasSimulator]:
    sim = CanvasSimulator(
        SimulatorConfig(users=2000, run_seconds=0.5, pad_to_bytes=REPORT_BYTES, data_dir=cache_dir())
    )
    with sim.run_in_thread() as running:
        monkeypatch.setenv(
            "AIRFLOW_CONN_CANVAS_DEFAULT",
            json.dumps({"conn_type": "canvas", "host": running.url, "password": running.token}),
        )
        yield sim


def complete(sim: CanvasSimulator, report: str, parameters: dict[str, Any]) -> int:
    from airflow_provider_canvas_reports.canvas.report import Phase
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

    hook = CanvasHook()
    report_id = hook.start_report(report, parameters).id
    deadline = time.monotonic() + 240  # generating 512 MiB on first use
    while hook.get_report(report, report_id).phase is Phase.WAITING:
        assert time.monotonic() < deadline, "the simulator did not finish generating in time"
        time.sleep(0.5)
    hook.close()
    return report_id


@pytest.mark.slow
def test_half_gigabyte_reports_download_and_extract_with_bounded_memory(
    big_canvas: CanvasSimulator, tmp_path: Path
) -> None:
    csv_id = complete(big_canvas, "provisioning_csv", {"users": True})
    zip_id = complete(big_canvas, "provisioning_csv", {"users": True, "enrollments": True})
    csv_file = big_canvas.reports[csv_id].attachment.file
    zip_file = big_canvas.reports[zip_id].attachment.file
    assert csv_file.size >= REPORT_BYTES
    assert zip_file.is_zip
    jobs = [
        {"report": "provisioning_csv", "report_id": csv_id, "destination": (tmp_path / "csv").as_uri()},
        {
            "report": "provisioning_csv",
            "report_id": zip_id,
            "destination": (tmp_path / "zip").as_uri(),
            "spool_dir": str(tmp_path),
        },
    ]
    try:
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps(jobs)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        [line] = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        result = json.loads(line.removeprefix("RESULT "))
        csv_run, zip_run = result["runs"]

        [csv_obj] = csv_run["landed"]
        assert csv_obj["size"] == csv_file.size
        zip_total = sum(o["size"] for o in zip_run["landed"])
        assert [o["name"] for o in zip_run["landed"]] == ["users.csv", "enrollments.csv"]
        assert zip_total >= REPORT_BYTES
        for run in result["runs"]:
            for obj in run["landed"]:
                assert (tmp_path / ("csv" if run is csv_run else "zip") / obj["name"]).stat().st_size == obj[
                    "size"
                ]

        growth = zip_run["peak_mib"] - result["baseline_mib"]
        print(
            f"\npeak RSS: baseline {result['baseline_mib']:.0f} MiB; after the {csv_file.size / MiB:.0f} MiB CSV "
            f"{csv_run['peak_mib']:.0f} MiB ({csv_run['seconds']:.1f}s); after the ZIP "
            f"({zip_file.size / MiB:.0f} MiB, {zip_total / MiB:.0f} MiB extracted) {zip_run['peak_mib']:.0f} MiB "
            f"({zip_run['seconds']:.1f}s); growth {growth:.0f} MiB"
        )
        assert growth < MAX_GROWTH_MIB
    finally:
        # 1.5 GiB landed and spooled: don't leave it in pytest's kept tmp dirs.
        shutil.rmtree(tmp_path / "csv", ignore_errors=True)
        shutil.rmtree(tmp_path / "zip", ignore_errors=True)
