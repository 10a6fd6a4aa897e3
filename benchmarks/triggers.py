"""Waiting is nearly free: thousands of ReportStatusTriggers in one event loop.

N reports are started in the simulator (its own process, so its CPU is not counted) and left
queued (``created``) for the whole run. Then, in a fresh process per variant, N triggers run in
one asyncio event loop, as in a triggerer, each polling its own report every ``interval``
seconds (start times spread over one interval, as deferrals arrive over time):

- provider: ``ReportStatusTrigger`` (fixed interval: ``adaptive_polling=False``, so both variants
  poll equally often), sharing one aiohttp session per event loop;
- reference: the same trigger built the common way: a new ``aiohttp.ClientSession`` per poll.

Measured: RSS per waiting trigger = (RSS with all N waiting - RSS of the same process before the
triggers were created) / N, and CPU per poll = the process's CPU time (user+sys, all threads)
over a window of whole intervals / the polls made in it (counted by the simulator). Logs go
through Airflow's structlog to the process's stdout (a pipe the parent reads): the reference
logs one INFO line per poll, as triggers commonly do; the provider logs at INFO when the status
or progress changes and every few minutes otherwise, so its repeat polls of these queued
reports log at DEBUG (filtered out).

Goals: RSS per waiting trigger <= 20 KiB and CPU per poll <= 0.5 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks._common import (
    PY,
    ROOT,
    KiB,
    SimProcess,
    arg_parser,
    cpu_seconds,
    emit,
    rss_bytes,
    say,
    verdict,
)

GOAL_RSS = 20 * KiB
GOAL_CPU = 0.5e-3
REPORT = "last_user_access_csv"


# -- the reference: a trigger built the common way ---------------------------------------------


def naive_trigger_class() -> type:
    import aiohttp
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    from airflow_provider_canvas_reports.compat import get_async_connection

    class NaiveReportTrigger(BaseTrigger):  # type: ignore[misc]
        """Polls the report's status with a new aiohttp session each time (the usual pattern)."""

        def __init__(self, conn_id: str, report: str, report_id: int, poll_interval: float) -> None:
            super().__init__()
            self.conn_id = conn_id
            self.report = report
            self.report_id = report_id
            self.poll_interval = poll_interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return "benchmarks.triggers.NaiveReportTrigger", {
                "conn_id": self.conn_id,
                "report": self.report,
                "report_id": self.report_id,
                "poll_interval": self.poll_interval,
            }

        async def run(self) -> AsyncIterator[TriggerEvent]:
            conn = await get_async_connection(self.conn_id)
            url = f"{conn.host}/api/v1/accounts/self/reports/{self.report}/{self.report_id}"
            headers = {"Authorization": f"Bearer {conn.password}"}
            while True:
                async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
                    resp.raise_for_status()
                    data = await resp.json()
                if data["status"] in ("complete", "error", "aborted", "deleted"):
                    yield TriggerEvent({"status": data["status"], "report_id": self.report_id})
                    return
                self.log.info(
                    "Canvas report %s #%s: status=%s; next poll in %.1fs",
                    self.report,
                    self.report_id,
                    data["status"],
                    self.poll_interval,
                )
                await asyncio.sleep(self.poll_interval)

    return NaiveReportTrigger


# -- one variant, in its own process -----------------------------------------------------------


