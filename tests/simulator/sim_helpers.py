"""Helpers shared by the simulator tests: a small HTTP client and clock shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator


class Client:
    """Just enough of a Canvas client to drive the simulator over real HTTP."""

    def __init__(self, running: RunningSimulator, token: str | None = None) -> None:
        self.url = running.url
        self.token = running.token if token is None else token
        self.http = requests.Session()
        if self.token:
            self.http.headers["Authorization"] = f"Bearer {self.token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, f"{self.url}{path}", **kwargs)

    def reports(
        self, path: str = "", account: str = "self", method: str = "GET", **kwargs: Any
    ) -> requests.Response:
        return self.request(method, f"/api/v1/accounts/{account}/reports{path}", **kwargs)

    def start(self, report: str = "provisioning_csv", account: str = "self", **params: Any) -> dict[str, Any]:
        if not params and report in ("provisioning_csv", "sis_export_csv"):
            params = {"users": "true"}
        data = {f"parameters[{k}]": v for k, v in params.items()}
        resp = self.reports(f"/{report}", account=account, method="POST", data=data)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def status(self, report: str, report_id: int, account: str = "self") -> requests.Response:
        return self.reports(f"/{report}/{report_id}", account=account)

    def close(self) -> None:
        self.http.close()


SimFactory = Callable[..., tuple[CanvasSimulator, RunningSimulator, Client]]


def finish(sim: CanvasSimulator, seconds: float = 60.0) -> None:
    """Let file generation end, then jump the clock past the report's run."""
    sim.wait_idle()
    sim.advance(seconds)
