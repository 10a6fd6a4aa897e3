"""The deployment itself: every component up, the API reachable, the DAGs parsed."""

from __future__ import annotations

import pytest

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
