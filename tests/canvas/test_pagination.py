"""Link headers as Canvas sends them, read case-insensitively and never raised on."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.canvas.pagination import PER_PAGE, next_page, parse_link_header

API = "https://school.instructure.com/api/v1/accounts/1/reports/provisioning_csv"
CANVAS_LINK = (
    f'<{API}?page=2&per_page=100>; rel="current",'
    f'<{API}?page=3&per_page=100>; rel="next",'
    f'<{API}?page=1&per_page=100>; rel="prev",'
    f'<{API}?page=1&per_page=100>; rel="first",'
    f'<{API}?page=9&per_page=100>; rel="last"'
)


def test_per_page_is_canvas_maximum():
    assert PER_PAGE == 100


def test_canvas_link_header_with_several_rels():
    assert parse_link_header(CANVAS_LINK) == {
        "current": f"{API}?page=2&per_page=100",
        "next": f"{API}?page=3&per_page=100",
        "prev": f"{API}?page=1&per_page=100",
        "first": f"{API}?page=1&per_page=100",
        "last": f"{API}?page=9&per_page=100",
    }


@pytest.mark.parametrize(
    "value",
    [
        '<https://x/a?page=2>; rel="next"',
        "<https://x/a?page=2>; rel=next",
        "<https://x/a?page=2>;rel=next",
        '<https://x/a?page=2> ;  rel = "next"',
        '<https://x/a?page=2>; REL="NEXT"',
        '<https://x/a?page=2>; Rel="Next"',
        '<https://x/a?page=2>; title="page two"; rel="next"',
        '<https://x/a?page=2>; rel="next"; type="application/json"',
    ],
)
def test_quoted_unquoted_and_cased_rels(value):
    assert parse_link_header(value) == {"next": "https://x/a?page=2"}


def test_space_separated_rels_in_one_link():
    assert parse_link_header('<https://x/a?page=1>; rel="first prev"') == {
        "first": "https://x/a?page=1",
        "prev": "https://x/a?page=1",
    }


def test_first_link_wins_for_a_repeated_rel():
    assert parse_link_header('<https://x/1>; rel="next", <https://x/2>; rel="next"') == {
        "next": "https://x/1"
    }


def test_whitespace_and_newlines_between_links():
    value = '<https://x/1>; rel="prev" ,\n  <https://x/3>; rel="next"'
    assert parse_link_header(value) == {"prev": "https://x/1", "next": "https://x/3"}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "garbage",
        "https://x/2; rel=next",  # no angle brackets
        "<https://x/2>",  # no rel
        "<https://x/2>; title=next",  # no rel
        "<>; rel=next",  # empty URL
        "<https://x/2; rel=next",  # unclosed
        ", , ,",
        ";;;",
    ],
)
def test_malformed_headers_give_nothing(value):
    assert parse_link_header(value) == {}


def test_malformed_parts_are_ignored_and_good_ones_kept():
    value = 'junk, <https://x/2>; foo=bar, <>; rel="prev", <https://x/3>; rel="next", trailing; rel=last'
    assert parse_link_header(value) == {"next": "https://x/3"}


def test_pathological_header_is_parsed_in_linear_time():
    # A broken proxy or a hostile server can send a long header; parsing must not be quadratic.
    started = time.perf_counter()
    for value in ("<" * 30_000, "<a" * 15_000, "<x>;" * 10_000):
        parse_link_header(value)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("name", ["Link", "link", "LINK", "lInK"])
def test_next_page_reads_the_header_case_insensitively(name):
    assert next_page({"Content-Type": "application/json", name: CANVAS_LINK}) == f"{API}?page=3&per_page=100"


def test_next_page_absent():
    assert next_page({}) is None
    assert next_page({"link": f'<{API}?page=9>; rel="last"'}) is None
    assert next_page({"linkage": CANVAS_LINK}) is None
    assert next_page({"link": ""}) is None


@settings(max_examples=150, deadline=None, database=None)
@given(st.text(max_size=300))
def test_parse_link_header_never_raises(value):
    links = parse_link_header(value)
    assert all(isinstance(k, str) and isinstance(v, str) and k == k.lower() for k, v in links.items())


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(alphabet="<>;,= \"'relnxtREL/:?&", max_size=200))
def test_parse_link_header_never_raises_on_link_like_text(value):
    parse_link_header(value)


URLS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/?&=.:%-_", min_size=1, max_size=40)
RELS = st.sampled_from(["current", "next", "prev", "first", "last"])


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.dictionaries(RELS, URLS, min_size=1),
    st.booleans(),
    st.sampled_from([",", ", ", ",\n "]),
    st.sampled_from(["rel", "REL", "Rel"]),
)
def test_well_formed_headers_round_trip(links, quoted, separator, rel_name):
    value = separator.join(
        f"<{url}>; {rel_name}={chr(34) if quoted else ''}{rel}{chr(34) if quoted else ''}"
        for rel, url in links.items()
    )
    assert parse_link_header(value) == links
    assert next_page({"LINK": value}) == links.get("next")


def test_an_unquoted_rel_ends_at_the_next_parameter():
    assert parse_link_header(f'<{API}?page=2>; rel=next; type="application/json"') == {
        "next": f"{API}?page=2"
    }


def test_spaces_inside_the_angle_brackets_are_not_part_of_the_url():
    assert next_page({"Link": f'< {API}?page=2 >; rel="next"'}) == f"{API}?page=2"
