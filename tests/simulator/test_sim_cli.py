"""The command line: ``python -m airflow_provider_canvas_reports.simulator``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_canvas_reports.simulator.__main__ import build_parser, config_from_args

REPO = Path(__file__).resolve().parents[2]


def test_module_starts_prints_urls_and_answers():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_canvas_reports.simulator",
            "--port",
            "0",
            "--users",
            "50",
            "--run-seconds",
            "0",
            "--token",
            "cli-token",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner: dict[str, str] = {}
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while len(banner) < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.match(r"\s+(canvas|files|store|token):\s+(\S+)", line)
            if match:
                banner[match.group(1)] = match.group(2)
        assert set(banner) == {"canvas", "files", "store", "token"}, proc.stderr.read() if proc.stderr else ""
        assert banner["token"] == "cli-token"
        resp = requests.get(
            f"{banner['canvas']}/api/v1/accounts/self/reports",
            headers={"Authorization": "Bearer cli-token"},
            timeout=10,
        )
        assert resp.status_code == 200
        assert len(resp.json()) == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_arguments_map_to_config():
    args = build_parser().parse_args(
        [
            "--port",
            "8900",
            "--users",
            "123",
            "--throttle",
            "off",
            "--token",
            "a",
            "--token-no-permission",
            "b",
            "--fail-rate",
            "0.1",
            "--fail-kinds",
            "500,reset",
            "--fate",
            "provisioning_csv:error",
            "--queue-seconds",
            "3",
        ]
    )
    config = config_from_args(args)
    assert (config.port, config.files_port, config.store_port) == (8900, 8901, 8902)
    assert config.users == 123
    assert config.throttle is None
    assert config.token_specs["a"].permissions
    assert not config.token_specs["b"].permissions
    assert config.fail_kinds == ("500", "reset")
    assert config.queue_seconds == 3
    assert args.fate == [("provisioning_csv", "error")]


def test_port_zero_means_all_ephemeral():
    config = config_from_args(build_parser().parse_args(["--port", "0"]))
    assert (config.port, config.files_port, config.store_port) == (0, 0, 0)


@pytest.mark.parametrize("bad", [["--fate", "exploded"], ["--fail-kinds", "boom"], ["--throttle", "500"]])
def test_bad_arguments_exit(bad):
    with pytest.raises(SystemExit):
        build_parser().parse_args(bad)
