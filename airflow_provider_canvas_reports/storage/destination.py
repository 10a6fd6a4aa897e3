"""Turn a user's ``destination`` (URL string or ObjectStoragePath) into a usable folder path."""

from __future__ import annotations

import logging
import os
from pathlib import PurePath
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import ObjectStoragePath
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_canvas_reports.storage.errors import DestinationError

log = logging.getLogger(__name__)

_AMAZON = "apache-airflow-providers-amazon[s3fs]"
_GOOGLE = "apache-airflow-providers-google"
_AZURE = "apache-airflow-providers-microsoft-azure"

#: Which distribution brings the Airflow filesystem for a scheme, for "install X" messages.
INSTALL_HINTS: dict[str, str] = {
    "s3": _AMAZON,
    "s3a": _AMAZON,
    "s3n": _AMAZON,
    "gs": _GOOGLE,
    "gcs": _GOOGLE,
    "abfs": _AZURE,
    "abfss": _AZURE,
    "adl": _AZURE,
    "az": _AZURE,
}

#: fsspec protocols whose writable files only become visible when the upload completes
#: (S3 multipart complete / single PUT, GCS resumable finalise, Azure commit_block_list), so a
#: write may go straight to the final key as long as an unfinished upload is never completed.
OBJECT_STORE_PROTOCOLS = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "az"})

StorageKind = Literal["local", "object_store", "generic"]


def storage_kind(fs: AbstractFileSystem) -> StorageKind:
    """How a write to ``fs`` is made atomic (see ``writer``)."""
    if isinstance(fs, LocalFileSystem):
        return "local"
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if OBJECT_STORE_PROTOCOLS.intersection(protocols):
        return "object_store"
    return "generic"


def connection_id(path: ObjectStoragePath) -> str | None:
    """The Airflow connection of ``path``: an attribute since Airflow 3.2, a storage option before."""
    conn_id = getattr(path, "conn_id", None)
    if conn_id is None:
        conn_id = path.storage_options.get("conn_id")
    return conn_id or None


def object_uri(path: ObjectStoragePath) -> str:
    """The plain URI of ``path``, without the Airflow connection id (``s3://bucket/key``)."""
    protocol = path.protocol or "file"
    if protocol in ("file", "local"):
        return "file://" + path.path
    return f"{protocol}://{path.path}"


def describe(path: ObjectStoragePath) -> str:
    """``object_uri`` plus the connection, for messages."""
    uri = object_uri(path)
    conn_id = connection_id(path)
    return f"{uri} (connection {conn_id!r})" if conn_id else uri


def _install_hint(scheme: str) -> str:
    package = INSTALL_HINTS.get(scheme)
    if package:
        return f"install {package}"
    return f"install the Airflow provider that registers a filesystem for '{scheme}://'"


def _scheme_has_filesystem(scheme: str) -> bool:
    from airflow.sdk.io import has_fs

    if has_fs(scheme):
        return True
    # Stores attached at run time with ``attach(protocol, fs=...)`` are not in the providers'
    # registry; they live in the SDK's store cache (private, hence the defensive lookup).
    from airflow.sdk.io import store

    cache = getattr(store, "_STORE_CACHE", {})
    return any(getattr(s, "protocol", None) == scheme and "fs" in vars(s) for s in cache.values())


def _check_connection(conn_id: str) -> None:
    # common.compat: the exception class moved from airflow.exceptions to airflow.sdk in 3.2.
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        # The Amazon filesystem would silently fall back to ambient credentials: refuse instead.
        raise DestinationError(
            f"Destination connection {conn_id!r} is not defined: create it (UI Admin > Connections, "
            f"an AIRFLOW_CONN_{conn_id.upper()} environment variable or a secrets backend) "
            "or fix dest_conn_id."
        ) from exc


def _split(destination: str | ObjectStoragePath) -> tuple[str, str, str | None, dict]:
    """Return (scheme, url without userinfo, conn id carried by the destination, storage options)."""
    if isinstance(destination, ObjectStoragePath):
        scheme = destination.protocol or "file"
        if scheme == "local":
            scheme = "file"
        url = object_uri(destination) if scheme != "file" else "file://" + destination.path
        options = {k: v for k, v in destination.storage_options.items() if k != "conn_id"}
        return scheme, url, connection_id(destination), options
    if isinstance(destination, PurePath):
        raise DestinationError(
            f"Destination must be a URL string or an ObjectStoragePath, got the path {str(destination)!r}: "
            f"give it as a URL, e.g. {destination.as_uri() if destination.is_absolute() else 'file:///absolute/folder/'!r}."
        )
    if not isinstance(destination, str):
        raise DestinationError(
            f"Destination must be a URL string or an ObjectStoragePath, got {type(destination).__name__}"
        )
    text = destination.strip()
    if not text:
        raise DestinationError("Destination is empty: give a folder URL such as 's3://bucket/prefix/'")
    parts = urlsplit(text)
    if not parts.scheme:
        if text.startswith("/"):
            return "file", "file://" + text, None, {}
        raise DestinationError(
            f"Destination {text!r} has no scheme: give a URL such as 's3://bucket/prefix/' "
            "or 'file:///absolute/folder/'"
        )
    scheme = parts.scheme.lower()
    if len(scheme) == 1:
        raise DestinationError(
            f"Destination {text!r} looks like a Windows path: give a URL such as 'file:///data/reports/'"
        )
    conn_in_url = None
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        conn_in_url = userinfo or None
        netloc = host
    if scheme in ("file", "local") and netloc:
        # file://localhost/data/ is /data/; any other host would be read as a folder relative to
        # the worker's current directory, and the files would land somewhere nobody looks.
        if netloc.lower() != "localhost":
            raise DestinationError(
                f"Destination {text!r} names the host {netloc!r}: a file:// URL needs three slashes "
                f"and an absolute path, e.g. 'file:///{netloc}{parts.path}'."
            )
        netloc = ""
    if scheme in ("file", "local") and not parts.path.startswith("/"):
        # 'file:lake' would land in /lake, 'local:lake' under the worker's current directory.
        raise DestinationError(
            f"Destination {text!r} is a relative path: give an absolute folder, e.g. 'file:///data/reports/'."
        )
    if scheme in INSTALL_HINTS and not netloc:
        word = "container" if INSTALL_HINTS[scheme] == _AZURE else "bucket"
        raise DestinationError(
            f"Destination {text!r} names no {word}: give one, e.g. '{scheme}://my-{word}/canvas/' (a "
            f"template that renders the {word} may have rendered nothing)."
        )
    url = urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
    return scheme, url, conn_in_url, {}


