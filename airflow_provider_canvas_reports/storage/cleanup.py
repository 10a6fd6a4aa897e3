"""Remove what a killed write can leave behind."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from datetime import datetime, timezone

from airflow.sdk import ObjectStoragePath
from fsspec import AbstractFileSystem

from airflow_provider_canvas_reports.storage.destination import object_uri, storage_kind
from airflow_provider_canvas_reports.storage.names import is_partial_name, safe_name

log = logging.getLogger(__name__)


def clean_stale_partials(
    dest_dir: ObjectStoragePath,
    names: Iterable[str] | None = None,
    *,
    min_age: float = 0.0,
) -> list[str]:
    """Remove leftovers of writes into ``dest_dir`` that were killed (``kill -9``, OOM, node loss).

    Call it at the start of a task try, before writing: a write that fails normally cleans up
    after itself, so only a killed one leaves anything. What it removes:

    * local folders: our hidden temp files ``.<name>.partial-<token>``;
    * S3: unfinished multipart uploads of objects in this folder (invisible, but billed);
    * other filesystems: our hidden temp objects.

    GCS resumable uploads and Azure uncommitted blocks cannot be listed this way; the stores
    expire them after a week.

    :param names: only leftovers of these object names (recommended when other tasks write into
        the same folder at the same time); ``None`` means every leftover in the folder.
    :param min_age: only leftovers untouched for at least this many seconds. A live writer
        touches its temp file on every write, so e.g. ``min_age=300`` never disturbs one.
    :return: the URIs of what was removed (S3: ``s3://bucket/key#uploadId``).
    """
    wanted = None if names is None else {safe_name(n) for n in names}
    fs = dest_dir.fs
    kind = storage_kind(fs)
    if kind == "local":
        return _clean_local(dest_dir, wanted, min_age)
    if kind == "object_store":
        return _clean_multipart_uploads(dest_dir, fs, wanted, min_age)
    return _clean_generic(dest_dir, fs, wanted, min_age)


def _matches(entry: str, wanted: set[str] | None) -> bool:
    if wanted is None:
        return is_partial_name(entry)
    return any(is_partial_name(entry, name) for name in wanted)


def _clean_local(dest_dir: ObjectStoragePath, wanted: set[str] | None, min_age: float) -> list[str]:
    folder = dest_dir.path
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    now = time.time()
    for entry in entries:
        if not _matches(entry.name, wanted) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        removed.append("file://" + entry.path)
        log.info("Removed stale partial file %s", entry.path)
    return removed


def _clean_multipart_uploads(
    dest_dir: ObjectStoragePath, fs: AbstractFileSystem, wanted: set[str] | None, min_age: float
) -> list[str]:
    try:
        from s3fs import S3FileSystem
    except ImportError:
        return []
    if not isinstance(fs, S3FileSystem):
        return []
    bucket, _, key = dest_dir.path.partition("/")
    prefix = key.strip("/") + "/" if key.strip("/") else ""
    removed: list[str] = []
    now = datetime.now(timezone.utc)
    kwargs: dict[str, str] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        try:
            page = fs.call_s3("list_multipart_uploads", **kwargs)
        except PermissionError:
            # Least-privilege loaders may only write objects; their writes need no listing.
            log.info(
                "Not looking for leftovers of killed writes in s3://%s/%s: the connection may not "
                "list multipart uploads (s3:ListBucketMultipartUploads). A bucket lifecycle rule "
                "(AbortIncompleteMultipartUpload) removes any.",
                bucket,
                prefix,
            )
            return removed
        for upload in page.get("Uploads") or []:
            upload_key: str = upload["Key"]
            rest = upload_key[len(prefix) :]
            if "/" in rest or (wanted is not None and rest not in wanted):
                continue
            initiated = upload.get("Initiated")
            if min_age and isinstance(initiated, datetime) and (now - initiated).total_seconds() < min_age:
                continue
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload_key, UploadId=upload["UploadId"])
            removed.append(f"s3://{bucket}/{upload_key}#{upload['UploadId']}")
            log.info(
                "Aborted stale multipart upload %s of s3://%s/%s", upload["UploadId"], bucket, upload_key
            )
        if not page.get("IsTruncated"):
            return removed
        kwargs["KeyMarker"] = page.get("NextKeyMarker", "")
        kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker", "")


def _clean_generic(
    dest_dir: ObjectStoragePath, fs: AbstractFileSystem, wanted: set[str] | None, min_age: float
) -> list[str]:
    removed: list[str] = []
    try:
        listing = fs.ls(dest_dir.path, detail=False)
    except FileNotFoundError:
        return removed
    for path in listing:
        entry = str(path).rstrip("/").rsplit("/", 1)[-1]
        if not _matches(entry, wanted):
            continue
        if min_age:
            try:
                age = time.time() - fs.modified(path).timestamp()
            except (NotImplementedError, FileNotFoundError, AttributeError):
                age = min_age
            if age < min_age:
                continue
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            continue
        removed.append(f"{object_uri(dest_dir)}/{entry}")
    return removed
