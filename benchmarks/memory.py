"""Memory is flat: peak RSS of the download task for a small and a large report.

Each task runs in a fresh process (benchmarks/_task.py): the DownloadReportOperator's
``execute()``, as a worker runs it, landing the report in a ``file://`` folder. The reference is
the idle task: the same process, imports, operator and status request, without the download
(measured once: it does not depend on the report's size).
Peak RSS is the kernel's high-water mark (wait4's ru_maxrss). Measured for a CSV report
(streamed straight to its object) and a ZIP report with ``extract_zip=True`` (spooled to local
disk, then each member streamed to its own object).

Goals: the download adds at most 64 MiB over the idle task, and the peaks for the small and the
large report are within 10% of each other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    PY,
    ROOT,
    MiB,
    Sim,
    SimProcess,
    arg_parser,
    cache_dir,
    emit,
    run_child,
    say,
    scratch_dir,
    verdict,
    wait_complete,
)
from benchmarks.download import CSV_REPORT, ZIP_PARAMS, ZIP_REPORT, _empty

GOAL_GROWTH = 64 * MiB
GOAL_SPREAD = 0.10


def task(conn_id: str, report: str, report_id: int, dest: Path, *flags: str) -> dict[str, Any]:
    cmd = [PY, "-m", "benchmarks._task", report, str(report_id), str(dest), "--conn-id", conn_id, *flags]
    out = run_child(cmd, cwd=ROOT)
    if out["returncode"] != 0:
        raise RuntimeError(f"the task failed ({out['returncode']}): {out['stdout'][-2000:]}")
    line = next(x for x in out["stdout"].splitlines() if x.startswith("TASK_RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("TASK_RESULT "))
    result["maxrss"] = out["maxrss"]
    _empty(dest)
    return result


def prepare(sim: Sim, conn_id: str) -> tuple[Any, Any]:
    """Start a CSV and a ZIP report on one simulator (its reports hold its pad_to_bytes)."""
    sim.connect(conn_id)
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

    hook = CanvasHook(conn_id)
    csv_id = hook.start_report(CSV_REPORT, {}).id
    zip_id = hook.start_report(ZIP_REPORT, ZIP_PARAMS).id
    sim.call("idle", timeout=1800)
    csv_report = wait_complete(hook, CSV_REPORT, csv_id)
    zip_report = wait_complete(hook, ZIP_REPORT, zip_id)
    hook.close()
    return csv_report, zip_report


def measure(conn_id: str, csv_report: Any, zip_report: Any, dest: Path) -> dict[str, Any]:
    csv = task(conn_id, CSV_REPORT, csv_report.id, dest)
    zipped = task(conn_id, ZIP_REPORT, zip_report.id, dest, "--extract")
    assert csv["landed_bytes"] == csv_report.attachment.size
    return {
        "csv_bytes": csv_report.attachment.size,
        "zip_bytes": zip_report.attachment.size,
        "zip_members_bytes": zipped["landed_bytes"],
        "csv_peak": csv["maxrss"],
        "zip_peak": zipped["maxrss"],
        "csv_seconds": round(csv["seconds"], 2),
        "zip_seconds": round(zipped["seconds"], 2),
    }


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--small-mib", type=int, help="small report (default 64; smoke 1)")
    parser.add_argument("--large-mib", type=int, help="large report (default 1024; smoke 4)")
    args = parser.parse_args()
    small = (args.small_mib or (1 if args.smoke else 64)) * MiB
    large = (args.large_mib or (4 if args.smoke else 1024)) * MiB
    t0 = time.perf_counter()
    configs = [
        {
            "users": 200,
            "pad_to_bytes": size,
            "run_seconds": 0.0,
            "throttle": None,
            "data_dir": str(cache_dir() / "sim-data"),
        }
        for size in (small, large)
    ]
    with SimProcess(*configs) as sims:
        small_reports = prepare(sims[0], "canvas_small")
        large_reports = prepare(sims[1], "canvas_large")
        dest = scratch_dir("canvas-bench-mem-")
        # The idle task reads the status and stops: the same whatever the report's size.
        idle = task("canvas_small", CSV_REPORT, small_reports[0].id, dest, "--idle")["maxrss"]
        runs = {
            "small": measure("canvas_small", *small_reports, dest),
            "large": measure("canvas_large", *large_reports, dest),
        }
    for run in runs.values():
        run.update(idle_peak=idle, csv_growth=run["csv_peak"] - idle, zip_growth=run["zip_peak"] - idle)
    ok = True
    figures: dict[str, Any] = {}
    for kind in ("csv", "zip"):
        s, big = runs["small"], runs["large"]
        growth = max(s[f"{kind}_growth"], big[f"{kind}_growth"])
        spread = abs(big[f"{kind}_peak"] - s[f"{kind}_peak"]) / s[f"{kind}_peak"]
        met = growth <= GOAL_GROWTH and spread <= GOAL_SPREAD
        ok = ok and met
        figures[kind] = {
            "small_bytes": s[f"{kind}_bytes"] if kind == "csv" else s["zip_members_bytes"],
            "large_bytes": big[f"{kind}_bytes"] if kind == "csv" else big["zip_members_bytes"],
            "idle_peak_mib": round(idle / MiB, 1),
            "small_peak_mib": round(s[f"{kind}_peak"] / MiB, 1),
            "large_peak_mib": round(big[f"{kind}_peak"] / MiB, 1),
            "small_growth_mib": round(s[f"{kind}_growth"] / MiB, 1),
            "large_growth_mib": round(big[f"{kind}_growth"] / MiB, 1),
            "spread": round(spread, 3),
            "met": met,
        }
        f = figures[kind]
        say(
            f"{kind}: idle task peak {f['idle_peak_mib']} MiB; {f['small_bytes'] / MiB:.0f} MiB report "
            f"peak {f['small_peak_mib']} MiB (+{f['small_growth_mib']}), {f['large_bytes'] / MiB:.0f} MiB "
            f"report peak {f['large_peak_mib']} MiB (+{f['large_growth_mib']}); spread {spread:.1%}: {verdict(met)}"
        )
    say(f"memory benchmark took {time.perf_counter() - t0:.0f}s")
    emit(
        "memory",
        smoke=args.smoke,
        goal_growth_mib=GOAL_GROWTH / MiB,
        goal_spread=GOAL_SPREAD,
        met=ok,
        **figures,
    )


if __name__ == "__main__":
    main()