def _cannot_inspect(path: ObjectStoragePath, exc: Exception) -> DestinationError:
    return DestinationError(
        f"Cannot inspect destination {describe(path)}: {exc}. Check that the bucket or folder "
        "exists and that the connection can reach it."
    )


def _check_bucket(path: ObjectStoragePath) -> None:
    """Refuse a bucket (Azure: container) that does not exist before anything is downloaded.

    Stores create no buckets on write: the write would fail only after the download, and again
    on every retry of the task.
    """
    bucket = path.path.split("/", 1)[0]
    try:
        path.fs.info(bucket)
    except PermissionError:
        # Write-only credentials may not read the bucket (s3:ListBucket); the write will tell.
        log.debug("No permission to inspect bucket %r of %s; assuming it exists", bucket, describe(path))
    except FileNotFoundError as exc:
        word = "container" if INSTALL_HINTS.get(path.protocol) == _AZURE else "bucket"
        raise DestinationError(
            f"Destination {describe(path)}: {word} {bucket!r} does not exist. Create it, or fix the "
            "destination."
        ) from exc
    except Exception as exc:  # OSError, and the store library's own (botocore's are no OSErrors)
        raise _cannot_inspect(path, exc) from exc


def resolve_destination(
    destination: str | ObjectStoragePath, conn_id: str | None = None
) -> ObjectStoragePath:
    """Return ``destination`` as an ObjectStoragePath folder bound to its connection.

    Checks, in this order and with an actionable message each: the scheme has an Airflow
    filesystem (no network is touched for a bad scheme), the connection exists, the filesystem
    library can be loaded, an object store's bucket exists, and the destination is not an
    existing file. A local folder that does not exist yet is fine: it is created on first write.
    """
    scheme, url, carried_conn, options = _split(destination)
    if conn_id and carried_conn and conn_id != carried_conn:
        raise DestinationError(
            f"Destination names connection {carried_conn!r} but dest_conn_id is {conn_id!r}: "
            "give the connection in one place only."
        )
    effective_conn = conn_id or carried_conn

    if not _scheme_has_filesystem(scheme):
        raise DestinationError(f"Destination scheme '{scheme}' has no filesystem: {_install_hint(scheme)}")
    # Check the connection before building the path: ObjectStoragePath caches the filesystem
    # per (scheme, conn_id), and a filesystem built for a missing connection would stay cached.
    if effective_conn:
        _check_connection(effective_conn)

    try:
        path = ObjectStoragePath(url, conn_id=effective_conn, **options)
        path.fs  # noqa: B018 - builds the filesystem now, so a missing library fails here
    except ImportError as exc:
        raise DestinationError(
            f"Destination scheme '{scheme}' needs a filesystem library that is not installed: "
            f"{_install_hint(scheme)} ({exc})"
        ) from exc
    except ValueError as exc:
        raise DestinationError(
            f"Destination scheme '{scheme}' has no filesystem: {_install_hint(scheme)} ({exc})"
        ) from exc

    if storage_kind(path.fs) == "object_store":
        _check_bucket(path)
    try:
        is_file = path.is_file()
    except PermissionError:
        # Write-only credentials may not read metadata; the write itself will tell.
        log.debug("No permission to inspect %s; assuming it is a folder", describe(path))
        is_file = False
    except Exception as exc:  # as in _check_bucket
        raise _cannot_inspect(path, exc) from exc
    if is_file:
        raise DestinationError(
            f"Destination {describe(path)} is a file, not a folder: give the folder that should "
            "receive the report files, e.g. 's3://bucket/reports/'."
        )
    if storage_kind(path.fs) == "local":
        _check_local_folder(path)
    return path


def _check_local_folder(path: ObjectStoragePath) -> None:
    """A local folder must be creatable and writable; found now, not after the download."""
    folder = os.path.abspath(path.path)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise DestinationError(
            f"Destination {describe(path)} cannot be a folder: {existing} is a file. Remove it or choose "
            "another destination."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "folder" if existing == folder else f"folder, nor can it be created in {existing}"
        raise DestinationError(
            f"Destination {describe(path)}: the worker cannot write to this {what} (permission denied or "
            "a read-only filesystem). Grant the Airflow user write access, or choose another destination."
        )
