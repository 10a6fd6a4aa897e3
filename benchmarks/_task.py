"""One download task in its own process, as a worker runs it (for the peak-RSS benchmark).

Usage: python -m benchmarks._task REPORT REPORT_ID DEST [--conn-id ID] [--idle] [--extract]

Imports what the task imports, builds the DownloadReportOperator and reads the report's status
(the idle task stops there), then runs ``execute()``. The Canvas connection comes from the
environment (AIRFLOW_CONN_<ID>). Prints one JSON line: the peak RSS (VmHWM) and more.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks._common import peak_rss_bytes, rss_bytes, task_context


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("report_id", type=int)
    parser.add_argument("dest")
    parser.add_argument("--conn-id", default="canvas_default")
    parser.add_argument("--idle", action="store_true", help="everything but the download itself")
    parser.add_argument("--extract", action="store_true", help="extract a ZIP report's members")
    args = parser.parse_args()

    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
    from airflow_provider_canvas_reports.operators.download import DownloadReportOperator

    op = DownloadReportOperator(
        task_id="bench_memory",
        report=args.report,
        report_id=args.report_id,
        destination=f"file://{args.dest}/",
        extract_zip=args.extract,
        asset_alias=None,
        canvas_conn_id=args.conn_id,
    )
    hook = CanvasHook(args.conn_id)
    report = hook.get_report(args.report, args.report_id)
    hook.close()
    result: dict[str, object] = {"size": report.attachment.size if report.attachment else None}
    started = time.perf_counter()
    if not args.idle:
        landed = op.execute(context=task_context(op.task_id))  # type: ignore[arg-type]
        result["landed_bytes"] = sum(obj["size"] for obj in landed)
        result["objects"] = len(landed)
    result.update(seconds=time.perf_counter() - started, rss=rss_bytes(), peak_rss=peak_rss_bytes())
    print("TASK_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
