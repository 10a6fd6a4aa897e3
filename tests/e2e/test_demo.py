"""The README's first command, scripts/demo.sh, run as a user runs it (smaller data to stay fast)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"


def demo_env(demo_dir: Path, users: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update(
        {
            "CANVAS_DEMO_USERS": str(users),
            "CANVAS_DEMO_DIR": str(demo_dir),
            # This interpreter already has everything: skip the venv bootstrap (scripts/test.sh covers it).
            "CANVAS_DEMO_PYTHON": sys.executable,
        }
    )
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of an exited child still answers kill(0); it is not running.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def simulator_pid(output: str) -> int:
    match = re.search(r"Simulator up at http://127\.0\.0\.1:\d+ \(pid (\d+)\)", output)
    assert match, output[-3000:]
    return int(match.group(1))


def test_demo_runs_export_and_load_and_prints_a_summary(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [str(DEMO)],
        env=demo_env(tmp_path, users=2000),
        cwd=tmp_path,  # the script finds the project by itself
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert time.monotonic() - started < 300

    # Progress while it works, then the summary.
    for line in (
        "Starting the Canvas simulator",
        "Running example_canvas_nightly_provisioning",
        "Landing Canvas report",
    ):
        assert line in output
    summary = output[output.index("=== Summary ===") :]
    assert re.search(
        r"Canvas report:\s+provisioning_csv #\d+ \(2,000 simulated users, deleted ones left out\)", summary
    )
    assert re.search(r"Time:\s+export [\d.]+s, load [\d.]+s, total [\d.]+s", summary)

    # Every object in the summary is in the lake with that size and SHA-256.
    objects = re.findall(r"^\s+(\w+\.csv)\s+([\d,]+) bytes\s+sha256 ([0-9a-f]{64})$", summary, re.MULTILINE)
    assert sorted(name for name, _, _ in objects) == sorted(
        f"{t}.csv" for t in ("users", "accounts", "terms", "courses", "sections", "enrollments")
    )
    [partition] = list((tmp_path / "lake" / "canvas" / "provisioning").iterdir())
    for name, size, digest in objects:
        data = (partition / name).read_bytes()
        assert len(data) == int(size.replace(",", ""))
        assert hashlib.sha256(data).hexdigest() == digest

    # Every table in the summary is in the warehouse with that many rows.
    tables = re.findall(r"^\s+(canvas_\w+)\s+([\d,]+) rows$", summary, re.MULTILINE)
    assert len(tables) == 6
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        for table, rows in tables:
            assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (int(rows.replace(",", "")),)  # noqa: S608
    assert dict(tables)["canvas_enrollments"] != "0"

    # It stopped what it started, and never printed the token.
    assert not alive(simulator_pid(output))
    assert "canvas-simulator-token" not in output
    assert "Unclosed client session" not in output


def test_demo_stops_the_simulator_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(DEMO)],
        env=demo_env(tmp_path, users=2000),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # A terminal's job gets Ctrl-C; one started from a background job (`cmd &` without job
        # control) inherits SIGINT ignored, and a shell cannot trap what it starts ignoring.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = ""
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while "Simulator up at" not in output:
            line = process.stdout.readline()
            if not line:
                pytest.fail(f"demo ended before the simulator was up:\n{output}")
            output += line
            assert time.monotonic() < deadline
        pid = simulator_pid(output)
        assert alive(pid)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does to the foreground job
        rest, _ = process.communicate(timeout=60)
        output += rest
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, output[-3000:]
    assert "Interrupted" in output
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)
