"""``python -m airflow_provider_canvas_reports.simulator`` (also ``canvas-simulator``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence

from .catalogue import CATALOGUE
from .config import DEFAULT_TOKEN, SimulatorConfig, TokenSpec
from .counters import ENDPOINTS
from .faults import FAULT_KINDS
from .server import CanvasSimulator
from .state import FATES


def _fate(text: str) -> tuple[str | None, str]:
    report, sep, fate = text.rpartition(":")
    if fate not in FATES:
        raise argparse.ArgumentTypeError(f"fate must be one of {', '.join(FATES)}")
    if sep and report not in CATALOGUE:
        raise argparse.ArgumentTypeError(f"unknown report {report!r}")
    return (report or None), fate


def _csv(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(bad)}; choose from {', '.join(choices)}")
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="canvas-simulator",
        description="A local Canvas LMS account-reports server (Canvas host, files host, store).",
    )
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument(
        "--port", type=int, default=8900, help="Canvas host port; 0 = any free port (default 8900)"
    )
    net.add_argument("--files-port", type=int, help="files host port (default port+1, or any if port is 0)")
    net.add_argument("--store-port", type=int, help="store port (default port+2, or any if port is 0)")
    net.add_argument("--access-log", action="store_true", help="log every request")
    data = p.add_argument_group("data")
    data.add_argument("--users", type=int, default=2000, help="data size in users (default 2000)")
    data.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    data.add_argument("--pad-to-bytes", type=int, help="extend each report file to at least this many bytes")
    data.add_argument("--data-dir", help="where report files are written and cached (default: a temp dir)")
    auth = p.add_argument_group("tokens")
    auth.add_argument("--token", action="append", help=f"a valid token (repeatable; default {DEFAULT_TOKEN})")
    auth.add_argument(
        "--token-no-permission", action="append", default=[], help="a token lacking read_reports"
    )
    auth.add_argument("--token-bad-scopes", action="append", default=[], help="a token lacking the scopes")
    timing = p.add_argument_group("timing")
    timing.add_argument("--queue-seconds", type=float, default=0.0, help="time a report stays created")
    timing.add_argument("--run-seconds", type=float, default=5.0, help="time a report runs (default 5)")
    timing.add_argument(
        "--compile-seconds", type=float, default=0.0, help="compiling time of parallel reports"
    )
    timing.add_argument(
        "--serialize-jobs", action="store_true", help="run one report at a time, as Canvas does"
    )
    timing.add_argument("--latency", type=float, default=0.0, help="added seconds per API request")
    thr = p.add_argument_group("throttling")
    thr.add_argument("--throttle", choices=("429", "403", "off"), default="429", help="rate limit answer")
    thr.add_argument("--bucket-capacity", type=float, default=700.0)
    thr.add_argument("--request-cost", type=float, default=50.0, help="up-front cost of each request")
    thr.add_argument("--leak-per-second", type=float, default=10.0)
    shape = p.add_argument_group("behaviour")
    shape.add_argument(
        "--direct-download", action="store_true", help="serve files from the Canvas host (200)"
    )
    shape.add_argument("--legacy-fields", action="store_true", help="omit run_time and user from reports")
    shape.add_argument("--link-ttl", type=float, default=300.0, help="lifetime of signed download links")
    faults = p.add_argument_group("faults")
    faults.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests that fail (0-1)")
    faults.add_argument(
        "--fail-kinds",
        type=_csv(sorted(FAULT_KINDS)),
        default=["500", "503", "reset"],
        help="comma list of fault kinds for --fail-rate (default 500,503,reset)",
    )
    faults.add_argument(
        "--fail-endpoints",
        type=_csv(ENDPOINTS),
        help="comma list of endpoints --fail-rate applies to (default all)",
    )
    faults.add_argument(
        "--fate",
        type=_fate,
        action="append",
        default=[],
        help="[REPORT:]FATE for the next started report, e.g. provisioning_csv:error (repeatable)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    tokens: dict[str, TokenSpec] = {t: TokenSpec() for t in (args.token or [DEFAULT_TOKEN])}
    tokens.update({t: TokenSpec(permissions=False) for t in args.token_no_permission})
    tokens.update({t: TokenSpec(scopes_ok=False) for t in args.token_bad_scopes})
    port = args.port
    return SimulatorConfig(
        tokens=tokens,
        users=args.users,
        seed=args.seed,
        pad_to_bytes=args.pad_to_bytes,
        data_dir=args.data_dir,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        compile_seconds=args.compile_seconds,
        serialize_jobs=args.serialize_jobs,
        latency=args.latency,
        throttle=None if args.throttle == "off" else args.throttle,
        bucket_capacity=args.bucket_capacity,
        request_cost=args.request_cost,
        leak_per_second=args.leak_per_second,
        direct_download=args.direct_download,
        legacy_fields=args.legacy_fields,
        link_ttl_seconds=args.link_ttl,
        fail_rate=args.fail_rate,
        fail_kinds=tuple(args.fail_kinds),
        fail_endpoints=tuple(args.fail_endpoints) if args.fail_endpoints else None,
        host=args.host,
        port=port,
        files_port=args.files_port if args.files_port is not None else (port + 1 if port else 0),
        store_port=args.store_port if args.store_port is not None else (port + 2 if port else 0),
        access_log=args.access_log,
    )


async def serve(config: SimulatorConfig, fates: Sequence[tuple[str | None, str]] = ()) -> None:
    sim = CanvasSimulator(config)
    for report, fate in fates:
        sim.script_report(report, fate)
    running = await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    # The banner is the one place the token is printed: the user needs it to connect.
    print("Canvas simulator running (Ctrl-C to stop)", flush=True)
    print(f"  canvas: {running.url}", flush=True)
    print(f"  files:  {running.files_url}", flush=True)
    print(f"  store:  {running.store_url}", flush=True)
    print(f"  token:  {running.token}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"canvas-simulator: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.fate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
