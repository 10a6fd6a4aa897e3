"""What one status request costs the triggerer's transport, in CPU time and in instructions.

A diagnostic behind goal 3 (BENCHMARKS.md), not a goal of its own: goal 3 times whole polls of
thousands of triggers, and this machine's drift hides a few microseconds there. Here one process
makes N status calls through `AsyncTransport` (8 at once, one shared session, as a triggerer's
waits do) against the simulator in another process, and prints its own CPU time per call. With
``--instructions`` it runs itself twice under ``valgrind --tool=callgrind`` (N and 3N calls) and
prints the instructions per call (the difference over 2N calls, so start-up cancels out):
instruction counts do not drift with the machine's load, so two commits compare exactly.
"""

from __future__ import annotations

import asyncio
import gc
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import PY, ROOT, SimProcess, arg_parser, emit, say

REPORT = "provisioning_csv"
CONCURRENT = 8
WARMUP = 200


async def _calls(url: str, token: str, report_id: int, count: int) -> float:
    """CPU seconds of this process for `count` status calls, after a warm-up."""
    from airflow_provider_canvas_reports.canvas import api
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
    from airflow_provider_canvas_reports.transport import aio
    from airflow_provider_canvas_reports.transport.settings import CanvasSettings

    transport = aio.AsyncTransport(CanvasSettings(url, token, RetryPolicy()))
    call = api.status("self", REPORT, report_id)

    async def caller(n: int) -> None:
        for _ in range(n):
            await transport.call(call)

    await caller(WARMUP)
    gc.collect()
    began = time.process_time()
    await asyncio.gather(*(caller(count // CONCURRENT) for _ in range(CONCURRENT)))
    spent = time.process_time() - began
    await aio.close_shared_sessions()
    return spent


def _child(url: str, token: str, report_id: int, count: int) -> None:
    spent = asyncio.run(_calls(url, token, report_id, count))
    print(f"CPU {spent:.6f}", flush=True)


def _run_child(
    url: str, token: str, report_id: int, count: int, *wrapper: str
) -> subprocess.CompletedProcess[str]:
    """A child process making `count` calls, under `wrapper` (a profiler's command) if given."""
    command = [
        *wrapper,
        PY,
        "-m",
        "benchmarks.transport_calls",
        "--child",
        url,
        token,
        str(report_id),
        str(count),
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)


def _instructions(url: str, token: str, report_id: int, count: int) -> int:
    """Instructions callgrind counts for a child making `count` calls (start-up included)."""
    with tempfile.TemporaryDirectory(prefix="canvas-callgrind-") as scratch:
        out = Path(scratch) / "callgrind.out"
        done = _run_child(
            url, token, report_id, count, "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--calls", type=int, help="status calls timed (default 20000; smoke 200)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per call under callgrind (N and 3N calls; default N 1000)",
    )
    parser.add_argument("--child", nargs=4, metavar=("URL", "TOKEN", "ID", "N"), help="(internal)")
    args = parser.parse_args()
    if args.child:
        url, token, report_id, count = args.child
        _child(url, token, int(report_id), int(count))
        return
    calls = args.calls or (200 if args.smoke else 20000)
    # Queued for the whole run, and a bucket that never paces: this is the cost of a request.
    with SimProcess(users=12, queue_seconds=10.0**7, throttle=None, bucket_capacity=1e15) as sim:
        from airflow_provider_canvas_reports.canvas import api
        from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
        from airflow_provider_canvas_reports.transport.settings import CanvasSettings
        from airflow_provider_canvas_reports.transport.sync import SyncTransport

        starter = SyncTransport(CanvasSettings(sim.url, sim.token, RetryPolicy()))
        report_id = starter.call(api.start("self", REPORT, {"users": True})).id
        starter.close()
        cpu = float(_run_child(sim.url, sim.token, report_id, calls).stdout.split("CPU ")[1])
        per_call_us = cpu / calls * 1e6
        say(f"transport_calls: {calls} status calls, {per_call_us:.1f} us of client CPU per call")
        per_call_instructions: float | None = None
        if args.instructions:
            if shutil.which("valgrind") is None:
                say("transport_calls: valgrind is not installed: no instruction count")
            else:
                n = 20 if args.smoke else 1000
                low = _instructions(sim.url, sim.token, report_id, n)
                high = _instructions(sim.url, sim.token, report_id, 3 * n)
                per_call_instructions = (high - low) / (2 * n)
                say(f"transport_calls: {per_call_instructions / 1000:.1f}k instructions per call (callgrind)")
    emit(
        "transport_calls",
        smoke=args.smoke,
        calls=calls,
        cpu_us_per_call=round(per_call_us, 2),
        instructions_per_call=per_call_instructions,
    )


if __name__ == "__main__":
    sys.exit(main())
