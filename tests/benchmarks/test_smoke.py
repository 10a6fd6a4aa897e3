"""Every benchmark still runs: each at its --smoke size, all at once, in fresh processes.

Only that they finish and print their figures is checked; nothing here is timed or compared
(benchmarks measure, they do not assert). The references (curl, unzip) may be absent: the
benchmark then says so and skips them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = {
    "imports": ["imports"],
    "polling": ["polling"],
    "download": ["download", "unzip"],
    "memory": ["memory"],
    "triggers": ["triggers"],
    "one_token": ["one_token"],
    "transport_calls": ["transport_calls"],
}
# All of them together take ~30 s on an idle 2-core machine; the margin is for a busy one.
TIMEOUT = 420


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """All smoke runs, in parallel (most of their time is spent waiting on each other's I/O)."""
    env = dict(os.environ)
    env.pop("AIRFLOW_HOME", None)  # each benchmark makes its own throwaway one
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiling Airflow in every child costs seconds each
    # Kept between runs (outside the repository), as scripts/bench.sh keeps it.
    env.setdefault(
        "PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "canvas-reports-bench" / "pycache")
    )
    env["CANVAS_BENCH_CACHE"] = str(tmp_path_factory.mktemp("bench-cache"))
    logs = tmp_path_factory.mktemp("bench-logs")
    procs = {}
    for name in BENCHMARKS:
        # Output goes to files, not pipes: a pipe nobody drains yet would block a chatty benchmark.
        with open(logs / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", f"benchmarks.{name}", "--smoke"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so a timeout can stop its children too
            )
    started = time.monotonic()
    deadline = started + TIMEOUT
    out: dict[str, dict[str, Any]] = {}
    for name, proc in procs.items():
        note = ""
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            note = f"\n[killed: still running {TIMEOUT} s after the start]"
        stdout = (logs / f"{name}.log").read_text(errors="replace") + note
        results = {}
        for line in stdout.splitlines():
            if line.startswith("BENCH_RESULT "):
                item = json.loads(line.removeprefix("BENCH_RESULT "))
                results[item["bench"]] = item
        out[name] = {"returncode": proc.returncode, "stdout": stdout, "results": results}
    return out


@pytest.mark.timeout(TIMEOUT + 60)
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_and_prints_its_figures(runs: dict[str, dict[str, Any]], name: str) -> None:
    run = runs[name]
    assert run["returncode"] == 0, f"exit status {run['returncode']}:\n{run['stdout'][-4000:]}"
    for bench in BENCHMARKS[name]:
        assert bench in run["results"], f"no figures for {bench}:\n{run['stdout'][-4000:]}"
        assert run["results"][bench]["smoke"] is True


@pytest.mark.parametrize(("name", "tool"), [("download", "curl"), ("download", "unzip")])
def test_a_missing_reference_is_said(runs: dict[str, dict[str, Any]], name: str, tool: str) -> None:
    from shutil import which

    if which(tool) is not None:
        assert f"{tool} is not installed" not in runs[name]["stdout"]
    else:
        assert f"{tool} is not installed" in runs[name]["stdout"]


def test_the_results_table_renders_from_every_benchmarks_figures(runs: dict[str, dict[str, Any]]) -> None:
    """scripts/bench.sh writes BENCHMARKS.md's table with benchmarks/report.py: it must read what they emit."""
    from benchmarks.report import render

    results = {bench: item for run in runs.values() for bench, item in run["results"].items()}
    table = render(results, {"commit": "smoke"})
    assert "**Smoke sizes" in table
    for goal in (
        "1. Download",
        "2. Peak RSS",
        "3. RSS per waiting trigger",
        "4. Status requests",
        "6. DAG parse",
    ):
        assert f"| {goal}" in table
    assert "one mapped task's instances" in table
    assert "separate tasks of one DAG" in table
    assert "separate DAGs on one host, released in the same instant" in table
