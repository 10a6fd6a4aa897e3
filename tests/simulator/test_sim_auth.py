"""Tokens: the three kinds of 401 Canvas answers, and the query-string token."""

from __future__ import annotations

import requests
from sim_helpers import Client, SimFactory

from airflow_provider_canvas_reports.simulator import TokenSpec

INVALID = {"errors": [{"message": "Invalid access token."}]}


def _tokens() -> dict[str, object]:
    return {
        "good": {"permissions": True, "scopes_ok": True},
        "no-permission": {"permissions": False},
        "no-scopes": TokenSpec(scopes_ok=False),
        "bare-false": False,
    }


def test_missing_or_invalid_token(make_sim: SimFactory):
    _sim, running, _client = make_sim(tokens=_tokens())
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Z29vZA=="}):
        resp = requests.get(f"{running.url}/api/v1/accounts/self/reports", headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == 'Bearer realm="canvas-lms"'
        assert resp.json() == INVALID


def test_token_without_permission(make_sim: SimFactory):
    _sim, running, _client = make_sim(tokens=_tokens())
    for token in ("no-permission", "bare-false"):
        resp = Client(running, token).reports()
        assert resp.status_code == 401
        assert "www-authenticate" not in resp.headers
        assert resp.json() == {
            "status": "unauthorized",
            "errors": [{"message": "user not authorized to perform that action"}],
        }


def test_token_with_insufficient_scopes(make_sim: SimFactory):
    _sim, running, _client = make_sim(tokens=_tokens())
    resp = Client(running, "no-scopes").reports("/provisioning_csv", method="POST")
    assert resp.status_code == 401
    assert resp.json() == {"errors": [{"message": "Insufficient scopes on access token."}]}


def test_running_token_is_the_first_usable_one(make_sim: SimFactory):
    _sim, running, _client = make_sim(tokens={"no-permission": False, "good": True})
    assert running.token == "good"


def test_default_token_and_query_parameter(sim_env):
    _sim, running, _client = sim_env
    assert running.token == "canvas-simulator-token"
    resp = requests.get(
        f"{running.url}/api/v1/accounts/self/reports", params={"access_token": running.token}, timeout=10
    )
    assert resp.status_code == 200
