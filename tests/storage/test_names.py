from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.storage import UnsafeNameError, safe_name
from airflow_provider_canvas_reports.storage.names import (
    MAX_NAME_BYTES,
    is_partial_name,
    new_partial_name,
    partial_prefix,
)


@pytest.mark.parametrize(
    "name",
    [
        "users.csv",
        "provisioning_csv_26_Nov_2025_4512-0.zip",
        "Kurse 2025 (neu).csv",
        "é.csv",
        "a..b.csv",
        "trailing.",
        "üñíçødé-名前.csv",
        "x" * MAX_NAME_BYTES,
    ],
)
def test_safe_names_pass_unchanged(name):
    assert safe_name(name) == name


@pytest.mark.parametrize(
    ("raw", "clean"),
    [(" users.csv ", "users.csv"), ("e\u0301.csv", "\u00e9.csv"), ("\u3000名前.csv", "名前.csv")],
)
def test_sanitising_only_normalises_and_strips(raw, clean):
    assert safe_name(raw) == clean


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "starts with '.'"),
        ("..", "starts with '.'"),
        ("...", "starts with '.'"),
        (".hidden.csv", "starts with '.'"),
        ("../x.csv", "starts with '.'"),
        ("a/b.csv", "'/'"),
        ("/etc/passwd", "'/'"),
        ("a\\b.csv", "backslash"),
        ("..\\x.csv", "starts with '.'"),
        ("C:evil.csv", "drive letter"),
        ("c:\\windows", "backslash"),
        ("a\x00b.csv", "U+0000"),
        ("a\nb.csv", "U+000A"),
        ("a\tb.csv", "U+0009"),
        ("a\x7fb.csv", "U+007F"),
        ("a\x85b.csv", "U+0085"),
        ("\u202egpj.exe", "U+202E"),
        ("a\u200bb.csv", "U+200B"),
        ("a\u2028b.csv", "U+2028"),
        ("x" * (MAX_NAME_BYTES + 1), "longer than 255 bytes"),
        ("é" * 128, "longer than 255 bytes"),
    ],
)
def test_unsafe_names_are_refused_with_the_reason(name, problem):
    with pytest.raises(UnsafeNameError) as excinfo:
        safe_name(name)
    message = str(excinfo.value)
    assert problem in message
    assert "users.csv" in message  # the fix: what a good name looks like


def test_non_string_is_refused():
    with pytest.raises(UnsafeNameError, match="must be a string"):
        safe_name(b"users.csv")  # type: ignore[arg-type]


# -- property tests ----------------------------------------------------------------------------

_SEPARATORS = ("/", "\\")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_refused_or_yields_a_single_safe_component(text):
    try:
        name = safe_name(text)
    except UnsafeNameError:
        return
    assert name
    assert not any(sep in name for sep in _SEPARATORS)
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert "\x00" not in name
    assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert safe_name(name) == name  # idempotent


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=60),
    st.sampled_from(["", ".csv", ".zip", ".tar.gz", ". (1).csv"]),
)
def test_names_from_a_safe_alphabet_are_kept(stem, suffix):
    assert safe_name(stem + suffix) == stem + suffix


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["..", ".", "a", "b.csv", "", "etc", "C:"]), min_size=2, max_size=6))
def test_paths_never_pass(parts):
    path = "/".join(parts)
    with pytest.raises(UnsafeNameError):
        safe_name(path)


# -- temp names --------------------------------------------------------------------------------


def test_partial_names_are_hidden_unique_and_recognisable():
    first, second = new_partial_name("users.csv"), new_partial_name("users.csv")
    assert first != second
    assert first.startswith(".users.csv.partial-")
    assert is_partial_name(first)
    assert is_partial_name(first, "users.csv")
    assert not is_partial_name(first, "users.cs")
    assert not is_partial_name(first, "courses.csv")
    assert not is_partial_name("users.csv")
    assert not is_partial_name(".users.csv.partial-nothex")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + "é名", min_size=1, max_size=255))
def test_partial_names_fit_filesystem_limits(stem):
    name = safe_name(stem.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore") or "x")
    partial = new_partial_name(name)
    assert len(partial.encode("utf-8")) <= MAX_NAME_BYTES
    assert is_partial_name(partial, name)


def test_long_names_sharing_a_prefix_get_distinct_temp_prefixes():
    a, b = "x" * 240 + "a.csv", "x" * 240 + "b.csv"
    assert partial_prefix(a) != partial_prefix(b)
    assert not is_partial_name(new_partial_name(a), b)
