"""Safe, streaming, all-or-nothing extraction of a (spooled, local) ZIP into an object folder.

The central directory is validated as a whole before anything is written: names, duplicates,
member types, encryption, compression methods, declared sizes and ratios, and the archive layout.
Every member is then staged and verified before the first is committed (see :func:`extract_zip`).
Member data is then read from the archive and inflated by us, not by ``zipfile.ZipFile.open``,
so that every limit is enforced on the bytes actually produced (a header that under-declares a
member's size is caught, not silently truncated) and memory stays bounded (1 MiB in, 1 MiB out).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from airflow.sdk import ObjectStoragePath

from airflow_provider_canvas_reports.storage.destination import describe
from airflow_provider_canvas_reports.storage.errors import (
    InvalidZipError,
    StorageError,
    UnsafeNameError,
    ZipBombError,
)
from airflow_provider_canvas_reports.storage.model import LandedObject, OverwritePolicy, ZipLimits
from airflow_provider_canvas_reports.storage.names import safe_name
from airflow_provider_canvas_reports.storage.streaming import CHUNK_SIZE
from airflow_provider_canvas_reports.storage.writer import (
    StagedObject,
    destination_exists_error,
    object_exists,
    stage_stream,
)

log = logging.getLogger(__name__)

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # APPNOTE 4.3.7, as in zipfile.structFileHeader
_LOCAL_MAGIC = b"PK\x03\x04"
_FLAG_ENCRYPTED = 0x0001
_FLAG_STRONG_ENCRYPTION = 0x0040
_FLAG_UTF8_NAME = 0x0800
# Only methods we can inflate with bounded memory: zlib honours max_length. (bz2/lzma in
# zipfile have no output bound per call, and Canvas only produces deflate.)
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    name: str  # safe object name (member_object_name)


_REFUSED = "The ZIP was refused and nothing was written; it is not a well-formed report export: inspect it."


def _unsafe(raw: str, problem: str) -> UnsafeNameError:
    return UnsafeNameError(f"ZIP member {raw!r} is unsafe: {problem}. {_REFUSED}")


def _check_member_path(raw: str) -> list[str]:
    """Refuse paths that could escape the folder; return the meaningful components."""
    if "\x00" in raw:
        raise _unsafe(raw, "its name contains a NUL character")
    if "\\" in raw:
        raise _unsafe(raw, "its name contains a backslash")
    if raw.startswith("/"):
        raise _unsafe(raw, "it is an absolute path")
    if _DRIVE_LETTER.match(raw):
        raise _unsafe(raw, "it starts with a drive letter")
    components = raw.split("/")
    if ".." in components:
        raise _unsafe(raw, "path traversal ('..')")
    return [c for c in components if c not in ("", ".")]


#: What a '/' inside a member's name becomes: objects land side by side, never in folders.
PATH_JOINER = "_"


def member_object_name(raw: str) -> str:
    """The object name a ZIP member file lands as: its whole name, each '/' made PATH_JOINER.

    A '/' is part of a name in Canvas's ZIPs: `mgp_grade_export_csv` names each member after a
    term (``term.name + ".csv"``), and "Semester 1 2025/26" is a common term name. Keeping only
    the last part would land that term as "26.csv", and two such terms as one name.
    """
    parts = _check_member_path(raw)
    if not parts:
        raise _unsafe(raw, "its name is empty")
    try:
        return safe_name(PATH_JOINER.join(parts))
    except UnsafeNameError as exc:
        raise _unsafe(raw, f"its file name is not usable ({exc})") from None


def landing_names(zip_path: str | os.PathLike[str]) -> list[str]:
    """The object names the archive's file members land as, for cleaning up before extraction.

    Members extract_zip would refuse are left out, and so is everything of an unreadable archive:
    extract_zip reports those properly.
    """
    names = []
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for raw in zf.namelist():
                if raw.endswith("/"):
                    continue
                try:
                    names.append(member_object_name(raw))
                except UnsafeNameError:
                    continue
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        return []
    return names


def _validate(zf: zipfile.ZipFile, zip_size: int, limits: ZipLimits, label: str) -> list[_Member]:
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ZipBombError(
            f"{label} has {len(infos)} entries, more than max_members={limits.max_members}. {_REFUSED} "
            "If it is genuine, raise ZipLimits.max_members."
        )
    members: list[_Member] = []
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        raw = info.orig_filename
        file_type = stat.S_IFMT(info.external_attr >> 16)
        if file_type == stat.S_IFLNK:
            raise InvalidZipError(f"ZIP member {raw!r} is a symbolic link. {_REFUSED}")
        if info.is_dir() or file_type == stat.S_IFDIR:
            _check_member_path(raw)  # skipped, but a traversal attempt still condemns the ZIP
            continue
        if file_type not in (0, stat.S_IFREG):
            raise InvalidZipError(f"ZIP member {raw!r} is a special file (mode {file_type:o}). {_REFUSED}")
        if info.flag_bits & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION):
            raise InvalidZipError(
                f"ZIP member {raw!r} is encrypted; encrypted ZIPs are not supported. Nothing was "
                "written. Download the report without a password."
            )
        if info.compress_type not in _METHODS:
            raise InvalidZipError(
                f"ZIP member {raw!r} uses compression method {info.compress_type}; only stored and "
                f"deflate are supported. {_REFUSED}"
            )
        name = member_object_name(raw)
        # Case-insensitive: on macOS/Windows folders 'Users.csv' and 'users.csv' are one file.
        previous = seen.get(name.casefold())
        if previous is not None:
            raise UnsafeNameError(
                f"ZIP members {previous!r} and {raw!r} would both land as {name!r} ('/' becomes "
                f"{PATH_JOINER!r}, names compared case-insensitively). {_REFUSED}"
            )
        seen[name.casefold()] = raw
        if info.file_size > limits.max_member_bytes:
            raise ZipBombError(
                f"ZIP member {raw!r} declares {info.file_size} bytes, over max_member_bytes="
                f"{limits.max_member_bytes}. {_REFUSED} If it is genuine, raise ZipLimits.max_member_bytes."
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise InvalidZipError(f"ZIP member {raw!r} is stored but its two sizes differ. {_REFUSED}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_check_min_bytes and ratio > limits.max_ratio:
            raise ZipBombError(
                f"ZIP member {raw!r} expands {ratio:.0f}x ({info.compress_size} -> {info.file_size} "
                f"bytes), over max_ratio={limits.max_ratio:g}: a ZIP bomb. {_REFUSED} "
                "If it is genuine, raise ZipLimits.max_ratio."
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ZipBombError(
                f"{label} declares more than max_total_bytes={limits.max_total_bytes} uncompressed. "
                f"{_REFUSED} If it is genuine, raise ZipLimits.max_total_bytes."
            )
        members.append(_Member(info=info, name=name))
    _check_layout(infos, getattr(zf, "start_dir", zip_size), label)
    return members


def _check_layout(infos: list[zipfile.ZipInfo], data_end: int, label: str) -> None:
    """Refuse entries whose data overlap: the "better ZIP bomb" reuses one compressed stream
    for many entries, which no size check on a single entry can see."""
    spans = sorted(infos, key=lambda i: i.header_offset)
    for index, info in enumerate(spans):
        start = info.header_offset
        end = start + _LOCAL_HEADER.size + info.compress_size  # a lower bound of the entry's end
        limit = spans[index + 1].header_offset if index + 1 < len(spans) else data_end
        if start < 0 or end > limit:
            raise ZipBombError(
                f"{label}: entry {info.orig_filename!r} overlaps the next entry or the central "
                f"directory (a known ZIP bomb construction), or the archive is corrupt. {_REFUSED}"
            )


class _Budget:
    """Bytes actually produced across the whole extraction."""

    def __init__(self, limits: ZipLimits) -> None:
        self.limits = limits
        self.total = 0


def _member_chunks(fp: BinaryIO, info: zipfile.ZipInfo, budget: _Budget) -> Iterator[bytes]:
    """Yield the member's uncompressed bytes, checking every limit on the actual output."""
    raw_name = info.orig_filename
    limits = budget.limits

    def corrupt(problem: str) -> InvalidZipError:
        return InvalidZipError(f"ZIP member {raw_name!r} is corrupt: {problem}. Download the report again.")

    fp.seek(info.header_offset)
    header = fp.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
        raise corrupt("bad local header")
    fields = _LOCAL_HEADER.unpack(header)
    flags, name_len, extra_len = fields[3], fields[10], fields[11]
    local_name = fp.read(name_len).decode("utf-8" if flags & _FLAG_UTF8_NAME else "cp437", errors="replace")
    if local_name != raw_name:
        # Same check as zipfile: a mismatch means the directory points into someone else's data.
        raise corrupt(f"the local header names {local_name!r}")
    fp.seek(extra_len, os.SEEK_CUR)

    declared = info.file_size
    compressed_size = max(info.compress_size, 1)  # we never read more than this (see below)
    produced = 0
    crc = 0
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None

    def check(data: bytes) -> bytes:
        nonlocal produced, crc
        produced += len(data)
        budget.total += len(data)
        if produced > declared:
            raise ZipBombError(
                f"ZIP member {raw_name!r} decompresses to more than the {declared} bytes its header "
                "declares: a ZIP bomb or a forged header, not a genuine report export."
            )
        if produced > limits.max_member_bytes or budget.total > limits.max_total_bytes:
            raise ZipBombError(f"ZIP member {raw_name!r} exceeds the ZIP size limits while decompressing.")
        if produced > limits.ratio_check_min_bytes and produced > limits.max_ratio * compressed_size:
            raise ZipBombError(
                f"ZIP member {raw_name!r} expands more than max_ratio={limits.max_ratio:g}x while "
                "decompressing: a ZIP bomb."
            )
        crc = zlib.crc32(data, crc)
        return data

    remaining = info.compress_size
    while remaining > 0:
        compressed = fp.read(min(CHUNK_SIZE, remaining))
        if not compressed:
            raise corrupt("the archive ends inside its data")
        remaining -= len(compressed)
        if inflater is None:
            yield check(compressed)
            continue
        data = inflater.decompress(compressed, CHUNK_SIZE)
        if data:
            yield check(data)
        while inflater.unconsumed_tail:  # output was capped at CHUNK_SIZE: drain the rest
            data = inflater.decompress(inflater.unconsumed_tail, CHUNK_SIZE)
            if data:
                yield check(data)
        if inflater.eof:
            break
    if inflater is not None:
        rest = inflater.flush()  # small: the input is consumed, only zlib's pending output is left
        if rest:
            yield check(rest)
        if not inflater.eof:
            raise corrupt("its compressed data ends early")
    if produced != declared:
        raise corrupt(f"it holds {produced} bytes but declares {declared}")
    if crc != info.CRC:
        raise corrupt("CRC-32 mismatch")


