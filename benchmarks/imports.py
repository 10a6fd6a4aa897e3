"""DAG parse cost: what importing the provider's operator and sensor modules adds to a DAG file.

Each repetition is a fresh interpreter that imports ``airflow.sdk`` (the reference: every DAG file
pays it) and then the provider's DAG-facing modules (operators, sensor), timing both imports with
``perf_counter`` (wall) and ``process_time`` (CPU) inside the process. It then builds one of each
operator, as a DAG file does, and times that too. Bytecode caches are warm, as in any deployment.
The figures are medians over the repetitions.

Goal: the provider's modules add at most 25 ms over ``import airflow.sdk``, and the modules only a
running task needs (aiohttp, requests, the hook, the trigger and ``airflow.triggers``, the storage
package's I/O modules, the simulator) are loaded neither by the imports nor by building the
operators. One more run with ``python -X importtime`` names what the provider's modules cost.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from typing import Any

from benchmarks._common import PY, ROOT, arg_parser, emit, median, say, verdict

GOAL_MS = 25.0
MODULES = [
    "airflow_provider_canvas_reports.operators.reports",
    "airflow_provider_canvas_reports.sensors.reports",
    # DownloadReportOperator's own module (re-exported by operators.reports).
    "airflow_provider_canvas_reports.operators.download",
]
# Needed only when a task runs, never when a DAG file is parsed. (The storage package's value
# types, storage.model, do load: DownloadReportOperator checks overwrite= and zip_limits= with them.)
TASK_ONLY = [
    "aiohttp",
    "requests",
    "airflow.triggers.base",
    "airflow_provider_canvas_reports.hooks.canvas",
    "airflow_provider_canvas_reports.triggers.reports",
    "airflow_provider_canvas_reports.storage.writer",
    "airflow_provider_canvas_reports.storage.zipfiles",
    "airflow_provider_canvas_reports.storage.spool",
    "airflow_provider_canvas_reports.simulator",
    "airflow_provider_canvas_reports.transport.aio",
    "airflow_provider_canvas_reports.transport.sync",
]
# Built after the imports, as a DAG file does (deferrable: the trigger must still not load).
BUILD = """
from airflow_provider_canvas_reports.operators.reports import DownloadReportOperator, StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
StartAccountReportOperator(task_id="start", report="provisioning_csv", parameters={"users": True},
                           wait_for_completion=True, deferrable=True)
ReportCompleteSensor(task_id="wait", report="provisioning_csv", report_id="1", deferrable=True)
DownloadReportOperator(task_id="land", report="provisioning_csv", report_id="1",
                       destination="file:///tmp/lake/", zip_limits={"max_members": 100})
"""

CHILD = """
import importlib, json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import airflow.sdk
t1, c1 = time.perf_counter(), time.process_time()
before = set(sys.modules)
for name in {modules!r}:
    importlib.import_module(name)
