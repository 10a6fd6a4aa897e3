"""Test data: deterministic byte streams and hand-built (and hand-broken) ZIP archives."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

MiB = 1 << 20


def _base_block(seed: int) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(MiB)


def data_chunks(total: int, chunk_size: int = 64 * 1024, seed: int = 1) -> Iterator[bytes]:
    """``total`` deterministic, incompressible bytes in ``chunk_size`` pieces.

    Each MiB differs (a counter is stamped in front), so a misplaced or repeated block changes
    the SHA-256.
    """
    base = _base_block(seed)
    sent = 0
    block_index = 0
    while sent < total:
        block = block_index.to_bytes(8, "little") + base[8:]
        block_index += 1
        block = block[: total - sent]
        for start in range(0, len(block), chunk_size):
            yield block[start : start + chunk_size]
        sent += len(block)


def data_bytes(total: int, seed: int = 1) -> bytes:
    return b"".join(data_chunks(total, chunk_size=MiB, seed=seed))


def sha256_of_chunks(total: int, seed: int = 1) -> str:
    digest = hashlib.sha256()
    for chunk in data_chunks(total, chunk_size=MiB, seed=seed):
        digest.update(chunk)
    return digest.hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TaskKilled(BaseException):
    """Stands for Airflow's task timeout and SIGTERM exceptions: BaseExceptions, not Exceptions."""


def failing_after(chunks: Iterator[bytes], limit: int, error: BaseException | None = None) -> Iterator[bytes]:
    """Pass ``chunks`` through, then raise once ``limit`` bytes have gone by (a dropped download,
    or with ``error`` anything else, such as the task being killed)."""
    sent = 0
    for chunk in chunks:
        yield chunk
        sent += len(chunk)
        if sent >= limit:
            raise error or ConnectionResetError("simulated: connection reset mid-download")


def build_zip(
    path: Path,
    members: list[tuple[str | zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def zip_with_zeros(path: Path, name: str, size: int, first: tuple[str, bytes] | None = None) -> Path:
    """A ZIP holding ``size`` zero bytes (deflates ~1000x), written without holding them in memory."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if first is not None:
            zf.writestr(first[0], first[1])
        zero = bytes(MiB)
        with zf.open(name, "w", force_zip64=size > (1 << 31)) as f:
            left = size
            while left > 0:
                f.write(zero[: min(MiB, left)])
                left -= MiB
    return path


# -- byte-level surgery on ZIPs ----------------------------------------------------------------

_CD_MAGIC = b"PK\x01\x02"
_LOCAL_MAGIC = b"PK\x03\x04"
_EOCD_MAGIC = b"PK\x05\x06"


def _central_entries(data: bytes) -> list[int]:
    eocd = data.rindex(_EOCD_MAGIC)
    (cd_size, cd_offset) = struct.unpack_from("<LL", data, eocd + 12)
    offsets = []
    pos = cd_offset
    while pos < cd_offset + cd_size:
        assert data[pos : pos + 4] == _CD_MAGIC
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        offsets.append(pos)
        pos += 46 + name_len + extra_len + comment_len
    return offsets


def _cd_name(data: bytes, pos: int) -> str:
    (name_len,) = struct.unpack_from("<H", data, pos + 28)
    return data[pos + 46 : pos + 46 + name_len].decode("utf-8")


def patch_member(path: Path, name: str, *, flag_bits_or: int = 0, file_size: int | None = None) -> None:
    """Rewrite header fields of member ``name`` in both its local and its central header."""
    data = bytearray(path.read_bytes())
    for pos in _central_entries(bytes(data)):
        if _cd_name(bytes(data), pos) != name:
            continue
        (local,) = struct.unpack_from("<L", data, pos + 42)
        assert data[local : local + 4] == _LOCAL_MAGIC
        if flag_bits_or:
            for at in (pos + 8, local + 6):
                (flags,) = struct.unpack_from("<H", data, at)
                struct.pack_into("<H", data, at, flags | flag_bits_or)
        if file_size is not None:
            struct.pack_into("<L", data, pos + 24, file_size)
            struct.pack_into("<L", data, local + 22, file_size)
        path.write_bytes(bytes(data))
        return
    raise KeyError(name)


def duplicate_entry(path: Path, name: str, alias: str) -> None:
    """Add a second central-directory entry ``alias`` pointing at ``name``'s data (overlap bomb)."""
    assert len(alias.encode()) == len(name.encode())
    data = bytes(path.read_bytes())
    eocd = data.rindex(_EOCD_MAGIC)
    entries = _central_entries(data)
    for pos in entries:
        if _cd_name(data, pos) == name:
            name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
            entry = bytearray(data[pos : pos + 46 + name_len + extra_len + comment_len])
            entry[46 : 46 + name_len] = alias.encode()
            break
    else:
        raise KeyError(name)
    disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len = struct.unpack_from(
        "<HHHHLLH", data, eocd + 4
    )
    out = io.BytesIO()
    out.write(data[: cd_offset + cd_size])
    out.write(entry)
    out.write(_EOCD_MAGIC)
    out.write(
        struct.pack("<HHHHLLH", disk, cd_disk, n_disk + 1, n_total + 1, cd_size + len(entry), cd_offset, 0)
    )
    path.write_bytes(out.getvalue())


def corrupt_member_data(path: Path, name: str) -> None:
    """Flip one byte in the middle of a stored member's data (its CRC no longer matches)."""
    data = bytearray(path.read_bytes())
    for pos in _central_entries(bytes(data)):
        if _cd_name(bytes(data), pos) != name:
            continue
        (compressed,) = struct.unpack_from("<L", data, pos + 20)
        (local,) = struct.unpack_from("<L", data, pos + 42)
        name_len, extra_len = struct.unpack_from("<HH", data, local + 26)
        middle = local + 30 + name_len + extra_len + compressed // 2
        data[middle] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    raise KeyError(name)
