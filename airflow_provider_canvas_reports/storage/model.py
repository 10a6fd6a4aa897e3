"""Value types shared by the writer and the ZIP extractor."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


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
