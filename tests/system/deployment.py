"""A real Airflow deployment on this machine, for the system tests.

api-server, scheduler (LocalExecutor), dag-processor and triggerer run as separate ``airflow``
processes, each in its own process group, on a SQLite metadata DB in WAL mode inside a temp
AIRFLOW_HOME. Nothing here imports Airflow: the test process talks to the deployment through the
REST API, and to processes through signals and ``psutil``.

Every process the deployment starts runs in the deployment's own temp folder (its working
directory, inherited by everything it forks: LocalExecutor workers, task supervisors, task
runners, the triggerer's runner) and carries ``CANVAS_SYSTEST_TAG=<random>`` in its environment.
Teardown kills the tracked process groups, then every process still recognisable by either mark,
so a task runner orphaned by a test's ``kill -9`` never outlives the session, and nothing the
deployment did not start is ever touched.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests

from tests.fixtures.processes import free_port

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
TAG_VAR = "CANVAS_SYSTEST_TAG"

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
TERMINAL_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


class DeploymentError(AssertionError):
    """The deployment did not do what a test waited for (carries what it saw)."""


class APIStatusError(DeploymentError):
    """The REST API answered with an unexpected status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except (requests.RequestException, OSError) as exc:
            value, last_error = None, exc
        except APIStatusError as exc:
            if exc.status < 500:
                raise
            value, last_error = None, exc  # a busy api-server (e.g. SQLite locked): ask again
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout is not None else ""
            error = f" (last error: {last_error!r})" if last_error is not None else ""
            raise DeploymentError(f"timed out after {timeout:.0f}s waiting for {what}{error}\n{detail}")
        time.sleep(interval)


