"""Sharing one token: 50 reports started and awaited at once against Canvas's leaky bucket.

The simulator (its own process) throttles as Canvas does: a leaky bucket per token (capacity
700, 50 units held up front by each request in flight, refunded down to its real cost of 1 when
it ends, 10 units leaking per second), answering 429 with Retry-After when it overflows. Each
API request takes ``latency`` seconds inside Canvas, so parallel requests overlap in the bucket.

Provider: 50 StartAccountReportOperator tasks (wait_for_completion, deferrable) run at once, each
as its own worker would (a thread each, all released together; each operator has its own hook,
so no pacing state is shared): parameter validation and the start; each then defers to its
ReportStatusTrigger (adaptive polling), all in one event loop as one triggerer runs them; then
each resumes in execute_complete, which turns the event into the task's result or failure.
Four runs, all with the operator's defaults unless said:

- mapped: the 50 tasks are one mapped task's instances (map index 0 to 49), as a DAG that
  ``.expand()``s over sub-accounts or terms starts them;
- separate tasks of one DAG: 50 start tasks without upstream tasks in one DAG (one per report
  or sub-account, written out); these and the mapped ones wait their place among the start tasks
  released together times ``start_spacing`` (0.2 s by default) before their first request;
- separate DAGs: 50 tasks, each in a DAG of its own, released in the same instant on one worker
  host (the threads of this process). None can read the others' DAG; all of them, like all
  three layouts, then take turns on the token through the host's ledger (``start_spacing``
  apart, ``operators/_turns.py``). Tasks on different hosts share no ledger: sent at once, their
  first requests overflow a bucket that admits 14 at once, so the refusals of the first second
  are reported apart;
- separate DAGs with ``start_jitter`` (each task waits a random 0 to N seconds first).

Reference, the common way: the same 50 starts and waits written with requests and aiohttp
directly, honouring Retry-After on 429 (as a careful script does) but with no pacing on
X-Rate-Limit-Remaining, polling every ``poll_interval`` with a new session per poll.

Goals (provider): no failed task, and at most 5% of its requests to the Canvas host throttled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from benchmarks._common import SimProcess, arg_parser, emit, say, task_context, verdict

GOAL_THROTTLED = 0.05
REPORT = "last_user_access_csv"
TERMINAL = ("complete", "error", "aborted", "deleted")


async def provider_run(
    count: int,
    poll_interval: float,
    timeout: float,
    start_jitter: float = 0.0,
    probe: Probe | None = None,
    policy: RetryPolicy | None = None,
    layout: str = "separate",
    start_spacing: float | None = None,
) -> list[str]:
    """Outcome per task: 'success' or what went wrong.

    Each task is a StartAccountReportOperator(wait_for_completion=True, deferrable=True): its
    execute() in a worker thread (parameter validation and the start, with its own hook), the
    ReportStatusTrigger it defers to in this event loop, then its execute_complete().
    `layout`: "mapped" (one mapped task's instances), "one_dag" (separate tasks of one DAG, all
    without upstream tasks) or "separate" (each task in a DAG of its own: nothing in common).
    `probe`, when given, reads the simulator's counters one second after the release and when
    the last task has started its report.
    """
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
    from airflow_provider_canvas_reports.transport import aio

    loop = asyncio.get_running_loop()
    barrier = threading.Barrier(count, action=probe.released if probe else None)
    executing = [count]
    lock = threading.Lock()

    def started() -> None:
        with lock:
            executing[0] -= 1
            last = executing[0] == 0
        if last and probe:
            probe.read("all_started")

    def execute(op: Any, context: dict[str, Any]) -> Any:
        op.hook.default_account_id  # noqa: B018 - the connection is read before the burst
        barrier.wait()
        try:
            op.execute(context)
        except TaskDeferred as deferred:
            return deferred
        finally:
            op.hook.close()
            started()
        raise RuntimeError("the operator did not defer")

    mapped = layout == "mapped"

    def build(index: int) -> Any:
        return StartAccountReportOperator(
            task_id="start" if mapped else f"start_{index:02d}",
            report=REPORT,
            parameters={},
            wait_for_completion=True,
            deferrable=True,
            poll_interval=poll_interval,
            timeout=timeout,
            canvas_retry_policy=policy,
            start_jitter=start_jitter,
            **({} if start_spacing is None else {"start_spacing": start_spacing}),
        )

    if layout == "one_dag":
        with DAG("one_token", schedule=None):
            ops = [build(index) for index in range(count)]
    else:
        ops = [build(index) for index in range(count)]

    async def task(index: int, pool: ThreadPoolExecutor) -> str:
        op = ops[index]
        context = task_context(op.task_id, map_index=index if mapped else -1)
        try:
            deferred = await loop.run_in_executor(pool, execute, op, context)
            events = deferred.trigger.run()
            payload = (await anext(events)).payload
            await events.aclose()
            method = getattr(op, deferred.method_name)
            await loop.run_in_executor(
                pool, lambda: method(context, event=payload, **(deferred.kwargs or {}))
            )
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return "success"

    with ThreadPoolExecutor(count) as pool:
        outcomes = await asyncio.gather(*(task(i, pool) for i in range(count)))
    await aio.close_shared_sessions()
    return list(outcomes)


class Probe:
    """Counter readings at moments of a run (from worker threads; one reading at a time)."""

    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim
        self.readings: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def released(self) -> None:
        threading.Timer(1.0, self.read, ("first_second",)).start()

    def read(self, label: str) -> None:
        with self.lock:
            self.readings[label] = self.sim.counters()


async def reference_run(
    url: str, token: str, count: int, poll_interval: float, timeout: float, probe: Probe | None = None
) -> list[str]:
    import aiohttp
    import requests

    loop = asyncio.get_running_loop()
    barrier = threading.Barrier(count, action=probe.released if probe else None)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{url}/api/v1/accounts/self/reports/{REPORT}"

    def start() -> int:
        barrier.wait()
        for _ in range(10):
            resp = requests.post(base, headers=headers, timeout=60)
            if resp.status_code == 429:
                time.sleep(float(resp.headers.get("retry-after", 1)))
                continue
            resp.raise_for_status()
            return int(resp.json()["id"])
        raise RuntimeError("still throttled after 10 attempts")

    async def wait(report_id: int) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base}/{report_id}", headers=headers) as r,
            ):
                if r.status == 429:
                    await asyncio.sleep(float(r.headers.get("retry-after", 1)))
                    continue
                r.raise_for_status()
                status = (await r.json())["status"]
            if status in TERMINAL:
                return "success" if status == "complete" else status
            await asyncio.sleep(poll_interval)
        return "timeout"

    async def task(pool: ThreadPoolExecutor) -> str:
        try:
            report_id = await loop.run_in_executor(pool, start)
            return await wait(report_id)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    with ThreadPoolExecutor(count) as pool:
        return list(await asyncio.gather(*(task(pool) for _ in range(count))))


def canvas_requests(counters: dict[str, Any]) -> int:
    return sum(n for name, n in counters["requests"].items() if name not in ("files", "store"))


def figures(
    outcomes: list[str], counters: dict[str, Any], seconds: float, readings: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    canvas = canvas_requests(counters)
    failed = [o for o in outcomes if o != "success"]
    # When the refusals happened: in the first second (50 first requests against a bucket that
    # holds 14: no client without shared state avoids those), until the last start, afterwards.
    phases = {
        label: {"requests": canvas_requests(reading), "throttled": reading["throttled"]}
        for label, reading in readings.items()
    }
    return {
        "tasks": len(outcomes),
        "failed": len(failed),
        "failures": sorted(set(failed))[:5],
        "requests": canvas,
        "starts": counters["requests"].get("start", 0),
        "available": counters["requests"].get("available", 0),
        "status_polls": counters["requests"].get("status", 0),
        "throttled": counters["throttled"],
        "throttled_share": round(counters["throttled"] / canvas, 4) if canvas else None,
        "seconds": round(seconds, 1),
        "phases": phases,
    }


def meets_goal(run: dict[str, Any]) -> bool:
    return (
        run["failed"] == 0 and run["throttled_share"] is not None and run["throttled_share"] <= GOAL_THROTTLED
    )


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--reports", type=int, help="reports at once (default 50; smoke 5)")
    parser.add_argument(
        "--start-jitter",
        type=float,
        help="also run the provider with start_jitter of this many seconds (default 5; 0: no)",
    )
    parser.add_argument(
        "--throttle-jitter",
        type=float,
        help="the provider's RetryPolicy.throttle_jitter (default: the policy's own)",
    )
    parser.add_argument("--provider-only", action="store_true", help="skip the reference run")
    parser.add_argument("--mapped-only", action="store_true", help="run only the provider's mapped tasks")
    parser.add_argument(
        "--start-spacing",
        type=float,
        help="the mapped tasks' start_spacing (default: the operator's own)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="requests in flight per token from the triggers (transport.aio.CONNECTIONS_PER_HOST; default: its own)",
    )
    args = parser.parse_args()
    if args.connections:
        from airflow_provider_canvas_reports.transport import aio

        aio.CONNECTIONS_PER_HOST = args.connections
    policy = None if args.throttle_jitter is None else RetryPolicy(throttle_jitter=args.throttle_jitter)
    count = args.reports or (5 if args.smoke else 50)
    run_seconds = 2.0 if args.smoke else 30.0
    poll_interval = 0.5 if args.smoke else 5.0
    latency = 0.05 if args.smoke else 0.3
    timeout = 120.0 if args.smoke else 600.0
    jitter = args.start_jitter if args.start_jitter is not None else (0.0 if args.smoke else 5.0)
    runs = (
        ["provider"]
        if args.mapped_only
        else (
            ["provider", "provider_one_dag", "provider_unmapped"]
            + ([] if args.provider_only else ["reference"])
            + (["provider_jittered"] if jitter > 0 else [])
        )
    )
    sim_cfg = {"users": 12, "run_seconds": run_seconds, "latency": latency}  # default throttle and bucket
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    runners = {
        "provider": lambda sim, probe: provider_run(
            count,
            poll_interval,
            timeout,
            probe=probe,
            policy=policy,
            layout="mapped",
            start_spacing=args.start_spacing,
        ),
        "provider_one_dag": lambda sim, probe: provider_run(
            count, poll_interval, timeout, probe=probe, policy=policy, layout="one_dag"
        ),
        "provider_unmapped": lambda sim, probe: provider_run(
            count, poll_interval, timeout, probe=probe, policy=policy
        ),
        "provider_jittered": lambda sim, probe: provider_run(
            count, poll_interval, timeout, jitter, probe=probe, policy=policy
        ),
        "reference": lambda sim, probe: reference_run(
            sim.url, sim.token, count, poll_interval, timeout, probe=probe
        ),
    }
    labels = {
        "provider": "provider, mapped",
        "provider_one_dag": "provider, separate tasks of one DAG",
        "provider_unmapped": "provider, separate DAGs on one host",
        "provider_jittered": f"provider, separate DAGs on one host, start_jitter={jitter:g}s",
    }
    for name in runs:
        # A fresh simulator for each run: a full bucket, and no earlier run of the report (so no
        # expected run time: the same first-run polling in every run).
        with SimProcess(**sim_cfg) as sim:
            sim.connect()
            from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

            CanvasHook().get_connection("canvas_default")  # load the connection machinery first
            started = time.perf_counter()
            probe = Probe(sim)
            outcomes = asyncio.run(runners[name](sim, probe))
            results[name] = figures(outcomes, sim.counters(), time.perf_counter() - started, probe.readings)
        r = results[name]
        say(
            f"{labels.get(name, name)}: {r['tasks']} tasks, {r['failed']} failed; {r['requests']} requests to "
            f"Canvas ({r['available']} available, {r['starts']} starts, {r['status_polls']} status polls), "
            f"{r['throttled']} throttled ({r['throttled_share']:.1%}); {r['seconds']}s"
        )
        if "first_second" in r["phases"]:
            first = r["phases"]["first_second"]
            line = f"  first second: {first['throttled']} of {first['requests']} requests throttled"
            if "all_started" in r["phases"]:
                until = r["phases"]["all_started"]
                line += (
                    f"; until the last start: {until['throttled']} of {until['requests']}; "
                    f"afterwards: {r['throttled'] - until['throttled']} of {r['requests'] - until['requests']}"
                )
            say(line)
        for failure in r["failures"]:
            say(f"  failure: {failure}")
    ours, one_dag, unmapped = (
        results.get(key) for key in ("provider", "provider_one_dag", "provider_unmapped")
    )
    assert ours is not None
    met = meets_goal(ours)
    met_one_dag = meets_goal(one_dag) if one_dag is not None else None
    met_unmapped = meets_goal(unmapped) if unmapped is not None else None
    say(
        f"goal: no failed task and <= {GOAL_THROTTLED:.0%} throttled: mapped {verdict(met)}"
        + (f", separate tasks of one DAG {verdict(met_one_dag)}" if one_dag is not None else "")
        + (
            f", separate DAGs on one host in the same instant {verdict(met_unmapped)}"
            if unmapped is not None
            else ""
        )
    )
    say(f"one_token benchmark took {time.perf_counter() - t0:.0f}s")
    emit(
        "one_token",
        smoke=args.smoke,
        reports=count,
        start_jitter_s=jitter,
        start_spacing_s=args.start_spacing,
        poll_interval_s=poll_interval,
        run_seconds=run_seconds,
        latency_s=latency,
        provider=ours,
        provider_one_dag=one_dag,
        provider_unmapped=unmapped,
        reference=results.get("reference"),
        provider_jittered=results.get("provider_jittered"),
        goal_throttled=GOAL_THROTTLED,
        met=met,
        met_one_dag=met_one_dag,
        met_unmapped=met_unmapped,
    )


if __name__ == "__main__":
    main()
