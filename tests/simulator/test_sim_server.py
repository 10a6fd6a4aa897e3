"""Running the simulator: async start/stop, the thread runner, ports and URLs."""

from __future__ import annotations

import gc
import logging

import aiohttp
import pytest
import requests

from airflow_provider_canvas_reports.simulator import CanvasSimulator, Fault, SimulatorConfig


async def test_async_start_and_stop():
    sim = CanvasSimulator(SimulatorConfig(users=40, run_seconds=0.0))
    running = await sim.start()
    try:
        assert sim.url == running.url
        assert sim.files_url == running.files_url
        assert sim.store_url == running.store_url
        assert len({running.url, running.files_url, running.store_url}) == 3
        headers = {"Authorization": f"Bearer {sim.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(
                f"{sim.url}/api/v1/accounts/self/reports/provisioning_csv",
                data={"parameters[courses]": "true"},
            ) as resp:
                report = await resp.json()
            await sim.idle()
            sim.advance(1)
            async with http.get(
                f"{sim.url}/api/v1/accounts/self/reports/provisioning_csv/{report['id']}"
            ) as resp:
                body = await resp.json()
                assert resp.headers["x-rate-limit-remaining"]
            assert body["status"] == "complete"
        # aiohttp also drops the header on the cross-host redirects. The files domain's session
        # cookie (a CSV) comes from an IP address, which aiohttp's default jar refuses.
        jar = aiohttp.CookieJar(unsafe=True)
        async with (
            aiohttp.ClientSession(cookie_jar=jar) as http,
            http.get(body["file_url"], headers=headers) as resp,
        ):
            data = await resp.read()
        assert data.startswith(b"canvas_course_id,course_id,")
        assert sim.counters.files_auth_headers == 0
        assert sim.reports[report["id"]].status == "complete"
        assert sim.attachments[body["attachment"]["id"]].size == len(data)
    finally:
        await sim.stop()
    with pytest.raises(RuntimeError):
        _ = sim.url


async def test_start_twice_is_an_error():
    sim = CanvasSimulator(users=10)
    await sim.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            await sim.start()
    finally:
        await sim.stop()


def test_run_in_thread_with_fixed_data_dir_keeps_files(tmp_path):
    sim = CanvasSimulator(SimulatorConfig(users=30, data_dir=tmp_path))
    with sim.run_in_thread() as running:
        assert running.url.startswith("http://127.0.0.1:")
    assert tmp_path.exists()


def test_run_in_thread_ends_handlers_still_running(caplog: pytest.LogCaptureFixture):
    # A client gave up on a slow answer; its handler is still asleep when the simulator stops.
    sim = CanvasSimulator(SimulatorConfig(users=40))
    with sim.run_in_thread() as running:
        sim.add_fault(Fault(endpoint="status", kind="slow", delay=30))
        with pytest.raises(requests.ReadTimeout):
            requests.get(
                f"{running.url}/api/v1/accounts/self/reports/provisioning_csv/1",
                headers={"Authorization": f"Bearer {running.token}"},
                timeout=0.3,
            )
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()  # a task left pending on the closed loop is reported when collected
    assert "Task was destroyed but it is pending" not in caplog.text


def test_port_in_use_raises():
    first = CanvasSimulator(users=10)
    with first.run_in_thread() as running:
        port = int(running.url.rsplit(":", 1)[1])
        clash = CanvasSimulator(users=10, port=port)
        with pytest.raises(OSError, match="address already in use"), clash.run_in_thread():
            pass


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="users"):
        SimulatorConfig(users=0)
    with pytest.raises(ValueError, match="run_seconds"):
        SimulatorConfig(run_seconds=-1)
    with pytest.raises(ValueError, match="fail_rate"):
        SimulatorConfig(fail_rate=2)
    with pytest.raises(TypeError):
        CanvasSimulator(SimulatorConfig(), users=3)
