"""Canvas's ordinal pagination."""

from __future__ import annotations

from airflow_provider_canvas_reports.simulator.pagination import paginate


def _rels(link: str) -> list[str]:
    return [part.split('rel="')[1].rstrip('"') for part in link.split(",")]


def test_first_middle_last_and_past_the_end():
    items = list(range(25))
    page, link = paginate(items, {}, "http://x/r")
    assert page == list(range(10))
    assert _rels(link) == ["current", "next", "first", "last"]
    assert '<http://x/r?page=3&per_page=10>; rel="last"' in link
    page, link = paginate(items, {"page": "2"}, "http://x/r")
    assert page == list(range(10, 20))
    assert _rels(link) == ["current", "next", "prev", "first", "last"]
    page, link = paginate(items, {"page": "3"}, "http://x/r")
    assert page == list(range(20, 25))
    assert _rels(link) == ["current", "prev", "first", "last"]
    page, _link = paginate(items, {"page": "9"}, "http://x/r")
    assert page == []


def test_per_page_bounds_and_other_query_kept():
    items = list(range(250))
    page, link = paginate(items, {"per_page": "1000", "include[]": "x"}, "http://x/r")
    assert len(page) == 100
    assert "per_page=100" in link
    assert "include%5B%5D=x" in link
    page, _ = paginate(items, {"per_page": "junk", "page": "-3"}, "http://x/r")
    assert page == list(range(10))


def test_empty_list_has_one_page():
    page, link = paginate([], {}, "http://x/r")
    assert page == []
    assert _rels(link) == ["current", "first", "last"]
