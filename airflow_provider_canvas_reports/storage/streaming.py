"""The streaming core: move bytes to a sink in ~1 MiB writes, counting and hashing as they pass.

A source is either an iterable of chunks or a :class:`Readable` (``readinto``). A Readable is
read into a small ring of reusable buffers: nothing is allocated or copied per chunk, which
matters at network speed (each new 1 MiB chunk costs an allocation, often page faults, and a
copy when a BufferedWriter takes it in).
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from airflow_provider_canvas_reports.storage.errors import StorageError, VerificationError

#: Size of the writes we issue and of the reads we do. Big enough that per-chunk Python overhead
#: is noise next to hashing and I/O, small enough that memory stays flat.
CHUNK_SIZE = 1 << 20

#: ``verify(size, sha256_hex)``: raise to refuse the data; called before anything is committed.
Verify = Callable[[int, str], None]
#: ``progress(bytes_so_far)``: told after each chunk (e.g. to log how far a download got).
Progress = Callable[[int], None]


@runtime_checkable
class Readable(Protocol):
    """A byte source that reads into the caller's buffer.

    ``readinto`` fills the buffer; fewer bytes than asked only at the end, 0 once exhausted (as
    ``io.BufferedReader.readinto`` does).
    """

    def readinto(self, buffer: memoryview, /) -> int: ...


#: Chunks at least this big are hashed on a helper thread, overlapping the next read and this
#: write (hashlib releases the GIL): SHA-256 costs as much CPU as receiving and writing together.
_OFFLOAD_MIN = 64 << 10
#: Chunks handed to the hashing thread and not hashed yet (memory stays bounded: 4 MiB at most).
_MAX_PENDING = 4
_hasher: tuple[int, ThreadPoolExecutor] | None = None


def _hashing_thread() -> ThreadPoolExecutor:
    """One worker, so a stream's updates run in order; a new one after a fork (threads do not
    survive it, and a forked copy of the old executor would never run its queue)."""
    global _hasher
    if _hasher is None or _hasher[0] != os.getpid():
        _hasher = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="canvas-sha256"))
    return _hasher[1]


class Meter:
    """Byte count and SHA-256 of a stream, with an early stop when it outgrows ``expected_size``."""

    __slots__ = ("_hash", "_pending", "expected_size", "label", "progress", "size")

    def __init__(self, expected_size: int | None, label: str, progress: Progress | None = None) -> None:
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"expected_size must be >= 0 or None, got {expected_size}")
        self.expected_size = expected_size
        self.label = label
        self.progress = progress
        self.size = 0
        self._hash = hashlib.sha256()
        self._pending: deque[Future[None]] = deque()

    def update(self, chunk: Any) -> None:
        """Count and hash ``chunk``; one that is not ``bytes`` is copied if hashed later."""
        if not isinstance(chunk, bytes) and len(chunk) >= _OFFLOAD_MIN:
            chunk = bytes(chunk)  # the hashing thread reads it later: it must not change meanwhile
        self.update_view(chunk)

    def update_view(self, view: bytes | memoryview) -> Future[None] | None:
        """Count and hash a view of a buffer the caller refills later, without copying it.

        Returns the hashing job when the view is hashed on the helper thread: the caller must not
        change the buffer before that job is done.
        """
        self._count(len(view))
        if len(view) < _OFFLOAD_MIN:
            self._drain()  # keep the order
            self._hash.update(view)
            return None
        return self._offload(view)

    def _count(self, n: int) -> None:
        self.size += n
        if self.expected_size is not None and self.size > self.expected_size:
            # Stop at once: a stream that outgrows its announced size is wrong, and may be endless.
            raise VerificationError(
                f"{self.label}: received more than the expected {self.expected_size} bytes; "
                "nothing was committed. The source changed or is truncated/padded: retry the task, "
                "and check the size the source announces."
            )
        if self.progress is not None:
            self.progress(self.size)

    def _offload(self, data: Any) -> Future[None]:
        job = _hashing_thread().submit(self._hash.update, data)
        self._pending.append(job)
        while len(self._pending) > _MAX_PENDING:
            self._pending.popleft().result()
        return job

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    @property
    def sha256(self) -> str:
        self._drain()
        return self._hash.hexdigest()

    def finish(self) -> tuple[int, str]:
        """Check the final size; return (size, sha256 hex)."""
        self._drain()
        if self.expected_size is not None and self.size != self.expected_size:
            raise VerificationError(
                f"{self.label}: received {self.size} bytes but expected {self.expected_size}; "
                "nothing was committed. The download was cut short: retry the task."
            )
        return self.size, self.sha256


def pump(source: Iterable[bytes] | Readable, write: Callable[[Any], object], meter: Meter) -> None:
    """Feed ``source`` to ``write`` in writes of at least CHUNK_SIZE (except the last).

    Small incoming chunks (e.g. 8 KiB from an HTTP client) are coalesced so sinks never see tiny
    writes; the bulk of large ones goes through as a zero-copy view. A :class:`Readable` is read
    into a ring of buffers (see :func:`_pump_readable`). Sinks copy or write through: none keeps a
    reference to what it is given.
    """
    if isinstance(source, Readable):
        _pump_readable(source, write, meter)
        return
    chunks = source
    buf = bytearray()
    for chunk in chunks:
        if not chunk:
            continue
        meter.update(chunk)
        data: Any = chunk
        if buf:
            missing = CHUNK_SIZE - len(buf)
            if len(data) < missing:
                buf += data
                continue
            view = memoryview(data)
            buf += view[:missing]
            write(buf)
            buf.clear()
            data = view[missing:]
        if len(data) >= CHUNK_SIZE:
            write(data)
        elif data:
            buf += data
    if buf:
        write(buf)


#: Two buffers: one filled and written while the hashing thread, the slowest stage, hashes the
#: other (more would only wait longer). 4 MiB reads cost 0.1-0.2 s less CPU per GiB than 1 MiB
#: reads here (fewer handoffs to the hashing thread), for 8 MiB of memory, flat.
_RING = 2
_RING_BUFFER = 4 * CHUNK_SIZE


def _pump_readable(source: Readable, write: Callable[[Any], object], meter: Meter) -> None:
    """Read ``source`` into _RING reusable buffers: fill one, hand it to the hashing thread,
    write it, and refill it only once its hash is done (memory stays at _RING x _RING_BUFFER
    whatever the size of the stream)."""
    ring = [memoryview(bytearray(_RING_BUFFER)) for _ in range(_RING)]
    hashing: list[Future[None] | None] = [None] * _RING
    turn = 0
    while True:
        job = hashing[turn]
        if job is not None:
            job.result()
        n = source.readinto(ring[turn])
        if not n:
            break
        view = ring[turn][:n]
        hashing[turn] = meter.update_view(view)
        write(view)
        turn = (turn + 1) % _RING


def write_all(fd: int) -> Callable[[Any], None]:
    """A ``write`` for :func:`pump` straight to a file descriptor.

    No BufferedWriter: pump already issues ~1 MiB writes, and one would copy each of them again.
    """

    def write(data: Any) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


def file_chunks(path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Read a local file as chunks (e.g. to land a spooled file with ``write_stream``)."""
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


def hash_readable(read: Callable[[int], bytes]) -> tuple[int, str]:
    """(size, sha256) of everything ``read`` returns, CHUNK_SIZE at a time."""
    digest = hashlib.sha256()
    size = 0
    while chunk := read(CHUNK_SIZE):
        size += len(chunk)
        digest.update(chunk)
    return size, digest.hexdigest()


def check_free_space(folder: str, needed: int | None, what: str, fix: str) -> None:
    """Fail fast, before any byte is written, when a local folder cannot hold ``needed`` bytes."""
    if not needed:
        return
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows) or no such folder yet: ENOSPC will tell
        return
    free = stats.f_bavail * stats.f_frsize
    if free < needed:
        raise StorageError(
            f"Not enough space in {folder} for {what}: {needed} bytes needed, {free} free. {fix}"
        )
