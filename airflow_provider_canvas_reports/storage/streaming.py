"""The streaming core: move byte chunks to a sink in ~1 MiB writes, counting and hashing as they pass."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from airflow_provider_canvas_reports.storage.errors import StorageError, VerificationError

#: Size of the writes we issue and of the reads we do. Big enough that per-chunk Python overhead
#: is noise next to hashing and I/O, small enough that memory stays flat.
CHUNK_SIZE = 1 << 20

#: ``verify(size, sha256_hex)``: raise to refuse the data; called before anything is committed.
Verify = Callable[[int, str], None]


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

    __slots__ = ("_hash", "_pending", "expected_size", "label", "size")

    def __init__(self, expected_size: int | None, label: str) -> None:
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"expected_size must be >= 0 or None, got {expected_size}")
        self.expected_size = expected_size
        self.label = label
        self.size = 0
        self._hash = hashlib.sha256()
        self._pending: deque[Future[None]] = deque()

    def update(self, chunk: Any) -> None:
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            # Stop at once: a stream that outgrows its announced size is wrong, and may be endless.
            raise VerificationError(
                f"{self.label}: received more than the expected {self.expected_size} bytes; "
                "nothing was committed. The source changed or is truncated/padded: retry the task, "
                "and check the size the source announces."
            )
        if len(chunk) < _OFFLOAD_MIN:
            self._drain()  # keep the order
            self._hash.update(chunk)
            return
        # The hashing thread reads the chunk later: it must not change meanwhile.
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        self._pending.append(_hashing_thread().submit(self._hash.update, data))
        while len(self._pending) > _MAX_PENDING:
            self._pending.popleft().result()

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


def pump(chunks: Iterable[bytes], write: Callable[[Any], object], meter: Meter) -> None:
    """Feed ``chunks`` to ``write`` in writes of at least CHUNK_SIZE (except the last).

    Small incoming chunks (e.g. 8 KiB from an HTTP client) are coalesced so sinks never see tiny
    writes; the bulk of large ones goes through as a zero-copy view.
    """
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
            write(buf)  # sinks copy or write through; none keeps a reference to the buffer
            buf.clear()
            data = view[missing:]
        if len(data) >= CHUNK_SIZE:
            write(data)
        elif data:
            buf += data
    if buf:
        write(buf)


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
