"""The Canvas simulator in its own process, so that its CPU is not counted as the client's.

Usage: python -m benchmarks._simserver '<SimulatorConfig fields as JSON>' ['<another>' ...]

Several configs run several simulators (on their own ports) in this one process. Prints one
JSON line when listening (a list of {"url", "files_url", "store_url", "token"}), then answers
one JSON line per command read from stdin (one JSON object a line, with "sim": index for any
simulator but the first); EOF stops it:

    {"cmd": "counters"}                 request counts (see Counters) and the process's CPU time
    {"cmd": "reset"}                    zero the counters and empty the throttle buckets
    {"cmd": "advance", "seconds": 60}   move the simulator's clock
    {"cmd": "idle", "timeout": 600}     wait until no report file is being generated
    {"cmd": "status", "id": 101}        a report's state now
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig


def _counters(sim: CanvasSimulator) -> dict[str, Any]:
    c = sim.counters
    times = os.times()
    return {
        "requests": dict(c.requests),
        "total_requests": c.total_requests,
        "status_polls": sum(c.status_polls.values()),
        "starts": sum(c.starts.values()),
        "throttled": c.throttled,
        "files_auth_headers": c.files_auth_headers,
        "bytes_served": c.bytes_served,
        "faults": dict(c.faults),
        "cpu_seconds": times.user + times.system,
    }


async def _handle(sim: CanvasSimulator, command: dict[str, Any]) -> Any:
    cmd = command.get("cmd")
    if cmd == "counters":
        return _counters(sim)
    if cmd == "reset":
        sim.counters.reset()
        sim.throttle.reset()
        return {"ok": True}
    if cmd == "advance":
        sim.advance(float(command["seconds"]))
        return {"ok": True}
    if cmd == "idle":
        await sim.idle(float(command.get("timeout", 600)))
        return {"ok": True}
    if cmd == "status":
        state = sim.reports.get(int(command["id"]))
        return {"status": state.status if state is not None else None}
    return {"error": f"unknown command {cmd!r}"}


async def main(configs: list[dict[str, Any]]) -> None:
    sims = [CanvasSimulator(SimulatorConfig(**config)) for config in configs]
    try:
        infos = []
        for sim in sims:
            running = await sim.start()
            infos.append(
                {
                    "url": running.url,
                    "files_url": running.files_url,
                    "store_url": running.store_url,
                    "token": running.token,
                }
            )
        print(json.dumps(infos), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not line.strip():
                continue
            try:
                command = json.loads(line)
                reply = await _handle(sims[int(command.get("sim", 0))], command)
            except Exception as exc:  # report it to the benchmark, keep serving
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)
    finally:
        for sim in sims:
            await sim.stop()


if __name__ == "__main__":
    asyncio.run(main([json.loads(arg) for arg in sys.argv[1:]] or [{}]))
