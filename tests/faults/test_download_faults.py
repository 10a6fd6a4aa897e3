"""Fault matrix, stages "redirect", "download" and "ZIP": DownloadReportOperator.execute().

The report file travels Canvas host (``download``, wants the token) -> files host (``files``,
302) -> store (``store``, the bytes). Every simulator fault is injected at each hop, once (the
task must land the exact file) and persistently (the task must fail with a clear message and
leave the destination exactly as it was: no object, no hidden temp, no spool file). The token
never reaches the files host or the store (the simulator counts Authorization headers there).

One simulator serves the whole module: the operator only reads (one CSV report and one ZIP
report, finished once); faults and counters are reset before each case.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from canvas_harness import (
    HANG_GUARD,
    REPORT,
    SLOW,
    Sim,
    TaskRun,
    finished_report,
    listing,
    matrix_policy,
    run_task,
    simulator,
)

from airflow_provider_canvas_reports.canvas.endpoints import MAX_REDIRECTS
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.simulator import Fault

POLICY = matrix_policy(max_retry_after=2)
ATTEMPTS = 2  # whole-download attempts of the operator


@dataclass
class Reports:
    sim: Sim
    csv_id: int
    zip_id: int

    def file(self, report_id: int) -> Path:
        attachment = self.sim.sim.reports[report_id].attachment
        assert attachment is not None
        return Path(attachment.file.path)

    def csv_name(self) -> str:
        attachment = self.sim.sim.reports[self.csv_id].attachment
        assert attachment is not None
        return attachment.display_name

    def zip_members(self) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(self.file(self.zip_id).read_bytes())) as zf:
            return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="module")
def reports() -> Iterator[Reports]:
    with simulator(throttle="429") as sim:
        csv_id = finished_report(sim, REPORT, {"users": True})
        zip_id = finished_report(sim, REPORT, {"users": True, "courses": True, "sections": True})
        yield Reports(sim, csv_id, zip_id)


@pytest.fixture
def canvas(reports: Reports, monkeypatch: pytest.MonkeyPatch) -> Reports:
    from canvas_harness import connection_json, env_name

    monkeypatch.setenv(env_name("canvas_default"), connection_json(reports.sim.url, reports.sim.token))
    reports.sim.sim.faults.clear()
    reports.sim.counters.reset()
    reports.sim.sim.throttle.reset()
    return reports


def land(report_id: int, lake: Path, spool: Path, **kwargs: Any) -> TaskRun:
    spool.mkdir(parents=True, exist_ok=True)
    task = DownloadReportOperator(
        task_id="land",
        report=REPORT,
        report_id=report_id,
        destination=lake.as_uri(),
        canvas_retry_policy=POLICY,
        download_attempts=ATTEMPTS,
        download_retry_delay=0.05,
        spool_dir=str(spool),
        **kwargs,
    )
    return run_task(task)


# Faults a hop can suffer, injected once: the download must still land the exact bytes.
ONCE = (
    "500", "502", "503", "504", "throttle", "throttle_bare", "reset", "reset_after_send", "slow", "stall", "truncate",
    "wrong_length", "html", "redirect_loop", "auth_redirect", "expired", "404", "401", "while1",
)  # fmt: skip


@pytest.mark.parametrize("kind", ONCE)
@pytest.mark.parametrize("hop", ["download", "files", "store"])
def test_one_fault_on_a_hop_still_lands_the_exact_file(
    canvas: Reports, tmp_path: Path, hop: str, kind: str
) -> None:
    canvas.sim.sim.add_fault(Fault(endpoint=hop, kind=kind, delay=SLOW))
    lake = tmp_path / "lake"
    run = land(canvas.csv_id, lake, tmp_path / "spool")
    assert run.elapsed < HANG_GUARD
    assert run.error is None, run.message
    expected = canvas.file(canvas.csv_id).read_bytes()
    assert listing(lake) == {canvas.csv_name(): expected}
    [landed] = run.result
    assert landed["size"] == len(expected)
    assert landed["name"] == canvas.csv_name()
    assert canvas.sim.counters.files_auth_headers == 0
    assert canvas.sim.counters.faults[kind] == 1  # the fault did hit the hop


# The hop is named by scheme, host and port only: paths and queries of the files host and the
# store carry signatures.
PERSISTENT_CHAIN = (
    r"Could not download report #{id}: {why} after 3 attempts \(http://127\.0\.0\.1:{port}\)\. The task can "
    r"be retried\."
)
LOGIN_PAGE = (
    r"The download of report #{id} returned an HTML page \(a login or error page\) instead of the report file\. "
    r"Check the token can read files on this account, then retry\."
)
LOOP = (
    r"The report download was redirected more than 5 times \(a redirect loop\)\. Canvas or its file store is "
    r"misbehaving; retry later\."
)


def persistent_message(hop: str, kind: str) -> str:
    """The error a task ends with when `kind` hits `hop` on every attempt."""
    # Only the first hop is Canvas; the files host and the store are named as "the file host".
    peer = "Canvas" if hop == "download" else "the file host"
    chain = {
        "503": f"{peer} answered HTTP 503",
        "throttle": rf"{peer} throttled the request \(HTTP 429\)",
        "reset": f"the connection to {peer} was reset",
        "slow": f"{peer} did not answer in time",
    }
    if kind in chain:
        return PERSISTENT_CHAIN.format(id="{id}", why=chain[kind], port="{port:" + hop + "}")
    if kind in ("html", "auth_redirect"):
        return LOGIN_PAGE
    if kind == "redirect_loop":
        return LOOP
    if kind == "401":
        # The Canvas host (which got the token) refused: the token is the problem, not the link.
        return (
            r"Canvas refused the download of report #{id} \(HTTP 401\): the token cannot read this account's "
            r"files\. Give the token's user the permission to view the report files, or use another token\."
        )
    if kind in ("expired", "404"):
        status = {"expired": 403, "404": 404}[kind]
        return (
            rf"The download of report #{{id}} ended with HTTP {status} from http://127\.0\.0\.1:{{port:{hop}}} "
            r"instead of the file\. A signed link that expired or was refused gets a fresh one on the next "
            r"attempt; if every attempt is refused, check that the host's clock is right and that the report's "
            r"file still exists in Canvas\."
        )
    if kind == "wrong_length":
        return (
            r"The download of report #{id} announces \d+ bytes but Canvas says the file has \d+\. Nothing was "
            r"written; retry the task\."
        )
    if kind in ("truncate", "stall"):
        return r"The download of report #{id} broke after \d+ bytes \(\w+\)\. Nothing was written; retry the task\."
    raise AssertionError(kind)


def expand(pattern: str, canvas: Reports, report_id: int) -> str:
    ports = {
        "download": canvas.sim.url,
        "files": canvas.sim.running.files_url,
        "store": canvas.sim.running.store_url,
    }
    pattern = pattern.replace("{id}", str(report_id))
    for hop, url in ports.items():
        pattern = pattern.replace("{port:" + hop + "}", url.rsplit(":", 1)[1])
    return pattern


PERSISTENT = [
    ("download", "503"),
    ("download", "throttle"),
    ("download", "reset"),
    ("download", "html"),
    ("download", "redirect_loop"),
    ("download", "auth_redirect"),
    ("download", "401"),
    ("files", "503"),
    ("files", "slow"),
    ("files", "redirect_loop"),
    ("files", "auth_redirect"),
    ("files", "expired"),
    ("store", "503"),
    ("store", "reset"),
    ("store", "stall"),
    ("store", "truncate"),
    ("store", "wrong_length"),
    ("store", "html"),
    ("store", "redirect_loop"),
    ("store", "expired"),
    ("store", "404"),
]


@pytest.mark.parametrize(("hop", "kind"), PERSISTENT)
def test_persistent_fault_fails_clearly_and_writes_nothing(
    canvas: Reports, tmp_path: Path, hop: str, kind: str
) -> None:
    canvas.sim.sim.add_fault(Fault(endpoint=hop, kind=kind, times=None, delay=SLOW))
    lake = tmp_path / "lake"
    run = land(canvas.csv_id, lake, tmp_path / "spool")
    assert run.elapsed < HANG_GUARD
    pattern = expand(persistent_message(hop, kind), canvas, canvas.csv_id)
    assert run.error is not None
    assert re.fullmatch(pattern, run.message), run.message
    assert listing(lake) == {}
    assert listing(tmp_path / "spool") == {}
    assert canvas.sim.counters.files_auth_headers == 0
    # Bounded: the operator's attempts, each with the client's attempts (of one chain each) at most.
    assert canvas.sim.counters.requests["download"] <= ATTEMPTS * POLICY.max_attempts * (MAX_REDIRECTS + 1)


# -- the ZIP stage: a multi-table report, spooled then extracted member by member -----------------

ZIP_ONCE = ("503", "reset", "stall", "truncate", "wrong_length", "html", "expired")


@pytest.mark.parametrize("kind", ZIP_ONCE)
def test_zip_with_one_fault_lands_every_member_exactly(canvas: Reports, tmp_path: Path, kind: str) -> None:
    canvas.sim.sim.add_fault(Fault(endpoint="store", kind=kind, delay=SLOW))
    lake = tmp_path / "lake"
    run = land(canvas.zip_id, lake, tmp_path / "spool")
    assert run.elapsed < HANG_GUARD
    assert run.error is None, run.message
    assert listing(lake) == canvas.zip_members()
    assert sorted(obj["name"] for obj in run.result) == sorted(canvas.zip_members())
    assert listing(tmp_path / "spool") == {}
    assert canvas.sim.counters.files_auth_headers == 0


@pytest.mark.parametrize("kind", ["truncate", "wrong_length", "stall", "html", "503"])
def test_zip_with_a_persistent_fault_extracts_nothing(canvas: Reports, tmp_path: Path, kind: str) -> None:
    canvas.sim.sim.add_fault(Fault(endpoint="store", kind=kind, times=None, delay=SLOW))
    lake = tmp_path / "lake"
    run = land(canvas.zip_id, lake, tmp_path / "spool")
    assert run.elapsed < HANG_GUARD
    pattern = expand(persistent_message("store", kind), canvas, canvas.zip_id)
    assert re.fullmatch(pattern, run.message), run.message
    assert listing(lake) == {}
    assert listing(tmp_path / "spool") == {}


def test_zip_without_extraction_with_a_fault_lands_the_zip_whole(canvas: Reports, tmp_path: Path) -> None:
    canvas.sim.sim.add_fault(Fault(endpoint="store", kind="truncate"))
    lake = tmp_path / "lake"
    run = land(canvas.zip_id, lake, tmp_path / "spool", extract_zip=False)
    assert run.error is None, run.message
    [(name, data)] = listing(lake).items()
    assert name.endswith(".zip")
    assert data == canvas.file(canvas.zip_id).read_bytes()


def test_an_earlier_object_survives_a_failed_download(canvas: Reports, tmp_path: Path) -> None:
    """A failed replace keeps the object that was there: never a partial one in its place."""
    lake = tmp_path / "lake"
    lake.mkdir(parents=True)
    (lake / canvas.csv_name()).write_bytes(b"yesterday's file\n")
    canvas.sim.sim.add_fault(Fault(endpoint="store", kind="truncate", times=None))
    run = land(canvas.csv_id, lake, tmp_path / "spool")
    assert run.error is not None
    assert listing(lake) == {canvas.csv_name(): b"yesterday's file\n"}