t2, c2 = time.perf_counter(), time.process_time()
exec({build!r})
t3, c3 = time.perf_counter(), time.process_time()
print(json.dumps({{
    "sdk_wall": t1 - t0, "sdk_cpu": c1 - c0, "ours_wall": t2 - t1, "ours_cpu": c2 - c1,
    "build_wall": t3 - t2, "build_cpu": c3 - c2,
    "loaded": {{m: m in sys.modules for m in {task_only!r}}},
    "new_top": sorted({{m.split(".")[0] for m in set(sys.modules) - before}}),
}}))
"""


def modules() -> list[str]:
    return [m for m in MODULES if importlib.util.find_spec(m) is not None]


def run_once(names: list[str]) -> dict[str, Any]:
    code = CHILD.format(modules=names, task_only=TASK_ONLY, build=BUILD if len(names) == len(MODULES) else "")
    out = subprocess.run([PY, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def heaviest(names: list[str], top: int = 12) -> list[tuple[str, float, str]]:
    """What the provider's modules cost, heaviest first: (module, ms, why).

    Our own modules count their own time (``self``); the others they import directly count
    with everything under them (``from`` the importing module of ours).
    """
    code = "import airflow.sdk\n" + "".join(f"import {m}\n" for m in names)
    out = subprocess.run([PY, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True)
    rows: list[tuple[int, str, int, int]] = []
    seen_sdk = False
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, cumulative, raw = line.removeprefix("import time:").split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header line
        name = raw.rstrip()
        depth = (len(name) - len(name.lstrip())) // 2
        if seen_sdk:
            rows.append((depth, name.strip(), int(own), int(cumulative)))
        elif name.strip() == "airflow.sdk" and depth == 0:
            seen_sdk = True
    # importtime prints children before their parent: walk backwards to find each one's parent.
    found: list[tuple[str, float, str]] = []
    stack: list[tuple[int, str]] = []
    for depth, name, own, cumulative in reversed(rows):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        stack.append((depth, name))
        if name.startswith("airflow_provider_canvas_reports"):
            found.append((name, own / 1000, "self"))
        elif parent.startswith("airflow_provider_canvas_reports"):
            found.append((name, cumulative / 1000, f"from {parent}"))
    found.sort(key=lambda row: -row[1])
    return found[:top]


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument("--repeat", type=int, help="fresh interpreters (default 30; smoke 1)")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.smoke else 30)
    names = modules()
    say(f"imports: {', '.join(names)}")
    t0 = time.perf_counter()
    if not args.smoke:
        run_once(names)  # warm the bytecode caches
    runs = [run_once(names) for _ in range(repeat)]
    sdk_wall = median([r["sdk_wall"] for r in runs]) * 1000
    sdk_cpu = median([r["sdk_cpu"] for r in runs]) * 1000
    ours_wall = median([r["ours_wall"] for r in runs]) * 1000
    ours_cpu = median([r["ours_cpu"] for r in runs]) * 1000
    build_wall = median([r["build_wall"] for r in runs]) * 1000
    build_cpu = median([r["build_cpu"] for r in runs]) * 1000
    loaded = sorted({m for r in runs for m, present in r["loaded"].items() if present})
    new_top = sorted({m for r in runs for m in r["new_top"]})
    heavy = heaviest(names)
    met_time = ours_wall <= GOAL_MS
    met_lazy = not loaded
    say(
        f"import airflow.sdk: {sdk_wall:.0f} ms wall, {sdk_cpu:.0f} ms CPU (median of {repeat}); "
        f"the provider's modules add {ours_wall:.1f} ms wall, {ours_cpu:.1f} ms CPU "
        f"({ours_wall / sdk_wall:.1%} of airflow.sdk): {verdict(met_time)} (goal <= {GOAL_MS:.0f} ms)"
    )
    say(f"building one of each operator then takes {build_wall:.1f} ms wall, {build_cpu:.1f} ms CPU")
    say(f"task-only modules loaded at parse time: {', '.join(loaded) or 'none'}: {verdict(met_lazy)}")
    say(f"new top-level packages: {', '.join(new_top)}")
    say("heaviest of the provider's modules and of what they import (-X importtime, one run):")
    for name, ms, why in heavy:
        say(f"  {ms:8.1f} ms  {name}  ({why})")
    say(f"imports benchmark took {time.perf_counter() - t0:.0f}s")
    emit(
        "imports",
        smoke=args.smoke,
        modules=names,
        repeat=repeat,
        sdk_ms=round(sdk_wall, 1),
        sdk_cpu_ms=round(sdk_cpu, 1),
        added_ms=round(ours_wall, 1),
        added_cpu_ms=round(ours_cpu, 1),
        ratio=round(ours_wall / sdk_wall, 4),
        build_ms=round(build_wall, 1),
        build_cpu_ms=round(build_cpu, 1),
        task_only_loaded=loaded,
        new_top_level=new_top,
        heaviest=[[n, round(ms, 1), p] for n, ms, p in heavy],
        goal_ms=GOAL_MS,
        met=met_time and met_lazy,
    )


if __name__ == "__main__":
    main()
