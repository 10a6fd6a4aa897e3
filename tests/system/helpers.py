"""What the scenarios share: finding a run's Canvas report, watching a folder, killing a task."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .conftest import Sim, System
from .deployment import DeploymentError, wait_for

REPORT = "provisioning_csv"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def expected_objects(sim: Sim, report_id: int, extract_zip: bool = True) -> dict[str, tuple[int, str]]:
    """Object name -> (size, sha256) that landing this simulator report must produce."""
    attachment = wait_for(
        f"report #{report_id}'s file in the simulator",
        lambda: sim.sim.reports[report_id].attachment,
        timeout=60,
    )
    path = Path(attachment.file.path)
    if not (extract_zip and attachment.file.is_zip):
        return {attachment.display_name: (attachment.size, sha256_file(path))}
    found = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            digest = hashlib.sha256()
            with zf.open(info) as member:
                while chunk := member.read(1 << 20):
                    digest.update(chunk)
            found[info.filename] = (info.file_size, digest.hexdigest())
    return found


def one_new_report(sim: Sim, before: set[int], *, timeout: float = 90) -> int:
    """The id of the report a run started (exactly one, or the test fails)."""
    new = wait_for(f"a report started on {sim.conn_id}", lambda: sim.new_reports(before), timeout=timeout)
    time.sleep(0.5)  # a second start right behind the first would be a duplicate: look again
    new = sim.new_reports(before)
    if len(new) != 1:
        raise DeploymentError(f"expected one new report on {sim.conn_id}, found {new}")
    return new[0]


def is_partial(name: str) -> bool:
    return name.startswith(".") and ".partial-" in name


@dataclass
class FolderWatch:
    """Polls a destination folder in a thread; records any final-name object that is not whole.

    A final name (anything not a hidden temp file) must only ever hold one of ``expected``'s
    objects at its exact size; temp files (``.<name>.partial-<token>``) are recorded separately.
    """

    folder: Path
    expected: dict[str, tuple[int, str]]
    interval: float = 0.02
    violations: list[str] = field(default_factory=list)
    partials_seen: dict[str, int] = field(default_factory=dict)
    scans: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> FolderWatch:
        self._thread = threading.Thread(target=self._run, name=f"watch {self.folder}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scan()
            time.sleep(self.interval)

    def scan(self) -> None:
        self.scans += 1
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # renamed or removed between listing and stat
            if is_partial(entry.name):
                self.partials_seen[entry.name] = max(size, self.partials_seen.get(entry.name, 0))
                continue
            want = self.expected.get(entry.name)
            if want is None or size != want[0]:
                self.violations.append(
                    f"{time.strftime('%H:%M:%S')} {entry.name}: {size} bytes, expected "
                    f"{want[0] if want else 'no such object'}"
                )

    def partial_bytes(self) -> int:
        return max(self.partials_seen.values(), default=0)


def ti_of(system: System, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return system.api.task_instance(dag_id, run_id, task_id)


def kill_task_runner(system: System, ti_id: str, *, timeout: float = 60) -> int:
    """``kill -9`` the process running a task instance's try; return its pid."""
    deployment = system.deployment
    proc = wait_for(
        f"the task runner of {ti_id}",
        lambda: deployment.task_runner(ti_id),
        timeout=timeout,
        on_timeout=deployment.describe_processes,
    )
    pid = proc.pid
    proc.kill()
    psutil.wait_procs([proc], timeout=10)
    deployment.mark(f"killed task runner of {ti_id} (pid {pid}) with SIGKILL")
    return pid


def landed(folder: Path) -> dict[str, tuple[int, str]]:
    """What a destination folder holds now: name -> (size, sha256), temp files included."""
    return {p.name: (p.stat().st_size, sha256_file(p)) for p in sorted(folder.iterdir()) if p.is_file()}
