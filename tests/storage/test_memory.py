"""Memory stays flat: a ~300 MiB stream and a ~300 MiB ZIP member, measured in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIZE_MIB = 300
MAX_GROWTH_MIB = 150


@pytest.mark.slow
def test_peak_memory_stays_flat_for_large_files(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("memory_probe.py")), str(tmp_path), str(SIZE_MIB)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=2))  # shown with -s: the numbers behind the README's claim
    for step in ("write_stream", "extract_zip"):
        result = report[step]
        assert "error" not in result, result
        assert result["bytes"] == SIZE_MIB << 20
        assert result["growth_mib"] < MAX_GROWTH_MIB, result