def _discard_all(staged: list[StagedObject]) -> list[str]:
    """Throw away every member still staged; return their names."""
    discarded = [item.name for item in staged if item.state == "staged"]
    for item in staged:
        item.discard()
    return discarded


def _nothing_written(error: str, discarded: list[str]) -> str:
    """``error`` completed by what happened to the folder, for a failure before any commit."""
    said = "nothing was written" in error.lower()
    if not discarded:
        return error if said else f"{error} Nothing was written."
    note = (
        f"The {len(discarded)} member(s) already extracted and verified ({', '.join(discarded)}) "
        "were discarded before any was committed; every object already in the folder is as it was."
    )
    return f"{error} {note}" if said else f"{error} Nothing was written: {note[0].lower()}{note[1:]}"


def _commit_all(staged: list[StagedObject], label: str, dest_dir: ObjectStoragePath) -> list[LandedObject]:
    """Commit every staged member, in order (each is recorded as it is committed).

    A commit that fails (rare: a rename or an upload completion refused) stops the rest: those
    are discarded, and the error names what was committed and what was not. Committed members
    stay: each is complete and verified.
    """
    try:
        return [item.commit() for item in staged]
    except BaseException as exc:
        failure = exc
        _discard_all(staged)
    if not isinstance(failure, Exception):
        raise failure  # killed or timed out: the committed members stay, the rest are discarded
    # The member's own error may say "Nothing was written": true of that member only.
    reason = str(failure).replace(" Nothing was written.", "").rstrip(".")
    committed = [item.name for item in staged if item.state == "committed"]
    kept = [item.name for item in staged if item.state == "skipped"]
    # In order: the first is the one whose commit failed (it discarded itself), then the rest.
    not_committed = [item.name for item in staged if item.state == "discarded"]
    note = (
        f"Committing the verified members of {label} to {describe(dest_dir)} failed at "
        f"{not_committed[0]!r}: {reason}. Committed (complete and verified, left in place): "
        f"{', '.join(committed) or 'none'}. NOT committed (their names keep what they held "
        f"before): {', '.join(not_committed)}."
    )
    if kept:
        note += f" Kept as identical: {', '.join(kept)}."
    note += " Retry the task to land the whole set."
    error_type = type(failure) if isinstance(failure, StorageError) else StorageError
    raise error_type(note) from failure


