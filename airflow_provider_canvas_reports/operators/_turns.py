"""Tasks released together take turns for their first request to Canvas: by DAG, then by host.

Canvas lets only about 14 requests per token be in flight, so start or download tasks released
in the same instant (a mapped task's instances, or the tasks of one DAG with the same upstream
tasks) would send most of their first requests into a full bucket. They cannot talk to each
other, but each can read the same DAG: a task's place is its rank by task_id among them, plus
its map index, and it waits that place times a spacing (`canvas.turns.start_delay`).

Tasks of different DAGs cannot read each other's DAG, but those on one worker host share its
temp directory: a small file per (Canvas host, token) holds the last turn taken there, and each
task takes the next one, `spacing` later (`take_host_turn`, `canvas.turns.host_turn`). A task
alone takes its turn at once.

Every DAG parse imports this module (the operators check their pauses with `pause_seconds`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Host-turn waits shorter than this are logged at DEBUG: routine, not worth a line.
NOTEWORTHY_WAIT = 0.5

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context


def release_rank(task: BaseOperator, kind: type) -> tuple[int, int]:
    """The task's rank, by task_id, among its DAG's `kind` tasks released with it (those with the
    same upstream tasks, mapped or not, subclasses included), and their number; (0, 1) outside a DAG."""
    dag = task.get_dag()
    if dag is None:
        return 0, 1
    upstream = task.upstream_task_ids
    together = sorted(
        other.task_id for other in dag.tasks if _is_kind(other, kind) and other.upstream_task_ids == upstream
    )
    if task.task_id not in together:
        return 0, max(1, len(together))
    return together.index(task.task_id), len(together)


def take_turn(
    task: BaseOperator, context: Context, *, kind: type, spacing: float, jitter: float, key: str
) -> None:
    """Wait this task's place among the `kind` tasks released with it times `spacing`, plus a
    random 0 to `jitter` seconds, then for its worker host's turn on the token `key` names
    (`CanvasHook.turn_key`), before its first request to Canvas."""
    from airflow_provider_canvas_reports.canvas.turns import release_place, start_delay

    map_index = getattr(context.get("ti"), "map_index", None)
    rank, together = release_rank(task, kind)
    place = release_place(rank, map_index)
    pause = start_delay(place, spacing, jitter)
    if pause > 0:
        task.log.info(
            "Waiting %.2fs before the first request to Canvas: place %d among the %s tasks released "
            "together (rank %d of the DAG's %d, map index %s; start_spacing %gs, start_jitter %gs).",
            pause,
            place,
            kind.__name__,
            rank,
            together,
            map_index,
            spacing,
            jitter,
        )
        time.sleep(pause)
    turn = take_host_turn(key, spacing)
    pause = 0.0 if turn is None else turn - time.time()
    if pause > 0:
        # A wait of a few hundredths of a second is routine (a task's own upstream just went).
        task.log.log(
            logging.INFO if pause >= NOTEWORTHY_WAIT else logging.DEBUG,
            "Waiting %.2fs for this worker's turn on the Canvas token: other tasks here sent their "
            "first requests just now (start_spacing %gs).",
            pause,
            spacing,
        )
        time.sleep(pause)


def take_host_turn(key: str, spacing: float) -> float | None:
    """Take the next turn on this worker host for the token `key` names: when it comes (epoch
    seconds, as written in the ledger, so the caller's wait counts from the moment it asks).

    The ledger is a file in a directory of the temp dir that only this user may use, read and
    rewritten under an exclusive lock held for that moment only. Without it (no `fcntl`, a temp
    dir that is not ours, any OS error) no turn is taken: None.
    """
    from airflow_provider_canvas_reports.canvas.turns import host_turn

    if spacing <= 0:
        return None
    try:
        import fcntl

        fd = os.open(_ledger_dir() / f"turns-{key}", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        turn = host_turn(_last_turn(os.pread(fd, 64, 0)), time.time(), spacing)
        os.ftruncate(fd, 0)
        os.pwrite(fd, repr(turn).encode(), 0)
    except OSError:
        return None
    finally:
        os.close(fd)  # and with it the lock
    return turn


def _ledger_dir() -> Path:
    """This user's own directory in the temp dir; OSError if someone else's stands there."""
    path = Path(tempfile.gettempdir()) / f"airflow-canvas-reports-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if info.st_uid != os.getuid() or not path.is_dir() or path.is_symlink() or info.st_mode & 0o077:
        raise OSError(f"{path} is not a private directory of this user")
    return path


def _last_turn(raw: bytes) -> float | None:
    try:
        last = float(raw.decode("ascii"))
    except ValueError:  # empty (a new ledger) or not ours to read
        return None
    return last if last == last else None  # NaN: none


def _is_kind(task: Any, kind: type) -> bool:
    cls = getattr(task, "operator_class", type(task))  # a mapped task names its operator's class
    return isinstance(cls, type) and issubclass(cls, kind)
