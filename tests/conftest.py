"""Test-wide Airflow isolation. Kept minimal: feature fixtures belong in the subfolders' conftests.

The environment is set at import time, before any test module imports Airflow, because Airflow
reads AIRFLOW_HOME and its config once, when it is first imported.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

if "AIRFLOW_HOME" not in os.environ:
    # Never touch ~/airflow: each session gets a throwaway home (airflow.cfg, SQLite DB, logs).
    _home = tempfile.mkdtemp(prefix="canvas-airflow-home-")
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# AIRFLOW__CORE__UNIT_TEST_MODE is deliberately NOT set: in Airflow 3.1-3.3 it swaps the whole
# config for Airflow's own unit_tests.cfg (dags_folder pointing into Airflow's source tree,
# LocalExecutor, examples on), which breaks dag.test() bundles here. Its only other effect,
# allowing operator.execute() outside the task runner, is already just a warning by default
# (allow_nested_operators=True).


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata DB (SQLite in AIRFLOW_HOME), created once per session.

    Opt-in (not autouse): unit tests don't need a DB, and creating one costs seconds.
    Returns AIRFLOW_HOME.
    """
    from airflow import settings
    from airflow.utils.db import initdb

    conn = settings.SQL_ALCHEMY_CONN or ""
    if not conn.startswith("sqlite"):
        # Refuse to create tables in a DB someone configured outside the tests.
        pytest.fail(f"airflow_db fixture expects a SQLite metadata DB, got {conn.split(':', 1)[0]!r}")
    # Same code path as `airflow db migrate` on an empty DB (create from ORM + stamp), in-process:
    # a subprocess would cost a second full Airflow import.
    initdb()
    return Path(os.environ["AIRFLOW_HOME"])
