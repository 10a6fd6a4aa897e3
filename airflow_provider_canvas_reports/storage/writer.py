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

A write is two steps, *stage* (write and verify; nothing new under the final name yet) and
*commit* (the object appears under its final name). :func:`write_stream` does both at once;
:func:`stage_stream` stops after the first and returns a :class:`StagedObject`, so that several
objects can all be verified before the first is committed (``extract_zip``). A staged object
holds no data in memory: on local and other filesystems it is the hidden temp file; on S3 (and
GCS) an upload whose parts are all sent but which is not completed; on Azure blocks that are
staged but not committed. Until it is committed, an older object under the final name is
untouched, and :meth:`StagedObject.discard` throws the staged one away.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from collections.abc import Callable, Iterable
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
    chunks: Iterable[bytes] | Readable, target: ObjectStoragePath, **options: Any
) -> LandedObject:
    """Stream ``chunks`` to the object ``target``; return it once it is committed and verified.

    :func:`stage_stream` and :meth:`StagedObject.commit` at once, with the same ``options``. A
    small object on S3 then goes up as one PUT rather than a multipart upload.
    """
    return stage_stream(chunks, target, defer=False, **options).commit()


class StagedObject:
    """An object written and verified, waiting to be committed under its final name."""

    __slots__ = ("_commit", "_discard", "landed", "state", "target")

    def __init__(
        self,
        target: ObjectStoragePath,
        landed: LandedObject,
        commit: Callable[[], None] | None = None,
        discard: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        #: What :meth:`commit` returns: its size and SHA-256 are those of the staged bytes.
        self.landed = landed
        self._commit = commit
        self._discard = discard
        #: ``staged``, then ``committed`` or ``discarded``; an identical object kept by
        #: ``overwrite='skip_identical'`` is ``skipped`` from the start.
        self.state = "skipped" if landed.skipped else "staged"

    @property
    def name(self) -> str:
        return self.target.name

    def commit(self) -> LandedObject:
        """Make the object appear, whole, under its final name, record it (hook lineage); return it.

        If the commit fails, the staged object is discarded and the error propagates: the final
        name then holds what it held before (or, in the rare case that the store reports a wrong
        size after completing the upload, nothing: see the error).
        """
        if self.state == "skipped":
            return self.landed
        if self.state != "staged" or self._commit is None:
            raise RuntimeError(f"{object_uri(self.target)} is {self.state}, it cannot be committed")
        try:
            self._commit()
        except BaseException:
            self.discard()
            raise
        self.state = "committed"
        _record_lineage(self.target)
        return self.landed

    def discard(self) -> None:
        """Throw the staged object away (never raises; an old object under the name is untouched)."""
        if self.state != "staged":
            return
        self.state = "discarded"
        if self._discard is not None:
            try:
                self._discard()
            except Exception as exc:  # the discards below log their own failures; this is a last resort
                log.warning("Could not discard the staged object for %s: %s", object_uri(self.target), exc)


def stage_stream(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    *,
    expected_size: int | None,
    overwrite: OverwritePolicy | str = OverwritePolicy.REPLACE,
    verify: Verify | None = None,
    block_size: int | None = None,
    progress: Progress | None = None,
    defer: bool = True,
) -> StagedObject:
    """Write and verify ``chunks`` for the object ``target``, but do not commit them yet.

    Returns a :class:`StagedObject`: nothing new is visible under ``target``'s name (an older
    object there is untouched) until its :meth:`~StagedObject.commit`, and
    :meth:`~StagedObject.discard` throws it away. ``overwrite='skip_identical'`` is decided here
    (a staged object that is ``skipped`` commits nothing); ``overwrite='fail'`` is checked here
    and again by the commit.

    Call ``commit()`` or ``discard()`` on every staged object, also when the task is killed
    (``BaseException``): until then it holds a hidden temp file (local) or an unfinished upload.

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
    :param defer: on S3 and GCS, send every part now, so that a staged object holds no data in
        memory (only an upload id and its part list) and only the completion waits for commit();
        ``False`` (write_stream) keeps the last part buffered, at most ``block_size``, until the
        commit, so that a small object is one PUT.
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
        return _stage_local(chunks, target, meter, policy=policy, verify=verify)
    if kind == "object_store":
        return _stage_object_store(
            chunks,
            target,
            fs,
            meter,
            policy=policy,
            verify=verify,
            block_size=block_size or upload_block_size(expected_size),
            defer=defer,
        )
    return _stage_generic(chunks, target, fs, meter, policy=policy, verify=verify)


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


def _remove_quietly(path: str, remove: Callable[[str], Any] = os.unlink) -> None:
    """Remove a temp file (``remove``: how, on its filesystem); a failure is only logged."""
    try:
        remove(path)
    except FileNotFoundError:
        pass
    except Exception as exc:
        log.warning("Could not remove temp file %s: %s (clean_stale_partials removes it later)", path, exc)


def _stage_local(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    meter: Meter,
    *,
    policy: OverwritePolicy,
    verify: Verify | None,
) -> StagedObject:
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
    staged = False
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
            return StagedObject(
                target, LandedObject(uri=uri, name=target.name, size=size, sha256=sha256, skipped=True)
            )
        staged = True
    finally:
        if not staged:
            _remove_quietly(tmp)

    def commit() -> None:
        _commit_local(tmp, final, policy, target)
        _fsync_dir(folder)

    return StagedObject(
        target,
        LandedObject(uri=uri, name=target.name, size=size, sha256=sha256),
        commit=commit,
        discard=lambda: _remove_quietly(tmp),
    )


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


#: Stores whose writable files honour fsspec's ``autocommit=False``: ``close()`` sends the last
#: part and leaves the upload unfinished, ``commit()`` completes it, ``discard()`` drops it.
_AUTOCOMMIT_PROTOCOLS = frozenset({"s3", "s3a", "s3n", "gs", "gcs"})


def _protocols(fs: AbstractFileSystem) -> set[str]:
    return set(fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


def _send_without_completing(f: Any, fs: AbstractFileSystem) -> None:
    """Send every buffered byte of the upload ``f`` to the store, without completing it."""
    if _AUTOCOMMIT_PROTOCOLS & _protocols(fs):
        f.close()  # opened with autocommit=False: the last part goes up, the upload stays open
        return
    # adlfs ignores autocommit: its final flush commits the block list. So stage what is still
    # buffered as (uncommitted) blocks the way fsspec's flush() would, but not as the final one;
    # the commit's close() then only commits the block list. (AbstractBufferedFile internals:
    # ``offset`` is None until the upload is initiated; a False return keeps the buffer.)
    if f.offset is None:
        f.offset = 0
        f._initiate_upload()
    if f._upload_chunk(final=False) is not False:
        f.offset += f.buffer.seek(0, 2)
        f.buffer = io.BytesIO()


def _complete(f: Any, fs: AbstractFileSystem, deferred: bool) -> None:
    if deferred and _AUTOCOMMIT_PROTOCOLS & _protocols(fs):
        f.commit()  # S3: CompleteMultipartUpload (or a 0-byte PUT); GCS: finalise
    else:
        f.close()  # completes the upload: the object appears now, whole


def _stage_object_store(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    fs: AbstractFileSystem,
    meter: Meter,
    *,
    policy: OverwritePolicy,
    verify: Verify | None,
    block_size: int,
    defer: bool,
) -> StagedObject:
    path = target.path
    uri = object_uri(target)
    if policy is OverwritePolicy.FAIL and object_exists(target):
        raise destination_exists_error(target)

    # defer: every part is sent now, only the completion waits for commit() (see stage_stream).
    # Otherwise the last part stays buffered (at most block_size) until commit() closes the file:
    # a small object is then one PUT instead of a multipart upload.
    f = (
        fs.open(path, "wb", block_size=block_size, autocommit=False)
        if defer
        else fs.open(path, "wb", block_size=block_size)
    )
    staged = False
    try:
        pump(chunks, f.write, meter)
        size, sha256 = meter.finish()
        if verify is not None:
            verify(size, sha256)
        if policy is OverwritePolicy.SKIP_IDENTICAL and _remote_identical(target, size, sha256):
            log.info("%s already holds identical content (sha256 %s); kept it", uri, sha256)
            return StagedObject(
                target, LandedObject(uri=uri, name=target.name, size=size, sha256=sha256, skipped=True)
            )
        if defer:
            _send_without_completing(f, fs)
        staged = True
    finally:
        if not staged:
            _abort_upload(f, uri)

    completed = False  # from then on there is no upload left to abort

    def commit() -> None:
        nonlocal completed
        if policy is OverwritePolicy.FAIL and object_exists(target):
            # Checked again just before the commit to keep the race window small. (S3's
            # If-None-Match would close it, but S3-compatible stores do not all honour it.)
            raise destination_exists_error(target)
        _complete(f, fs, defer)
        completed = True
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

    return StagedObject(
        target,
        LandedObject(uri=uri, name=target.name, size=size, sha256=sha256),
        commit=commit,
        discard=lambda: None if completed else _abort_upload(f, uri),
    )


# -- other fsspec filesystems -----------------------------------------------------------------


def _stage_generic(
    chunks: Iterable[bytes] | Readable,
    target: ObjectStoragePath,
    fs: AbstractFileSystem,
    meter: Meter,
    *,
    policy: OverwritePolicy,
    verify: Verify | None,
) -> StagedObject:
    path = target.path
    uri = object_uri(target)
    if policy is OverwritePolicy.FAIL and object_exists(target):
        raise destination_exists_error(target)
    tmp = f"{target.parent.path.rstrip('/')}/{new_partial_name(target.name)}"

    def remove_tmp() -> None:
        _remove_quietly(tmp, fs.rm_file)

    staged = False
    try:
        with fs.open(tmp, "wb") as f:  # a partial temp may be closed: it is removed below
            pump(chunks, f.write, meter)
        size, sha256 = meter.finish()
        if verify is not None:
            verify(size, sha256)
        if policy is OverwritePolicy.SKIP_IDENTICAL and _remote_identical(target, size, sha256):
            return StagedObject(
                target, LandedObject(uri=uri, name=target.name, size=size, sha256=sha256, skipped=True)
            )
        staged = True
    finally:
        if not staged:
            remove_tmp()

    def commit() -> None:
        if policy is OverwritePolicy.FAIL and object_exists(target):
            raise destination_exists_error(target)
        fs.mv(tmp, path)

    return StagedObject(
        target,
        LandedObject(uri=uri, name=target.name, size=size, sha256=sha256),
        commit=commit,
        discard=remove_tmp,
    )
