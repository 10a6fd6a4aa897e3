"""Errors raised by the storage layer.

Every message names the problem and the fix, because these reach DAG authors through task logs.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: something prevented a verified object from landing at its destination."""


class DestinationError(StorageError):
    """The destination cannot be used: unknown scheme, missing connection, not a folder."""


class UnsafeNameError(StorageError, ValueError):
    """A file or ZIP member name could escape its folder or is not a usable object name."""


class VerificationError(StorageError):
    """The bytes received do not match what was expected (size, checksum); nothing was committed."""


class DestinationExistsError(StorageError, FileExistsError):
    """The object exists and the overwrite policy forbids replacing it; nothing was written."""


class InvalidZipError(StorageError):
    """The ZIP is corrupt, encrypted, or holds members that cannot be extracted safely."""


class ZipBombError(InvalidZipError):
    """The ZIP exceeds a size, count or compression-ratio limit (declared or actual)."""
