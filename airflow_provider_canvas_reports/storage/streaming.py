"""The streaming core: move byte chunks to a sink in ~1 MiB writes, counting and hashing as they pass."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from airflow_provider_canvas_reports.storage.errors import StorageError, VerificationError

#: Size of the writes we issue and of the reads we do. Big enough that per-chunk Python overhead
#: is noise next to hashing and I/O, small enough that memory stays flat.
CHUNK_SIZE = 1 << 20

#: ``verify(size, sha256_hex)``: raise to refuse the data; called before anything is committed.
Verify = Callable[[int, str], None]


class Meter:
    """Byte count and SHA-256 of a stream, with an early stop when it outgrows ``expected_size``."""

    __slots__ = ("_hash", "expected_size", "label", "size")

    def __init__(self, expected_size: int | None, label: str) -> None:
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"expected_size must be >= 0 or None, got {expected_size}")
        self.expected_size = expected_size
        self.label = label
        self.size = 0
        self._hash = hashlib.sha256()

    def update(self, chunk: Any) -> None:
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            # Stop at once: a stream that outgrows its announced size is wrong, and may be endless.
            raise VerificationError(
                f"{self.label}: received more than the expected {self.expected_size} bytes; "
                "nothing was committed. The source changed or is truncated/padded: retry the task, "
                "and check the size the source announces."
            )
        self._hash.update(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> tuple[int, str]:
        """Check the final size; return (size, sha256 hex)."""
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