@dataclass
class Component:
    """One ``airflow <command>`` process (and its process group)."""

    name: str
    args: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)
    # The metadata DB's Job id, for components that have one and once it is known.
    job_id: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """The process and all its live descendants."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


class AirflowAPI:
    """The public REST API (``/api/v2``) of the deployment's api-server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.token: str | None = None

    def login(self) -> None:
        """Simple auth manager with all_admins: ``GET /auth/token`` hands out an admin JWT."""
        resp = self.session.get(f"{self.base_url}/auth/token", timeout=10)
        resp.raise_for_status()
        self.token = resp.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def request(self, method: str, path: str, *, ok: Iterable[int] = (200,), **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", 30)
        resp = self.session.request(method, f"{self.base_url}/api/v2{path}", **kwargs)
        if resp.status_code not in set(ok):
            raise APIStatusError(
                f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}", resp.status_code
            )
        return resp.json() if resp.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    # -- DAGs and runs -------------------------------------------------------------------
    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        found = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti for ti in found["task_instances"]}

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
        return self.get(path)["task_instances"]

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        return self.request("PATCH", path, json={"new_state": state})

    def xcoms(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """Every XCom of a task instance, key -> deserialised value."""
        base = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
        entries = self.get(base, params={"limit": 100})["xcom_entries"]
        return {
            e["key"]: self.get(f"{base}/{e['key']}", params={"deserialize": "true"})["value"] for e in entries
        }

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task log as the UI shows it: the API's JSON (its structured lines), as text.

        Airflow 3.3 serves it only as application/json or x-ndjson: asked for text/plain it
        answers with an error body, which a scan for secrets would pass without reading any log.
        """
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        return json.dumps(self.get(path, params={"full_content": "true"}))

    def health(self) -> dict[str, Any]:
        return self.get("/monitor/health")


class Deployment:
    """A running Airflow deployment in ``root`` (see the module docstring)."""

    def __init__(self, root: Path, *, dag_files: Iterable[Path], env: Mapping[str, str]) -> None:
        self.root = root
        self.home = root / "airflow-home"
        self.dags = root / "dags"
        self.tmp = root / "tmp"
        self.process_logs = self.home / "process-logs"
        for folder in (self.home, self.dags, self.tmp, self.process_logs):
            folder.mkdir(parents=True, exist_ok=True)
        for dag_file in dag_files:
            (self.dags / dag_file.name).write_bytes(dag_file.read_bytes())
        self.port = free_port()
        self.tag = secrets.token_hex(8)
        self.components: list[Component] = []
        self._counts: dict[str, int] = {}
        self._t0 = time.monotonic()
        # (seconds since creation, event): printed with failures, and handy for tuning waits.
        self.timeline: list[tuple[float, str]] = []
        self.api = AirflowAPI(f"http://127.0.0.1:{self.port}")
        self.env = self._environment(env)

    # -- configuration ---------------------------------------------------------------------
    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        # Nothing from the outer environment that configures Airflow: this deployment only.
        env = {k: v for k, v in os.environ.items() if not k.lstrip("_").startswith("AIRFLOW")}
        pythonpath = [str(REPO_ROOT), env.get("PYTHONPATH", "")]
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # The provider from this checkout even where it is not pip-installed (it is,
                # editable, in .venv; this only makes the harness independent of that).
                "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
                "PYTHONUNBUFFERED": "1",
                "TMPDIR": str(self.tmp),
                TAG_VAR: self.tag,
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                # busy timeout: four processes (and their children) write to one SQLite file.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}?timeout=60",
                # The api-server and where workers reach its execution API, set together.
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # All processes must sign and check the same JWTs.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
                # Fast loops: this is a test deployment on a 2-core machine, not production.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": "600",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
                # Free ports for the log servers, so parallel deployments on one host never clash.
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            }
        )
        env.update(extra)
        return env

    def mark(self, event: str) -> None:
        self.timeline.append((round(time.monotonic() - self._t0, 1), event))

    # -- processes ---------------------------------------------------------------------
    def run_cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AIRFLOW_BIN, *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise DeploymentError(
                f"airflow {' '.join(args)} exited {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> Component:
        """Start ``airflow <args>`` in its own process group, output to a log file in the home."""
        number = self._counts[name] = self._counts.get(name, 0) + 1
        log_path = self.process_logs / f"{name}-{number}.log"
        proc_env = {**self.env, **(env or {})}
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                [AIRFLOW_BIN, *args],
                env=proc_env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        component = Component(name, tuple(args), popen, log_path, proc_env)
        self.components.append(component)
        self.mark(f"started {name}-{number} (pid {popen.pid})")
        return component

    def start_triggerer(self, *, wait: bool = True, timeout: float = 120) -> Component:
        """Start one more triggerer; with ``wait``, until its Job is alive (and its id known)."""
        known = {job["id"] for job in self.triggerer_jobs(alive_only=False)} if wait else set()
        # Each triggerer serves its logs on its own port: two on one host must not clash.
        component = self.start(
            "triggerer", "triggerer", env={"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        )
        if wait:

            def new_job() -> int | None:
                if not component.alive():
                    raise DeploymentError(f"the new triggerer exited\n{self.describe()}")
                fresh = [j["id"] for j in self.triggerer_jobs() if j["id"] not in known]
                return fresh[0] if len(fresh) == 1 else None

            component.job_id = wait_for(
                "the new triggerer's job to be alive", new_job, timeout=timeout, on_timeout=self.describe
            )
            self.mark(f"triggerer pid {component.pid} is job {component.job_id}")
        return component

    def triggerer_jobs(self, *, alive_only: bool = True) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"job_type": "TriggererJob", "limit": 100}
        if alive_only:
            params["is_alive"] = "true"
        return self.api.get("/jobs", params=params)["jobs"]

    def live(self, name: str) -> list[Component]:
        return [c for c in self.components if c.name == name and c.alive()]

    def kill_hard(self, component: Component) -> None:
        """``kill -9`` of the whole process group, as when its machine or container dies."""
        members = component.tree()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.pid, signal.SIGKILL)
        for proc in members:  # descendants that moved to a group of their own
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        component.popen.wait(timeout=30)
        psutil.wait_procs(members, timeout=10)
        self.mark(f"killed {component.name} (pid {component.pid}) with SIGKILL")

    def freeze(self, component: Component) -> None:
        """``SIGSTOP`` the whole process group: alive, but silent (a frozen VM, a stalled node)."""
        os.killpg(component.pid, signal.SIGSTOP)
        self.mark(f"froze {component.name} (pid {component.pid}) with SIGSTOP")

    def freeze_between_writes(self, component: Component, attempts: int = 20) -> None:
        """Freeze `component` at a moment it holds no write lock on the metadata DB.

        A process frozen inside a SQLite write transaction holds the lock for everyone, so no
        other component could write (heartbeats included) until it thaws. After each freeze the
        DB's write lock is taken and released here; the live components give it up within the
        wait, a frozen holder never does: then thaw, let it finish, and freeze again.
        """
        for _ in range(attempts):
            self.freeze(component)
            try:
                with contextlib.closing(sqlite3.connect(self.home / "airflow.db", timeout=3.0)) as db:
                    db.isolation_level = None  # explicit transactions only
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("ROLLBACK")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            self.thaw(component)
            time.sleep(0.3)
        raise DeploymentError(f"could not freeze {component.name} outside a DB write in {attempts} attempts")

    def thaw(self, component: Component) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.pid, signal.SIGCONT)
            self.mark(f"thawed {component.name} (pid {component.pid}) with SIGCONT")

    def stop_component(self, component: Component, timeout: float = 30) -> None:
        """A clean shutdown (``SIGTERM`` to the group), as a deploy or a scale-down does it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.pid, signal.SIGTERM)
        try:
            component.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_hard(component)
        self.mark(f"stopped {component.name} (pid {component.pid}) with SIGTERM")

    def tagged_processes(self) -> list[psutil.Process]:
        """Every live process started by this deployment, however deep and wherever reparented.

        Processes are recognised by their working directory (the deployment's root, which every
        ``airflow`` process here starts in and its forks inherit) or by the tag in their
        environment. Both are needed: ``setproctitle`` (api-server, executor workers, task
        runners) overwrites the memory ``/proc/<pid>/environ`` is read from.
        """
        found = []
        root = str(self.root)
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == os.getpid():
                continue
            try:
                if proc.cwd() == root or proc.environ().get(TAG_VAR) == self.tag:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
        return found

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL whatever is left (tagged or tracked)."""
        for component in self.components:
            if component.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.pid, signal.SIGCONT)  # a frozen one could not act on TERM
                    os.killpg(component.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for component in self.components:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for component in self.components:
            if component.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.popen.wait(timeout=10)
        leftovers = self.tagged_processes()
        for proc in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=10)

    # -- lifecycle ----------------------------------------------------------------------
    def migrate_db(self) -> None:
        self.run_cli("db", "migrate")
        self.mark("db migrated")
        # WAL: readers never block the writer. The mode is stored in the DB file itself.
        with contextlib.closing(sqlite3.connect(self.home / "airflow.db")) as db:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise DeploymentError(f"could not switch the metadata DB to WAL (journal_mode={mode})")

    def start_all(self) -> None:
        self.start("api-server", "api-server")
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")
        self.start_triggerer(wait=False)  # the API is not up yet: wait_ready finds its job

    def wait_ready(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Until every component reports healthy and every DAG is parsed, without import errors."""

        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            health = self.api.health()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            if all((health.get(p) or {}).get("status") == "healthy" for p in parts):
                return health
            return None

        wait_for("the api-server to answer", self._try_login, timeout=timeout, on_timeout=self.describe)
        self.mark("api-server answers")
        wait_for("all components healthy", healthy, timeout=timeout, on_timeout=self.describe)
        self.mark("all components healthy")
        (triggerer,) = self.live("triggerer")
        (job,) = wait_for("one live triggerer job", self.triggerer_jobs, timeout=timeout)
        triggerer.job_id = job["id"]

        def parsed() -> bool:
            self.check_alive()
            errors = self.api.get("/importErrors")
            if errors["total_entries"]:
                raise DeploymentError(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
            known = {d["dag_id"] for d in self.api.get("/dags", params={"limit": 100})["dags"]}
            return set(dag_ids) <= known

        wait_for("the DAGs to be parsed", parsed, timeout=timeout, on_timeout=self.describe)
        self.mark("DAGs parsed")

    def _try_login(self) -> bool:
        self.check_alive()
        self.api.login()
        return True

    def check_alive(self, names: Iterable[str] = ("api-server", "scheduler", "dag-processor")) -> None:
        for name in names:
            if not self.live(name):
                raise DeploymentError(f"airflow {name} is not running\n{self.describe()}")

    # -- waiting on runs ------------------------------------------------------------------
    def wait_run(
        self, dag_id: str, run_id: str, *, timeout: float, states: Iterable[str] = TERMINAL_RUN_STATES
    ) -> dict[str, Any]:
        wanted = set(states)

        def done() -> dict[str, Any] | None:
            self.check_alive()
            run = self.api.dag_run(dag_id, run_id)
            return run if run["state"] in wanted else None

        return wait_for(
            f"DAG run {dag_id}/{run_id} to reach {sorted(wanted)}",
            done,
            timeout=timeout,
            interval=1.0,
            on_timeout=lambda: self.describe_run(dag_id, run_id),
        )

    def wait_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        timeout: float,
        interval: float = 0.3,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            self.check_alive()
            ti = self.api.task_instance(dag_id, run_id, task_id)
            return ti if predicate(ti) else None

        return wait_for(
            f"{dag_id}/{run_id}/{task_id}: {what}",
            probe,
            timeout=timeout,
            interval=interval,
            on_timeout=lambda: self.describe_run(dag_id, run_id),
        )

    def task_runner(self, ti_id: str) -> psutil.Process | None:
        """The task runner process of a task instance: its title is ``airflow worker -- <ti id>``."""
        title = f"airflow worker -- {ti_id}"
        for proc in self.tagged_processes():
            try:
                if " ".join(proc.cmdline()).strip() == title:
                    return proc
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return None

    # -- diagnostics ----------------------------------------------------------------------
    def describe(self, tail: int = 60) -> str:
        lines = ["timeline: " + "; ".join(f"{t}s {e}" for t, e in self.timeline)]
        for component in self.components:
            state = "running" if component.alive() else f"exited {component.popen.returncode}"
            lines.append(f"--- {component.name} pid {component.pid} ({state}): {component.log_path}")
            lines.extend(_tail(component.log_path, tail))
        return "\n".join(lines)

    def describe_processes(self) -> str:
        lines = ["processes of the deployment:"]
        for proc in self.tagged_processes():
            with contextlib.suppress(psutil.Error):
                lines.append(f"  {proc.pid} (parent {proc.ppid()}): {proc.cmdline()!r}")
        return "\n".join(lines)

    def describe_run(self, dag_id: str, run_id: str) -> str:
        try:
            run = self.api.dag_run(dag_id, run_id)
            tis = self.api.task_instances(dag_id, run_id)
        except Exception as exc:
            return f"(could not read {dag_id}/{run_id}: {exc!r})\n{self.describe(20)}"
        lines = [f"run {dag_id}/{run_id}: {run['state']}"]
        for task_id, ti in tis.items():
            lines.append(f"  {task_id}: {ti['state']} (try {ti['try_number']})")
        for path in sorted(self.task_log_files(dag_id, run_id)):
            lines.append(f"--- {path.relative_to(self.home)}")
            lines.extend(_tail(path, 40))
        return "\n".join(lines)

    def task_log_files(
        self, dag_id: str | None = None, run_id: str | None = None, task_id: str | None = None
    ) -> list[Path]:
        base = self.home / "logs"
        if dag_id is not None:
            base = base / f"dag_id={dag_id}"
            if run_id is not None:
                base = base / f"run_id={run_id}"
                if task_id is not None:
                    base = base / f"task_id={task_id}"
        return [p for p in base.rglob("*") if p.is_file()] if base.exists() else []

    def all_files(self) -> Iterator[Path]:
        """Every file under AIRFLOW_HOME: logs of tasks, triggers and components, DB, config."""
        for path in sorted(self.home.rglob("*")):
            if path.is_file():
                yield path


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return [f"(unreadable: {exc})"]
    return ["    " + line for line in text.splitlines()[-lines:]]
