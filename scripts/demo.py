"""The demo behind scripts/demo.sh: simulator -> export DAG -> lake -> load DAG -> warehouse.

Runs Airflow's embedded default in this one process (SQLite metadata DB, ``dag.test()``), with
the example DAGs exactly as users would copy them. Everything it writes is under CANVAS_DEMO_DIR
(default ``<project>/.demo``): ``airflow/`` (metadata DB, logs), ``lake/`` (the landed files),
``warehouse.db`` (the loaded tables), ``simulator/`` (the simulator's generated-file cache).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
# The provider from this checkout, even where it is not installed (editable) in the interpreter.
sys.path.insert(0, str(ROOT))

from airflow_provider_canvas_reports.simulator.config import DEFAULT_TOKEN as TOKEN  # noqa: E402

EXPORT_DAG = "example_canvas_nightly_provisioning"
LOAD_DAG = "example_canvas_load_warehouse"


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _die_with_parent() -> None:
    # Linux: the simulator gets SIGTERM if this process dies, even by kill -9.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def simulator(users: int, cache_dir: Path, log_path: Path) -> Iterator[str]:
    """Run the Canvas simulator as a child process; always stop it on exit."""
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_canvas_reports.simulator",
        "--host",
        "127.0.0.1",
        # Any free ports, bound by the simulator itself: picking them here and passing them on
        # would race with other processes for the three hosts' ports.
        "--port",
        "0",
        "--users",
        str(users),
        "--run-seconds",
        "3",
        "--data-dir",
        str(cache_dir),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it ourselves, in order
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        try:
            base = _wait_until_up(process, log_path)
            say(f"Simulator up at {base} (pid {process.pid})")
            yield base
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            say(f"Simulator stopped (pid {process.pid})")


def _wait_until_up(process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> str:
    """The Canvas host's URL, from the simulator's banner, once it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"The simulator exited with code {process.returncode}; its log:\n{log_path.read_text()[-4000:]}"
            )
        found = re.search(r"^  canvas: (http://\S+)$", log_path.read_text(errors="replace"), re.MULTILINE)
        if found:
            request = urllib.request.Request(  # noqa: S310 - loopback URL
                f"{found[1]}/api/v1/accounts/self/reports", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2):  # noqa: S310 - loopback URL
                    return found[1]
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.2)
    raise SystemExit(f"The simulator did not answer within {timeout:.0f}s; see {log_path}")


def configure_airflow(demo_dir: Path, canvas_url: str) -> dict[str, Path]:
    """Environment for Airflow's embedded default; must run before Airflow is imported."""
    paths = {
        "home": demo_dir / "airflow",
        "lake": demo_dir / "lake",
        "warehouse": demo_dir / "warehouse.db",
    }
    # A fresh metadata DB each run keeps the demo repeatable; the lake and warehouse are replaced
    # object by object and table by table, as in production.
    shutil.rmtree(paths["home"], ignore_errors=True)
    paths["home"].mkdir(parents=True)
    paths["lake"].mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(paths["home"]),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{paths['home'] / 'airflow.db'}",
        # Quiet Airflow, but show what the provider's tasks do: that is the demo's progress.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("CANVAS_DEMO_LOG_LEVEL", "ERROR"),
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": (
            "airflow_provider_canvas_reports=INFO airflow.task.operators.airflow_provider_canvas_reports=INFO"
        ),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),  # connections in the DB stay encrypted
        "AIRFLOW_CONN_CANVAS_DEFAULT": json.dumps(
            {"conn_type": "canvas", "host": canvas_url, "password": TOKEN, "extra": {"account_id": "self"}}
        ),
        "AIRFLOW_CONN_CANVAS_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(paths["warehouse"])}),
        "CANVAS_LAKE_URL": paths["lake"].as_uri() + "/",
        "CANVAS_POLL_INTERVAL": "1",
    }
    for key in ("AIRFLOW_VAR_CANVAS_LAKE_URL", "AIRFLOW_VAR_CANVAS_LAKE_CONN_ID"):
        os.environ.pop(key, None)  # the demo writes to its own lake, whatever the shell says
    os.environ.update(env)
    return paths


def run_dag(dag_id: str) -> tuple[Any, float]:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(ROOT / "example_dags"))
    if bag.import_errors:
        raise SystemExit(f"The example DAGs do not import: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    if dag is None:
        raise SystemExit(f"DAG {dag_id} not found in example_dags/")
    started = time.monotonic()
    run = dag.test()
    elapsed = time.monotonic() - started
    if run is None or str(run.state) != "success":
        raise SystemExit(f"DAG {dag_id} ended in state {getattr(run, 'state', None)}; see the log above")
    return run, elapsed


def xcom(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key="return_value"
        )
        row = session.execute(query).scalars().first()
        if row is None:
            raise SystemExit(f"No XCom return_value from {run.dag_id}.{task_id}")
        return XComModel.deserialize_value(row)


def main() -> int:
    total_started = time.monotonic()
    users = int(os.environ.get("CANVAS_DEMO_USERS", "50000"))
    demo_dir = Path(os.environ.get("CANVAS_DEMO_DIR") or ROOT / ".demo").resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = demo_dir / "simulator"
    cache_dir.mkdir(exist_ok=True)

    # SIGTERM -> SystemExit, so the `finally` blocks stop the simulator as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    say(f"Starting the Canvas simulator with {users:,} users (~{users * 5:,} enrollments)")
    with simulator(users, cache_dir, demo_dir / "simulator.log") as canvas_url:
        paths = configure_airflow(demo_dir, canvas_url)
        say(f"Airflow metadata DB: {paths['home'] / 'airflow.db'} (SQLite, embedded)")
        from airflow.utils.db import initdb

        initdb()

        say(f"Running {EXPORT_DAG}: start provisioning_csv, wait (deferred), land the tables")
        export_run, export_seconds = run_dag(EXPORT_DAG)
        start = xcom(export_run, "start_export")
        landed = xcom(export_run, "land_tables")
        say(f"Export done in {export_seconds:.1f}s: report #{start['id']}, {len(landed)} objects landed")

        say(f"Running {LOAD_DAG}: stream the landed CSVs into {paths['warehouse']}")
        load_run, load_seconds = run_dag(LOAD_DAG)
        rows = xcom(load_run, "load_tables")
        say(f"Load done in {load_seconds:.1f}s")

    width = max(len(o["name"]) for o in landed)
    print()
    print("=== Summary ===")
    # The report, as Canvas's, leaves deleted users out (include_deleted is not set): fewer rows.
    print(
        f"Canvas report:   provisioning_csv #{start['id']} ({users:,} simulated users, deleted ones left out)"
    )
    print(f"Landed in:       {paths['lake']}")
    for obj in landed:
        print(f"  {obj['name']:<{width}}  {obj['size']:>12,} bytes  sha256 {obj['sha256']}")
    print(f"Warehouse:       {paths['warehouse']}")
    for table, count in rows.items():
        print(f"  {table:<24} {count:>10,} rows")
    print(
        f"Time:            export {export_seconds:.1f}s, load {load_seconds:.1f}s, "
        f"total {time.monotonic() - total_started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        print("\n[demo] Interrupted; the simulator was stopped.", file=sys.stderr)
        code = 130
    # The deferred sensor's aiohttp session is only collected at interpreter exit, where asyncio
    # reports it as unclosed: noise at the end of a finished demo.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.exit(code)
