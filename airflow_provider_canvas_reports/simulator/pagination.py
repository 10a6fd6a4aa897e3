"""Canvas's ordinal pagination: page/per_page and a Link header."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlencode

T = TypeVar("T")

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def paginate(items: Sequence[T], query: Mapping[str, str], base_url: str) -> tuple[list[T], str]:
    """One page of ``items`` and its Link header (current, next, prev, first, last).

    Past the last page the slice is empty, as Canvas answers ``[]``.
    """
    per_page = min(MAX_PER_PAGE, max(1, _int(query.get("per_page"), DEFAULT_PER_PAGE)))
    page = max(1, _int(query.get("page"), 1))
    last = max(1, math.ceil(len(items) / per_page))
    kept = [(k, v) for k, v in query.items() if k not in ("page", "per_page")]

    def url(number: int) -> str:
        return f"{base_url}?{urlencode([*kept, ('page', str(number)), ('per_page', str(per_page))])}"

    links = [f'<{url(page)}>; rel="current"']
    if page < last:
        links.append(f'<{url(page + 1)}>; rel="next"')
    if page > 1:
        links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
    links.append(f'<{url(1)}>; rel="first"')
    links.append(f'<{url(last)}>; rel="last"')
    start = (page - 1) * per_page
    return list(items[start : start + per_page]), ",".join(links)
