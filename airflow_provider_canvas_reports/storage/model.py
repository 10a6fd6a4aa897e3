"""Value types shared by the writer and the ZIP extractor, and the options an operator validates.

Cheap to import (no I/O modules): DownloadReportOperator checks ``overwrite`` and ``zip_limits``
with them when a DAG is parsed, while the rest of the package loads only when a task runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

_GiB = 1 << 30
_MiB = 1 << 20


class OverwritePolicy(str, Enum):
    """What to do when the final object name already holds an object."""

    #: Replace it atomically (default): a rerun replaces its own objects.
    REPLACE = "replace"
    #: Refuse with DestinationExistsError before anything is written.
    FAIL = "fail"
    #: Keep it when it has the same size and SHA-256 as the new data (reported with
    #: ``skipped=True``); replace it otherwise.
    SKIP_IDENTICAL = "skip_identical"

    @classmethod
    def coerce(cls, value: OverwritePolicy | str) -> OverwritePolicy:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ValueError(f"overwrite={value!r} is not a known policy: use one of {allowed}") from None


@dataclass(frozen=True)
class LandedObject:
    """One verified object at its final name. ``as_dict()`` is the operator's XCom contract."""

    uri: str
    name: str
    size: int
    sha256: str
    #: True when overwrite='skip_identical' kept an identical existing object (nothing written).
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class ZipLimits:
    """Limits that stop a ZIP bomb; the defaults fit real Canvas exports (several GB) with room.

    Declared sizes are checked before anything is written, and the same limits are enforced
    again on the bytes actually decompressed.
    """

    #: Entries in the central directory (Canvas ZIPs hold a few dozen CSVs at most).
    max_members: int = 1_000
    #: Uncompressed bytes of one member.
    max_member_bytes: int = 16 * _GiB
    #: Uncompressed bytes of all members together.
    max_total_bytes: int = 64 * _GiB
    #: Uncompressed/compressed ratio of one member. Real CSVs deflate 3-20x; deflate's
    #: theoretical maximum is ~1030x, which is what bombs use.
    max_ratio: float = 200.0
    #: Members smaller than this are not ratio-checked: a tiny, very repetitive file is
    #: harmless, and the size limits still apply.
    ratio_check_min_bytes: int = 1 * _MiB

    def __post_init__(self) -> None:
        for field in ("max_members", "max_member_bytes", "max_total_bytes", "max_ratio"):
            if getattr(self, field) <= 0:
                raise ValueError(f"ZipLimits.{field} must be > 0, got {getattr(self, field)}")
        if self.ratio_check_min_bytes < 0:
            raise ValueError("ZipLimits.ratio_check_min_bytes must be >= 0")
