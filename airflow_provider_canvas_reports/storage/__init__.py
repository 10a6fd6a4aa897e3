"""Streaming, verified, atomic writes and ZIP extraction to ``ObjectStoragePath`` destinations.

No Canvas and no HTTP here: this package takes byte chunks and local files. Guarantees:

* streaming: ~1 MiB chunks, SHA-256 and size computed on the way, flat memory;
* the final object name never holds a partial or unverified object, and a failed write leaves
  nothing behind (see :mod:`.writer` for how, per store; :func:`clean_stale_partials` handles
  what only ``kill -9`` can leave);
* ZIPs are validated whole before the first write and extracted all-or-nothing: every member is
  staged and verified before the first is committed.

Typical use by an operator::

    folder = resolve_destination(destination, dest_conn_id)
    clean_stale_partials(folder, [name], min_age=300)
    if extract:
        with spool_stream(chunks, expected_size=size) as spooled:
            landed = extract_zip(spooled.path, folder)
    else:
        landed = [write_stream(chunks, folder / safe_name(name), expected_size=size)]
    return [obj.as_dict() for obj in landed]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_canvas_reports.storage.cleanup import clean_stale_partials
    from airflow_provider_canvas_reports.storage.destination import object_uri, resolve_destination
    from airflow_provider_canvas_reports.storage.errors import (
        DestinationError,
        DestinationExistsError,
        InvalidZipError,
        StorageError,
        UnsafeNameError,
        VerificationError,
        ZipBombError,
    )
    from airflow_provider_canvas_reports.storage.model import LandedObject, OverwritePolicy, ZipLimits
    from airflow_provider_canvas_reports.storage.names import safe_name
    from airflow_provider_canvas_reports.storage.spool import SpooledFile, clean_stale_spools, spool_stream
    from airflow_provider_canvas_reports.storage.streaming import CHUNK_SIZE, Verify, file_chunks
    from airflow_provider_canvas_reports.storage.writer import DEFAULT_UPLOAD_BLOCK_SIZE, write_stream
    from airflow_provider_canvas_reports.storage.zipfiles import extract_zip, member_object_name

# Each name is loaded from its module on first use (PEP 562): DownloadReportOperator imports the
# light `model` module when a DAG is parsed, and the I/O modules (writer, ZIP, spool) only load
# when a task runs.
_SOURCES = {
    "clean_stale_partials": "cleanup",
    "object_uri": "destination",
    "resolve_destination": "destination",
    "DestinationError": "errors",
    "DestinationExistsError": "errors",
    "InvalidZipError": "errors",
    "StorageError": "errors",
    "UnsafeNameError": "errors",
    "VerificationError": "errors",
    "ZipBombError": "errors",
    "LandedObject": "model",
    "OverwritePolicy": "model",
    "ZipLimits": "model",
    "safe_name": "names",
    "SpooledFile": "spool",
    "clean_stale_spools": "spool",
    "spool_stream": "spool",
    "CHUNK_SIZE": "streaming",
    "Verify": "streaming",
    "file_chunks": "streaming",
    "DEFAULT_UPLOAD_BLOCK_SIZE": "writer",
    "write_stream": "writer",
    "extract_zip": "zipfiles",
    "member_object_name": "zipfiles",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_UPLOAD_BLOCK_SIZE",
    "DestinationError",
    "DestinationExistsError",
    "InvalidZipError",
    "LandedObject",
    "OverwritePolicy",
    "SpooledFile",
    "StorageError",
    "UnsafeNameError",
    "VerificationError",
    "Verify",
    "ZipBombError",
    "ZipLimits",
    "clean_stale_partials",
    "clean_stale_spools",
    "extract_zip",
    "file_chunks",
    "member_object_name",
    "object_uri",
    "resolve_destination",
    "safe_name",
    "spool_stream",
    "write_stream",
]
