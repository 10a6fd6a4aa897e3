"""Reading HTTP response headers, which the transports hand over as plain mappings."""

from __future__ import annotations

from collections.abc import Mapping


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup: hosted Canvas sends lowercase names, other servers may not."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, val in headers.items():
        if key.lower() == wanted:
            return val
    return None