async def run_variant(variant: str, ids: list[int], interval: float, warmup: float, window: float) -> dict:
    import aiohttp  # noqa: F401 - imported before the baseline, for both variants
    import requests.utils  # noqa: F401 - the proxy lookup's (transport/environment.py), once per process

    from airflow_provider_canvas_reports.transport import aio
    from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger

    naive = naive_trigger_class()
    rng = random.Random(1)
    events: list[Any] = []
    errors: list[str] = []

    def build(report_id: int) -> Any:
        if variant == "provider":
            return ReportStatusTrigger(
                canvas_conn_id="canvas_default",
                report=REPORT,
                report_id=report_id,
                poll_interval=interval,
                adaptive_polling=False,
                deadline=time.time() + 86400,
                wait_started_at=time.time(),
            )
        return naive("canvas_default", REPORT, report_id, interval)

    async def drive(trigger: Any, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            async for event in trigger.run():
                events.append(event.payload)
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.sleep(0.1)
    base_rss = rss_bytes()
    tasks = [asyncio.create_task(drive(build(i), rng.uniform(0, interval))) for i in ids]
    await asyncio.sleep(warmup)
    waiting_rss = rss_bytes()
    mark("window_start")  # the parent reads the simulator's poll count at each mark
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    await asyncio.sleep(window)
    cpu1, t1 = cpu_seconds(), time.perf_counter()
    mark("window_end")
    end_rss = rss_bytes()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await aio.close_shared_sessions()
    return {
        "variant": variant,
        "triggers": len(ids),
        "base_rss": base_rss,
        "waiting_rss": waiting_rss,
        "end_rss": end_rss,
        "rss_per_trigger": (waiting_rss - base_rss) / len(ids),
        "window_s": t1 - t0,
        "cpu_s": cpu1 - cpu0,
        "events": len(events),
        "errors": errors[:5],
        "error_count": len(errors),
    }


def mark(name: str) -> None:
    print(f"MARK {name}", flush=True)


def child_main(args: Any) -> None:
    # Never outlive the benchmark by long, even if it was killed and nobody reads our output.
    signal.alarm(int(args.warmup + args.window + 300))
    ids = json.loads(Path(args.ids).read_text())
    if args.gc_freeze:
        import gc

        import aiohttp  # noqa: F401 - what the variants import, frozen with the rest

        from airflow_provider_canvas_reports.triggers import reports  # noqa: F401

        gc.collect()
        gc.freeze()
    result = asyncio.run(run_variant(args.child, ids, args.interval, args.warmup, args.window))
    print("VARIANT_RESULT " + json.dumps(result), flush=True)


# -- the benchmark -----------------------------------------------------------------------------


async def start_reports(count: int) -> list[int]:
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
    from airflow_provider_canvas_reports.transport import aio

    hook = CanvasHook()
    gate = asyncio.Semaphore(32)

    async def one() -> int:
        async with gate:
            return (await hook.astart_report(REPORT, {})).id

    try:
        return list(await asyncio.gather(*(one() for _ in range(count))))
    finally:
        await aio.close_shared_sessions()


def run_variant_process(cmd: list[str], sim: SimProcess) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one variant; at each of its marks, read the simulator's counters (the polls it saw)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    marks: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    tail: list[str] = []
    for line in proc.stdout:  # the triggers' own log lines come here too: read and dropped
        if line.startswith("MARK "):
            marks[line.split()[1]] = sim.counters()
        elif line.startswith("VARIANT_RESULT "):
            result = json.loads(line.removeprefix("VARIANT_RESULT "))
        else:
            tail = [*tail[-20:], line]
    if proc.wait() != 0 or result is None:
        raise RuntimeError(f"the variant failed ({proc.returncode}): {''.join(tail)}")
    return result, marks


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--triggers", type=int, help="triggers per variant (default 5000; smoke 50)")
    parser.add_argument("--interval", type=float, help="poll interval, seconds (default 15; smoke 1)")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="what-if: gc.freeze() in each variant's process before its triggers start (moves the "
        "objects of the imports out of the cyclic GC's reach, as a triggerer could after start-up)",
    )
    parser.add_argument("--child", choices=("provider", "naive"), help=argparse_hidden())
    parser.add_argument("--ids", help=argparse_hidden())
    parser.add_argument("--warmup", type=float, help=argparse_hidden())
    parser.add_argument("--window", type=float, help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    count = args.triggers or (50 if args.smoke else 5000)
    interval = args.interval or (1.0 if args.smoke else 15.0)
    warmup, window = interval * 1.5, interval * 2

    t0 = time.perf_counter()
    # No throttling, and a bucket too big to run low: the client would pace itself (Pacer) on a
    # low X-Rate-Limit-Remaining. This benchmark is about the cost of waiting; benchmarks/token.py
    # is about sharing the token.
    sim_cfg = {"users": 12, "queue_seconds": 10.0**7, "throttle": None, "bucket_capacity": 1e15}
    with SimProcess(**sim_cfg) as sim:
        sim.connect()
        ids = asyncio.run(start_reports(count))
        say(
            f"triggers: {count} reports started (queued for the whole run) in {time.perf_counter() - t0:.0f}s"
        )
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(ids, f)
        results: dict[str, dict[str, Any]] = {}
        try:
            for variant in ("provider", "naive"):
                before = sim.counters()
                cmd = [PY, "-m", "benchmarks.triggers", "--child", variant, "--ids", f.name]
                cmd += ["--interval", str(interval), "--warmup", str(warmup), "--window", str(window)]
                cmd += ["--gc-freeze"] if args.gc_freeze else []
                result, marks = run_variant_process(cmd, sim)
                after = sim.counters()
                polls = marks["window_end"]["status_polls"] - marks["window_start"]["status_polls"]
                result["polls"] = polls
                result["cpu_per_poll"] = result["cpu_s"] / polls if polls else None
                result["sim_status_polls"] = after["status_polls"] - before["status_polls"]
                result["sim_cpu_s"] = after["cpu_seconds"] - before["cpu_seconds"]
                results[variant] = result
                per = result["cpu_per_poll"] or float("nan")
                say(
                    f"{variant}: {result['rss_per_trigger'] / KiB:.1f} KiB per waiting trigger, "
                    f"{per * 1000:.3f} ms CPU per poll ({result['polls']} polls in {result['window_s']:.0f}s), "
                    f"errors {result['error_count']}, events {result['events']}"
                )
        finally:
            os.unlink(f.name)
    ours, ref = results["provider"], results["naive"]
    met = (
        ours["rss_per_trigger"] <= GOAL_RSS
        and ours["cpu_per_poll"] is not None
        and ours["cpu_per_poll"] <= GOAL_CPU
        and ours["error_count"] == 0
        and ours["events"] == 0
    )
    rss_ratio = ours["rss_per_trigger"] / ref["rss_per_trigger"] if ref["rss_per_trigger"] > 0 else None
    cpu_ratio = ours["cpu_per_poll"] / ref["cpu_per_poll"] if ref["cpu_per_poll"] else None
    say(
        f"provider vs a new session per poll: RSS {rss_ratio and round(rss_ratio, 2)}x, "
        f"CPU per poll {cpu_ratio and round(cpu_ratio, 2)}x; goals (<= 20 KiB, <= 0.5 ms): {verdict(met)}"
    )
    say(f"triggers benchmark took {time.perf_counter() - t0:.0f}s")

    def figures(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "rss_per_trigger_kib": round(r["rss_per_trigger"] / KiB, 2),
            "cpu_per_poll_ms": round(r["cpu_per_poll"] * 1000, 4) if r["cpu_per_poll"] else None,
            "polls_in_window": r["polls"],
            "window_s": round(r["window_s"], 1),
            "base_rss_mib": round(r["base_rss"] / (1 << 20), 1),
            "waiting_rss_mib": round(r["waiting_rss"] / (1 << 20), 1),
            "errors": r["error_count"],
            "sim_status_polls": r["sim_status_polls"],
        }

    emit(
        "triggers",
        smoke=args.smoke,
        triggers=count,
        interval_s=interval,
        provider=figures(ours),
        reference=figures(ref),
        rss_ratio=rss_ratio and round(rss_ratio, 3),
        cpu_ratio=cpu_ratio and round(cpu_ratio, 3),
        goal_rss_kib=GOAL_RSS / KiB,
        goal_cpu_ms=GOAL_CPU * 1000,
        met=met,
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
