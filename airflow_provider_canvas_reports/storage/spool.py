"""Spool a stream to a local temp file, for formats that need seeking (ZIP)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_canvas_reports.storage.streaming import (
    Meter,
    Progress,
    Readable,
    Verify,
    check_free_space,
    pump,
    write_all,
)


@dataclass(frozen=True)
class SpooledFile:
    """A local, fully received and size-checked copy of a stream."""

    path: Path
    size: int
    sha256: str


@contextmanager
def spool_stream(
    chunks: Iterable[bytes] | Readable,
    *,
    expected_size: int | None,
    dir: str | os.PathLike[str] | None = None,
    verify: Verify | None = None,
    owner: str | None = None,
    progress: Progress | None = None,
) -> Iterator[SpooledFile]:
    """Write ``chunks`` (or a Readable) to a private temp file and yield it; the file is deleted
    on exit, always.

    The size is checked against ``expected_size`` (VerificationError) and ``verify(size, sha256)``
    runs before the file is yielded. ``dir`` picks the folder (default: the system temp folder);
    it needs room for the whole download, checked up front when ``expected_size`` is known. Where
    /tmp is a tmpfs (RAM), pass a disk-backed ``dir`` for large reports. Only ``kill -9`` can
    leave a ``canvas-report-*.spool`` file behind: with ``owner`` (an id of the task instance),
    the next try removes it with :func:`clean_stale_spools`.
    """
    folder = os.fspath(dir) if dir is not None else tempfile.gettempdir()
    check_free_space(
        folder,
        expected_size,
        "the spooled download",
        "Free some space or spool to a bigger disk-backed folder (the spool dir setting).",
    )
    fd, name = tempfile.mkstemp(prefix=_prefix(owner), suffix=".spool", dir=folder)
    try:
        meter = Meter(expected_size, f"spooled download {name}", progress)
        try:
            pump(chunks, write_all(fd), meter)
        finally:
            os.close(fd)
        size, sha256 = meter.finish()
        if verify is not None:
            verify(size, sha256)
        yield SpooledFile(path=Path(name), size=size, sha256=sha256)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(name)


def _prefix(owner: str | None) -> str:
    return f"canvas-report-{owner}-" if owner else "canvas-report-"


def clean_stale_spools(owner: str, dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove spools an earlier try of the same task left behind when it was killed.

    Only files named for ``owner`` are touched: other tasks' spools in the same folder may be
    in use.
    """
    if not owner:
        raise ValueError("clean_stale_spools needs the owner the spools were written for")
    folder = Path(os.fspath(dir) if dir is not None else tempfile.gettempdir())
    removed = []
    for path in folder.glob(f"{_prefix(owner)}*.spool"):
        with suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
