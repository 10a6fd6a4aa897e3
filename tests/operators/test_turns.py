"""Tasks of one DAG released together take turns: a task's rank among them, from the DAG itself."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_provider_canvas_reports.operators._turns import release_rank, take_host_turn
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

REPORT = "provisioning_csv"


class NightlyStart(StartAccountReportOperator):
    pass


def start(task_id: str) -> StartAccountReportOperator:
    return StartAccountReportOperator(task_id=task_id, report=REPORT, parameters={"users": True})


def download(task_id: str, **kwargs: object) -> DownloadReportOperator:
    return DownloadReportOperator(
        task_id=task_id, report=REPORT, report_id=1, destination="file:///tmp/x/", **kwargs
    )


def test_rank_among_the_tasks_of_a_kind_with_the_same_upstream_tasks():
    with DAG("ranks", schedule=None, start_date=datetime(2026, 1, 1)):
        sub = NightlyStart(task_id="b_sub", report=REPORT)
        plain = start("c_plain")
        StartAccountReportOperator.partial(task_id="a_mapped", report=REPORT).expand(
            parameters=[{"users": True}]
        )
        EmptyOperator(task_id="0_not_a_start_task")
        later = start("d_later")
        plain >> later
        # Downloads are their own kind: ranked among downloads only.
        first_download, second_download = download("x_download"), download("y_download")
        plain >> [first_download, second_download]
        # Sensors too: a sensor is no start task, even beside one.
        sensor = ReportCompleteSensor(task_id="w_sensor", report=REPORT, report_id=1)
        plain >> sensor
    # a_mapped (mapped), b_sub (a subclass) and c_plain have no upstream task; EmptyOperator is no start task.
    assert release_rank(sub, StartAccountReportOperator) == (1, 3)
    assert release_rank(plain, StartAccountReportOperator) == (2, 3)
    assert release_rank(later, StartAccountReportOperator) == (0, 1)  # alone behind c_plain
    assert release_rank(first_download, DownloadReportOperator) == (0, 2)
    assert release_rank(second_download, DownloadReportOperator) == (1, 2)
    assert release_rank(sensor, ReportCompleteSensor) == (0, 1)


def test_a_task_in_no_dag_is_alone():
    assert release_rank(start("alone"), StartAccountReportOperator) == (0, 1)


def test_a_mapped_download_is_ranked_behind_the_start_it_maps_over():
    with DAG("mapped", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        started = StartAccountReportOperator.partial(task_id="start", report=REPORT).expand(
            parameters=[{"users": True}, {"courses": True}]
        )
        DownloadReportOperator.partial(
            task_id="download", report=REPORT, destination="file:///tmp/x/"
        ).expand(report_id=started.output)
    mapped = dag.get_task("download")
    assert mapped.upstream_task_ids == {"start"}
    assert release_rank(mapped, DownloadReportOperator) == (0, 1)  # type: ignore[arg-type]


class TestHostTurns:
    """Tasks on one worker host take turns on a token through a ledger in the temp dir."""

    @pytest.fixture(autouse=True)
    def _own_temp_dir(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def test_each_task_takes_the_next_turn_a_spacing_later(self):
        before = time.time()
        first = take_host_turn("k", 0.2)
        assert first is not None
        assert before <= first <= time.time()  # alone: at once
        assert take_host_turn("k", 0.2) == pytest.approx(first + 0.2, abs=1e-6)
        assert take_host_turn("k", 0.2) == pytest.approx(first + 0.4, abs=1e-6)
        before = time.time()
        other = take_host_turn("another-token", 0.2)  # its own ledger
        assert other is not None
        assert before <= other <= time.time()
        assert take_host_turn("k", 0.0) is None  # start_spacing=0: no turns

    def test_tasks_at_the_same_instant_get_distinct_turns(self):
        taken: list[float | None] = []
        gate = threading.Barrier(20)

        def task() -> None:
            gate.wait()
            taken.append(take_host_turn("k", 0.2))

        threads = [threading.Thread(target=task) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert None not in taken
        turns = sorted(t for t in taken if t is not None)
        assert all(b - a >= 0.2 - 1e-6 for a, b in itertools.pairwise(turns))
        assert turns[-1] - turns[0] < 19 * 0.2 + 0.5

    def test_worker_processes_at_the_same_instant_get_distinct_turns(self, tmp_path: Path):
        # Each task runs in a process of its own: the lock and the ledger hold across processes.
        context = multiprocessing.get_context("spawn")
        gate, results = context.Barrier(6), context.Queue()
        workers = [context.Process(target=_turn_at, args=(str(tmp_path), gate, results)) for _ in range(6)]
        for worker in workers:
            worker.start()
        taken = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert None not in taken
        turns = sorted(taken)
        assert all(b - a >= 0.2 - 1e-6 for a, b in itertools.pairwise(turns))

    def test_the_ledger_is_private_and_names_no_token(self, tmp_path: Path):
        take_host_turn("k", 0.2)
        (ledger_dir,) = tmp_path.iterdir()
        assert ledger_dir.name == f"airflow-canvas-reports-{os.getuid()}"
        assert ledger_dir.stat().st_mode & 0o777 == 0o700
        assert [p.name for p in ledger_dir.iterdir()] == ["turns-k"]
        assert (ledger_dir / "turns-k").stat().st_mode & 0o777 == 0o600

    def test_a_spoiled_ledger_counts_as_no_turn_taken(self, tmp_path: Path):
        take_host_turn("k", 0.2)
        ledger = tmp_path / f"airflow-canvas-reports-{os.getuid()}" / "turns-k"
        for spoiled in (b"", b"nan", b"not a time", b"\xff\xfe"):
            ledger.write_bytes(spoiled)
            before = time.time()
            turn = take_host_turn("k", 0.2)
            assert turn is not None
            assert before <= turn <= time.time()  # at once, and the ledger is whole again

    def test_a_directory_open_to_others_is_not_used(self, tmp_path: Path):
        shared = tmp_path / f"airflow-canvas-reports-{os.getuid()}"
        shared.mkdir(mode=0o777)
        shared.chmod(0o777)
        assert take_host_turn("k", 0.2) is None
        assert take_host_turn("k", 0.2) is None  # no ledger written there, so no turn is ever taken
        assert list(shared.iterdir()) == []

    def test_a_symlink_in_its_place_is_not_followed(self, tmp_path: Path):
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        (tmp_path / f"airflow-canvas-reports-{os.getuid()}").symlink_to(target)
        assert take_host_turn("k", 0.2) is None
        assert list(target.iterdir()) == []


def _turn_at(temp_dir: str, gate: Any, results: Any) -> None:
    """In a worker process: take a turn once all are ready; report the time it comes."""
    tempfile.tempdir = temp_dir
    gate.wait()
    results.put(take_host_turn("k", 0.2))
