"""RFC 8288 Link headers as Canvas sends them (header names may be lowercase)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from airflow_provider_canvas_reports.canvas.headers import header

_LINK = re.compile(r"<([^<>]*)>\s*((?:;\s*[^;,]*)*)")  # [^<>]: linear on a run of "<"
_REL = re.compile(r"""rel\s*=\s*"?([^";]+)"?""", re.IGNORECASE)

PER_PAGE = 100  # Canvas's maximum page size: the fewest requests per index walk


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each `rel` to its URL. Malformed parts are ignored, never raised on."""
    links: dict[str, str] = {}
    if not value:
        return links
    for match in _LINK.finditer(value):
        url, params = match.group(1).strip(), match.group(2)
        rel = _REL.search(params or "")
        if not url or rel is None:
            continue
        for name in rel.group(1).split():
            links.setdefault(name.lower(), url)
    return links


def next_page(headers: Mapping[str, str]) -> str | None:
    """The `next` URL from a response's headers, read case-insensitively."""
    return parse_link_header(header(headers, "link")).get("next")