def extract_zip(
    zip_path: str | os.PathLike[str],
    dest_dir: ObjectStoragePath,
    *,
    limits: ZipLimits | None = None,
    overwrite: OverwritePolicy | str = OverwritePolicy.REPLACE,
    name: str | None = None,
) -> list[LandedObject]:
    """Land each file member of the local ZIP ``zip_path`` as ``<dest_dir>/<member_object_name>``.

    ``name`` is what logs and errors call the archive (the report's file name), else its path's.

    All-or-nothing, in two phases. The whole archive is validated before the first write. Then
    every member is *staged*: streamed to the store and verified (size, CRC-32, SHA-256) without
    appearing under its final name (a hidden temp file on local folders; on S3 and GCS an upload
    whose parts are all sent but which is not completed; on Azure uncommitted blocks). Only when
    every member is staged and verified are they *committed* (renamed into place, uploads
    completed), one after another, and then recorded. If anything fails before that (corrupt
    data, forged sizes, a store error, disk full, the task killed or timed out), every staged
    member is discarded and the folder is left exactly as it was: objects from an earlier run
    under the same names are untouched, and no new name appears.

    Directory entries are skipped; symlinks, encrypted members, unsafe or colliding names and
    anything over ``limits`` are refused. ``overwrite='fail'`` refuses the whole archive, writing
    nothing, if any member's name exists (checked before staging and again before the first
    commit). Objects kept by ``overwrite='skip_identical'`` are reported (``skipped=True``).

    Stores have no multi-object transaction, so the commit phase is not atomic as a whole: if a
    commit itself fails midway (rare: a rename or an upload completion refused), the members
    committed so far stay (each is complete and verified), the rest are discarded, and the error
    names both. No name ever holds a partial or unverified object.
    """
    limits = limits or ZipLimits()
    policy = OverwritePolicy.coerce(overwrite)
    path = os.fspath(zip_path)
    label = f"ZIP {name or os.path.basename(path)!r}"
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InvalidZipError(
            f"{label} is not a readable ZIP archive ({exc}). Nothing was written. Download the report "
            "again, or set extract_zip=False to land the file as it is."
        ) from exc

    with zf, open(path, "rb") as fp:
        members = _validate(zf, os.path.getsize(path), limits, label)
        targets = [dest_dir / member.name for member in members]
        if policy is OverwritePolicy.FAIL:
            for target in targets:
                if object_exists(target):
                    raise destination_exists_error(target)
        budget = _Budget(limits)
        staged: list[StagedObject] = []
        current = ""
        try:
            for number, (member, target) in enumerate(zip(members, targets, strict=True), start=1):
                current = member.info.orig_filename
                # A large member can take minutes to reach a store: say which one is under way.
                log.info(
                    "Extracting member %d of %d of %s: %r (%s bytes)",
                    number,
                    len(members),
                    label,
                    current,
                    f"{member.info.file_size:,}",
                )
                staged.append(
                    stage_stream(
                        _member_chunks(fp, member.info, budget),
                        target,
                        expected_size=member.info.file_size,
                        overwrite=policy,
                    )
                )
            if policy is OverwritePolicy.FAIL:
                # Again before the first commit: another writer may have created one meanwhile.
                for item in staged:
                    current = item.name
                    if object_exists(item.target):
                        raise destination_exists_error(item.target)
        except Exception as exc:
            discarded = _discard_all(staged)
            if isinstance(exc, StorageError):
                raise type(exc)(_nothing_written(str(exc), discarded)) from exc
            raise StorageError(
                _nothing_written(
                    f"Extracting ZIP member {current!r} to {describe(dest_dir)} failed: {exc}.", discarded
                )
            ) from exc
        except BaseException:
            _discard_all(staged)  # killed or timed out: leave no staged member behind
            raise
        landed = _commit_all(staged, label, dest_dir)
    log.info("Extracted %d member(s) of %s to %s", len(landed), label, describe(dest_dir))
    return landed
