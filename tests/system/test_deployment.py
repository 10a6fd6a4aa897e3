"""The deployment itself: every component up, the API reachable, the provider and DAGs loaded."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
import requests

from .conftest import NIGHTLY_DAG_ID, SYSTEM_DAG_IDS, System

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]


def test_deployment_is_up(system: System) -> None:
    deployment = system.deployment
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert len(deployment.live(name)) == 1, name
    health = system.api.health()
    assert {k: v["status"] for k, v in health.items()} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "triggerer": "healthy",
        "dag_processor": "healthy",
    }
    dags = {d["dag_id"] for d in system.api.get("/dags", params={"limit": 100})["dags"]}
    assert {NIGHTLY_DAG_ID, *SYSTEM_DAG_IDS} <= dags
    # The provider is registered through its entry point, as pip installs it.
    providers = system.api.get("/providers", params={"limit": 100})["providers"]
    assert "airflow-provider-canvas-reports" in {p["package_name"] for p in providers}
    with contextlib.closing(sqlite3.connect(deployment.home / "airflow.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_all_admins_needs_no_credentials(system: System) -> None:
    """Airflow 3.3.2's simple auth manager with all_admins: ``GET /auth/token`` hands out an
    admin JWT without credentials, and requests without one are let in as admin too."""
    base = system.api.base_url
    token = requests.get(f"{base}/auth/token", timeout=10)
    assert token.status_code == 201
    assert token.json()["access_token"]
    bare = requests.get(f"{base}/api/v2/dags", params={"limit": 1}, timeout=10)
    assert bare.status_code == 200
