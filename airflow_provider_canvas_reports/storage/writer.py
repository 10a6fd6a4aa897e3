"""Verified, atomic writes of a byte stream to an ObjectStoragePath.

The final object name only ever holds a complete, verified object, and a failed or killed write
leaves nothing at the final name. How that is achieved depends on the store:

* Local filesystem (``file://``): the data goes to a hidden temp file in the same folder
  (``.<name>.partial-<token>``), is fsynced and verified, then renamed over the final name
  (``rename`` is atomic within a folder). The temp file is removed on any failure. Only
  ``kill -9`` or a power cut can leave a temp file behind; :func:`clean_stale_partials` removes it.
* Object stores (s3fs, gcsfs, adlfs): the data goes straight to the final key, because the object
  only appears when the upload completes (multipart complete, single PUT, resumable finalise,
  block-list commit). On any failure the upload is discarded (S3: ``AbortMultipartUpload``) and
  the file object is marked closed, so neither ``close()`` nor garbage collection can complete a
  partial upload. ``kill -9`` can leave an invisible unfinished S3 multipart upload: remove it
  with :func:`clean_stale_partials` or a bucket lifecycle rule (AbortIncompleteMultipartUpload).
* Other fsspec filesystems: hidden temp name in the same folder, then ``fs.mv``. This is atomic
  only where that filesystem's rename is.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

from airflow.sdk import ObjectStoragePath
from fsspec import AbstractFileSystem

from airflow_provider_canvas_reports.storage.destination import describe, object_uri, storage_kind
from airflow_provider_canvas_reports.storage.errors import (
    DestinationError,
    DestinationExistsError,
    StorageError,
    UnsafeNameError,
    VerificationError,
)
from airflow_provider_canvas_reports.storage.model import LandedObject, OverwritePolicy
from airflow_provider_canvas_reports.storage.names import new_partial_name, safe_name
from airflow_provider_canvas_reports.storage.streaming import (
    CHUNK_SIZE,
    Meter,
    Progress,
    Readable,
    Verify,
    check_free_space,
    hash_readable,
    pump,
    write_all,
)

log = logging.getLogger(__name__)

#: Upload part size for object stores. s3fs's own default (50 MiB) costs ~100 MiB of RAM per
#: upload; 8 MiB keeps memory low and still allows 78 GiB objects of unknown size (S3 allows
#: 10,000 parts). With a known size the part size grows as needed.
DEFAULT_UPLOAD_BLOCK_SIZE = 8 << 20
_MAX_PARTS = 9_000  # below S3's 10,000 to leave room for chunks that straddle a block
_MIB = 1 << 20


def upload_block_size(expected_size: int | None) -> int:
    """Part size for an upload: the default, or larger when the object would need too many parts."""
    if expected_size is None:
        return DEFAULT_UPLOAD_BLOCK_SIZE
    needed = -(-expected_size // _MAX_PARTS)
    return max(DEFAULT_UPLOAD_BLOCK_SIZE, -(-needed // _MIB) * _MIB)


def destination_exists_error(target: ObjectStoragePath) -> DestinationExistsError:
    return DestinationExistsError(
        f"Object {object_uri(target)} exists and overwrite='fail': delete it or use "
        "overwrite='replace' (or 'skip_identical' to keep an identical copy). Nothing was written."
    )


def _record_lineage(target: ObjectStoragePath) -> None:
    # We write through fs.open (not ObjectStoragePath.open) so that an aborted write is never
    # recorded; report the committed object here instead. Lineage is telemetry: never fail on it.
    try:
        from airflow.providers.common.compat.sdk import get_hook_lineage_collector

        get_hook_lineage_collector().add_output_asset(context=target, uri=object_uri(target))
    except Exception:
        log.debug("Could not record hook lineage for %s", object_uri(target), exc_info=True)


def write_stream(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    *,
    expected_size: int | None,
    overwrite: OverwritePolicy | str = OverwritePolicy.REPLACE,
    verify: Verify | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
) -> LandedObject:
    """Stream ``chunks`` to the object ``target``; return it once it is committed and verified.

    :param chunks: the bytes, in chunks of any size (coalesced into ~1 MiB writes), or a
        :class:`Readable` (read into reusable buffers: the fastest way).
    :param target: the final object path; its name must pass :func:`safe_name` unchanged.
    :param expected_size: bytes announced by the source; a different count raises
        VerificationError and nothing is committed (the stream is cut as soon as it overflows).
    :param overwrite: see :class:`OverwritePolicy`.
    :param verify: ``verify(size, sha256_hex)`` runs after the last byte and before the commit;
        if it raises, nothing is committed and its exception propagates unchanged.
    :param block_size: object-store upload part size (default: :func:`upload_block_size`).
    :param progress: told the byte count so far after each chunk.
    """
    policy = OverwritePolicy.coerce(overwrite)
    name = target.name
    if safe_name(name) != name:
        raise UnsafeNameError(
            f"Target name {name!r} is not normalised: pass safe_name(name) as the object name."
        )
    fs = target.fs
    kind = storage_kind(fs)
    meter = Meter(expected_size, object_uri(target), progress)
    if kind == "local":
        return _write_local(chunks, target, meter, policy=policy, verify=verify)
    if kind == "object_store":
        return _write_object_store(
            chunks,
            target,
            fs,
            meter,
            policy=policy,
            verify=verify,
            block_size=block_size or upload_block_size(expected_size),
        )
    return _write_generic(chunks, target, fs, meter, policy=policy, verify=verify)


# -- local filesystem -------------------------------------------------------------------------


def _local_identical(path: str, size: int, sha256: str) -> bool:
    try:
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return False
        with open(path, "rb") as f:
            return hash_readable(f.read) == (size, sha256)
    except FileNotFoundError:
        return False


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable; not supported everywhere, and only a durability bonus.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_LINK_UNSUPPORTED = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _commit_local(tmp: str, final: str, policy: OverwritePolicy, target: ObjectStoragePath) -> None:
    if policy is not OverwritePolicy.FAIL:
        os.replace(tmp, final)
        return
    # No-clobber commit: link() fails atomically if the final name exists, unlike rename().
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise destination_exists_error(target) from None
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
        if os.path.lexists(final):  # filesystem without hard links: check, then rename
            raise destination_exists_error(target) from None
        os.replace(tmp, final)
        return
    _remove_quietly(tmp)  # the object is committed under its final name already


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Could not remove temp file %s: %s (clean_stale_partials removes it later)", path, exc)


def _write_local(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    meter: Meter,
    *,
    policy: OverwritePolicy,
    verify: Verify | None,
) -> LandedObject:
    final = target.path
    folder = os.path.dirname(final)
    uri = object_uri(target)
    if os.path.isdir(final):
        raise StorageError(f"{uri} is a folder, so no object can land there: remove it or rename the file.")
    if policy is OverwritePolicy.FAIL and os.path.lexists(final):
        raise destination_exists_error(target)
    os.makedirs(folder, exist_ok=True)
    check_free_space(folder, meter.expected_size, uri, "Free some space or choose another destination.")

    tmp = os.path.join(folder, new_partial_name(target.name))
    committed = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            pump(chunks, write_all(fd), meter)
            os.fsync(fd)
        finally:
            os.close(fd)
        size, sha256 = meter.finish()
        if verify is not None:
            verify(size, sha256)
        if policy is OverwritePolicy.SKIP_IDENTICAL and _local_identical(final, size, sha256):
            log.info("%s already holds identical content (sha256 %s); kept it", uri, sha256)
            return LandedObject(uri=uri, name=target.name, size=size, sha256=sha256, skipped=True)
        _commit_local(tmp, final, policy, target)
        committed = True
    finally:
        if not committed:
            _remove_quietly(tmp)
    _fsync_dir(folder)
    _record_lineage(target)
    return LandedObject(uri=uri, name=target.name, size=size, sha256=sha256)


# -- object stores ----------------------------------------------------------------------------


def _cannot_read(
    target: ObjectStoragePath, policy: OverwritePolicy, exc: PermissionError
) -> DestinationError:
    return DestinationError(
        f"{describe(target)}: overwrite={policy.value!r} must read the destination, and the "
        f"connection may not ({exc}). Nothing was written. Grant it read access (S3: s3:GetObject "
        "and s3:ListBucket) or use overwrite='replace'."
    )


def _remote_identical(target: ObjectStoragePath, size: int, sha256: str) -> bool:
    fs, path = target.fs, target.path
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
        if info.get("type") != "file" or int(info.get("size") or 0) != size:
            return False
        with fs.open(path, "rb", block_size=CHUNK_SIZE) as f:
            return hash_readable(f.read) == (size, sha256)
    except FileNotFoundError:
        return False
    except PermissionError as exc:
        raise _cannot_read(target, OverwritePolicy.SKIP_IDENTICAL, exc) from exc


def object_exists(target: ObjectStoragePath) -> bool:
    """Whether ``target`` exists now (bypassing fsspec's listing cache), for overwrite='fail'."""
    fs, path = target.fs, target.path
    fs.invalidate_cache(path)  # another writer may have created it since we last looked
    try:
        return bool(fs.exists(path))
    except PermissionError as exc:
        raise _cannot_read(target, OverwritePolicy.FAIL, exc) from exc


def _abort_upload(f: Any, uri: str) -> None:
    """Throw away an unfinished upload without ever completing it."""
    try:
        f.discard()  # s3fs: AbortMultipartUpload; gcsfs: cancel the resumable upload
    except Exception as exc:
        log.warning(
            "Could not abort the unfinished upload to %s (%s). Nothing was committed and nothing "
            "is visible, but the store keeps the uploaded parts for now: on S3 until "
            "clean_stale_partials() or a bucket lifecycle rule (AbortIncompleteMultipartUpload) "
            "removes them; GCS and Azure discard them after a week.",
            uri,
            # Its text, not the exception: a record that keeps the exception keeps its traceback,
            # and with it this file object, alive for as long as a handler holds the record.
            str(exc),
        )
    finally:
        # Never call close(): for fsspec buffered files close() *completes* the upload. Marking
        # the file closed also stops __del__ from closing (and so committing) it later.
        with suppress(AttributeError):
            f.closed = True


def _write_object_store(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    fs: AbstractFileSystem,
    meter: Meter,
    *,
    policy: OverwritePolicy,
    verify: Verify | None,
    block_size: int,
) -> LandedObject:
    path = target.path
    uri = object_uri(target)
    if policy is OverwritePolicy.FAIL and object_exists(target):
        raise destination_exists_error(target)

    f = fs.open(path, "wb", block_size=block_size)
    committed = False
    try:
        pump(chunks, f.write, meter)
        size, sha256 = meter.finish()
        if verify is not None:
            verify(size, sha256)
        if policy is OverwritePolicy.FAIL and object_exists(target):
            # Checked again just before the commit to keep the race window small. (S3's
            # If-None-Match would close it, but S3-compatible stores do not all honour it.)
            raise destination_exists_error(target)
        if policy is OverwritePolicy.SKIP_IDENTICAL and _remote_identical(target, size, sha256):
            log.info("%s already holds identical content (sha256 %s); kept it", uri, sha256)
            return LandedObject(uri=uri, name=target.name, size=size, sha256=sha256, skipped=True)
        f.close()  # completes the upload: the object appears now, whole
        committed = True
    finally:
        if not committed:
            _abort_upload(f, uri)

    fs.invalidate_cache(path)
    try:
        stored = int(fs.info(path).get("size") or 0)
    except PermissionError:
        # Write-only credentials: the completed upload is the store's own word on the size.
        log.debug("Cannot read back %s (no read permission); not checking its stored size", uri)
        stored = size
    if stored != size:
        with suppress(FileNotFoundError):
            fs.rm_file(path)
        raise VerificationError(
            f"{describe(target)}: the store reports {stored} bytes after the upload, but {size} were "
            "sent; the object was removed. Retry the task; if it persists, check the store."
        )
    _record_lineage(target)
    return LandedObject(uri=uri, name=target.name, size=size, sha256=sha256)


# -- other fsspec filesystems -----------------------------------------------------------------


def _write_generic(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    fs: AbstractFileSystem,
    meter: Meter,
    *,
    policy: OverwritePolicy,
    verify: Verify | None,
) -> LandedObject:
    path = target.path
    uri = object_uri(target)
    if policy is OverwritePolicy.FAIL and object_exists(target):
        raise destination_exists_error(target)
    tmp = f"{target.parent.path.rstrip('/')}/{new_partial_name(target.name)}"
    committed = False
    try:
        with fs.open(tmp, "wb") as f:  # a partial temp may be closed: it is removed below
            pump(chunks, f.write, meter)
        size, sha256 = meter.finish()
        if verify is not None:
            verify(size, sha256)
        if policy is OverwritePolicy.SKIP_IDENTICAL and _remote_identical(target, size, sha256):
            return LandedObject(uri=uri, name=target.name, size=size, sha256=sha256, skipped=True)
        if policy is OverwritePolicy.FAIL and object_exists(target):
            raise destination_exists_error(target)
        fs.mv(tmp, path)
        committed = True
    finally:
        if not committed:
            try:
                fs.rm_file(tmp)
            except FileNotFoundError:
                pass
            except Exception as exc:
                log.warning("Could not remove temp object %s: %s", tmp, exc)
    _record_lineage(target)
    return LandedObject(uri=uri, name=target.name, size=size, sha256=sha256)
