"""Plumbing shared by the benchmarks: environment, the simulator process, measurements, results.

Import this module before anything that imports Airflow: it gives the run a throwaway
AIRFLOW_HOME (Airflow reads it once, on first import) so a benchmark never touches ~/airflow.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if "AIRFLOW_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="canvas-bench-airflow-")
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    # Without bytecode caches every child process compiles Airflow from source (~5 s of CPU), which
    # no deployment does (pip compiles on install). Children cache bytecode outside the repository.
    os.environ.setdefault(
        "PYTHONPYCACHEPREFIX",
        str(
            Path(os.environ.get("CANVAS_BENCH_CACHE") or Path(tempfile.gettempdir()) / "canvas-reports-bench")
            / "pycache"
        ),
    )

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
RESULT_PREFIX = "BENCH_RESULT "
_PAGE = os.sysconf("SC_PAGE_SIZE")


def arg_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0] if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks the benchmark runs (CI), measures nothing"
    )
    return parser


def cache_dir() -> Path:
    """Where generated inputs (1 GiB reports) are kept between runs: outside the repository."""
    path = Path(os.environ.get("CANVAS_BENCH_CACHE") or Path(tempfile.gettempdir()) / "canvas-reports-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def scratch_dir(prefix: str) -> Path:
    """A fresh folder for outputs, removed at exit. tmpfs (/dev/shm) when there is room, so that
    disk speed, which drifts most on a shared machine, stays out of throughput figures."""
    base = os.environ.get("CANVAS_BENCH_SCRATCH")
    if base is None and os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 6 * GiB:
        base = "/dev/shm"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# -- results ----------------------------------------------------------------------------------


def emit(bench: str, **figures: Any) -> None:
    """One machine-readable line per benchmark (scripts/bench.sh collects them)."""
    print(RESULT_PREFIX + json.dumps({"bench": bench, **figures}, sort_keys=True), flush=True)


def say(*parts: Any) -> None:
    print(*parts, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- measurements -----------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * KiB
    return 0


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def run_child(cmd: Sequence[str], **popen: Any) -> dict[str, Any]:
    """Run a command; its wall time, CPU time (user+sys) and peak RSS from wait4, and its stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, text=True, **popen)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "returncode": proc.returncode,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss": usage.ru_maxrss * KiB,  # Linux: KiB
        "stdout": out,
    }


def throughput(size: int, seconds: float) -> float:
    return size / MiB / seconds if seconds > 0 else float("inf")


# -- the simulator, in its own process --------------------------------------------------------


class SimProcess:
    """``python -m benchmarks._simserver``: one simulator per config, all in one separate process.

    ``sim.url``, ``sim.token``, ``sim.call()`` and ``sim.connect()`` address the first
    simulator; ``sim[i]`` any of them.
    """

    def __init__(self, *configs: dict[str, Any], **config: Any) -> None:
        self.configs = list(configs) or [config]
        self.proc: subprocess.Popen[str] | None = None
        self.infos: list[dict[str, Any]] = []

    def __enter__(self) -> SimProcess:
        self.proc = subprocess.Popen(
            [PY, "-m", "benchmarks._simserver", *(json.dumps(c) for c in self.configs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        line = self._readline()
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError("the simulator process did not start (see its stderr above)")
        self.infos = json.loads(line)
        return self

    def __getitem__(self, index: int) -> Sim:
        return Sim(self, index)

    def _readline(self) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def call(self, cmd: str, sim: int = 0, **args: Any) -> Any:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, "sim": sim, **args}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self._readline())
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"simulator: {reply['error']}")
        return reply

    def counters(self) -> dict[str, Any]:
        return self.call("counters")  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def url(self) -> str:
        return self[0].url

    @property
    def token(self) -> str:
        return self[0].token

    def connect(self, conn_id: str = "canvas_default") -> str:
        return self[0].connect(conn_id)


class Sim:
    """One of the simulators of a SimProcess."""

    def __init__(self, process: SimProcess, index: int) -> None:
        self.process = process
        self.index = index
        self.info = process.infos[index]

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def token(self) -> str:
        return str(self.info["token"])

    def call(self, cmd: str, **args: Any) -> Any:
        return self.process.call(cmd, sim=self.index, **args)

    def counters(self) -> dict[str, Any]:
        return self.call("counters")  # type: ignore[no-any-return]

    def connect(self, conn_id: str = "canvas_default") -> str:
        """Point an Airflow connection (an environment variable, inherited by children) at it."""
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
            {"conn_type": "canvas", "host": self.url, "password": self.token}
        )
        return conn_id


class StubTaskInstance:
    """The parts of a task instance the operators read, for running execute() outside Airflow."""

    dag_id = "canvas_benchmarks"
    run_id = "benchmark"
    map_index = -1
    try_number = 1

    def __init__(self, task_id: str, map_index: int = -1) -> None:
        self.task_id = task_id
        self.map_index = map_index

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def task_context(task_id: str, map_index: int = -1) -> dict[str, Any]:
    """A minimal task context: what the provider's operators use of it."""
    return {"ti": StubTaskInstance(task_id, map_index)}


def wait_complete(hook: Any, report: str, report_id: int, timeout: float = 1800.0) -> Any:
    """Poll (quickly, with the sync hook) until the report is complete; the Report."""
    deadline = time.monotonic() + timeout
    while True:
        current = hook.get_report(report, report_id)
        if current.status == "complete":
            return current
        if current.status in ("error", "aborted", "deleted"):
            raise RuntimeError(f"report {report_id} ended {current.status}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"report {report_id} still {current.status}")
        time.sleep(0.2)
