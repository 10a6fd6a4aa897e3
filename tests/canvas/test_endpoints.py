"""Canvas URLs: base URL rules, account-reports paths, and redirect decisions that keep the token home."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.canvas.endpoints import (
    MAX_REDIRECTS,
    Hop,
    abort_path,
    account_reports_page,
    account_segment,
    available_path,
    base_url,
    first_hop,
    is_loopback,
    loggable_target,
    next_hop,
    origin,
    origin_of,
    redact_url,
    report_id_segment,
    report_path,
    report_segment,
    reports_path,
    same_origin,
)
from airflow_provider_canvas_reports.canvas.errors import CanvasConfigError, DownloadError

BASE = "https://school.instructure.com"
FILE_URL = f"{BASE}/accounts/1/files/987/download"
FILES_DOMAIN = "https://school.canvas-user-content.com/files/987/download?token=jwt-abc"
STORE = "https://instfs.example.com/files/xyz?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA"

# --------------------------------------------------------------------------- base_url


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("school.instructure.com", "https://school.instructure.com"),
        ("  school.instructure.com  ", "https://school.instructure.com"),
        ("https://school.instructure.com", "https://school.instructure.com"),
        ("https://school.instructure.com/", "https://school.instructure.com"),
        ("https://school.instructure.com///", "https://school.instructure.com"),
        ("HTTPS://School.Instructure.COM", "https://school.instructure.com"),
        ("https://school.instructure.com/api/v1", "https://school.instructure.com"),
        ("https://school.instructure.com/api/v1/", "https://school.instructure.com"),
        ("https://school.instructure.com/api", "https://school.instructure.com"),
        ("school.instructure.com/api/v1", "https://school.instructure.com"),
        ("https://lms.example.edu/canvas/api/v1/", "https://lms.example.edu/canvas"),
        ("https://lms.example.edu/canvas/", "https://lms.example.edu/canvas"),
        ("https://gw.example.edu/api/canvas", "https://gw.example.edu/api/canvas"),  # a gateway's prefix
        ("https://gw.example.edu/users-lms/", "https://gw.example.edu/users-lms"),
        ("https://lms.example.edu/canvas/api/v1", "https://lms.example.edu/canvas"),
        ("https://lms.example.edu:8443", "https://lms.example.edu:8443"),
        ("lms.example.edu:8443", "https://lms.example.edu:8443"),
        ("https://school.instructure.com/?x=1#frag", "https://school.instructure.com"),
    ],
)
def test_base_url_normalisation(host, expected):
    assert base_url(host) == expected


@pytest.mark.parametrize(
    ("host", "fix"),
    [
        ("https://school.instructure.com/accounts/2", "Set the host to https://school.instructure.com, and the "
         "connection extra's account_id to '2'."),
        ("https://school.instructure.com/accounts/2/settings", "Set the host to https://school.instructure.com, "
         "and the connection extra's account_id to '2'."),
        ("https://school.instructure.com/api/v1/accounts/self/reports", "Set the host to "
         "https://school.instructure.com."),
        ("https://school.instructure.com/login/canvas", "Set the host to https://school.instructure.com."),
        ("https://lms.example.edu/canvas/courses/12", "Set the host to https://lms.example.edu/canvas."),
    ],
)  # fmt: skip
def test_base_url_refuses_a_pasted_page_and_says_what_to_set(host, fix):
    with pytest.raises(CanvasConfigError, match="is a page of Canvas, not where Canvas is") as info:
        base_url(host)
    assert str(info.value).endswith(fix)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("lms.example.edu", 8443, "https://lms.example.edu:8443"),
        ("http://127.0.0.1/", 8900, "http://127.0.0.1:8900"),
        ("https://LMS.example.edu/canvas/api/v1", 8443, "https://lms.example.edu:8443/canvas"),
        ("https://lms.example.edu:8443", 8443, "https://lms.example.edu:8443"),
        ("http://[::1]", 8900, "http://[::1]:8900"),
        ("lms.example.edu", None, "https://lms.example.edu"),
    ],
)
def test_base_url_takes_the_connections_port_field(host, port, expected):
    # The URI form (canvas://:token@host:8443) and JSON connections keep the port apart from the host.
    assert base_url(host, port=port) == expected


def test_base_url_refuses_two_different_ports():
    with pytest.raises(CanvasConfigError) as info:
        base_url("https://lms.example.edu:8443", port=443)
    assert str(info.value) == (
        "The Canvas connection names two ports: 8443 in the host and 443 in the port field. Keep one."
    )


@pytest.mark.parametrize("port", [0, -1, 70000])
def test_base_url_refuses_an_impossible_port(port):
    with pytest.raises(CanvasConfigError, match=f"port {port} is not a valid port"):
        base_url("lms.example.edu", port=port)


@pytest.mark.parametrize("host", [None, "", "   ", "\t\n"])
def test_base_url_empty_host(host):
    with pytest.raises(CanvasConfigError, match="no host"):
        base_url(host)


@pytest.mark.parametrize(
    "host", ["http://school.instructure.com", "HTTP://canvas.internal:8080/", "http://10.0.0.5"]
)
def test_base_url_refuses_plain_http_naming_allow_http(host):
    with pytest.raises(CanvasConfigError, match="allow_http") as info:
        base_url(host)
    assert "unencrypted" in str(info.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://127.0.0.1", "http://127.0.0.1"),
        ("http://127.8.9.10:80", "http://127.8.9.10:80"),
        ("http://localhost:8080/", "http://localhost:8080"),
        ("http://LOCALHOST", "http://localhost"),
        ("http://[::1]:8080/api/v1", "http://[::1]:8080"),
        ("http://[::1]", "http://[::1]"),
    ],
)
def test_base_url_allows_http_on_loopback(host, expected):
    assert base_url(host) == expected


def test_base_url_allows_http_when_told():
    assert base_url("http://canvas.internal:8080/", allow_http=True) == "http://canvas.internal:8080"


@pytest.mark.parametrize(
    "host",
    [
        "https://user:s3cr3t@school.instructure.com",
        "https://s3cr3t@school.instructure.com",
        "user:s3cr3t@school.com",
        "https://user:s3cr3t@",
        "https://user:s3cr3t@school.com:notaport",
    ],
)
def test_base_url_refuses_credentials_in_host_without_echoing_them(host):
    with pytest.raises(CanvasConfigError) as info:
        base_url(host)
    assert "s3cr3t" not in str(info.value)
    assert "credentials" in str(info.value) or "not a valid URL" in str(info.value)


@pytest.mark.parametrize(
    "host",
    [
        "https://evil.example\\@school.instructure.com",
        "https://school.instructure.com\\x",
        "school edu",
        "school.edu\x00",
    ],
)
def test_base_url_refuses_characters_url_parsers_read_differently(host):
    with pytest.raises(CanvasConfigError, match="backslash, a space or a control character"):
        base_url(host)


@pytest.mark.parametrize("host", ["ftp://school.instructure.com", "file:///etc/passwd", "javascript://x"])
def test_base_url_refuses_other_schemes(host):
    with pytest.raises(CanvasConfigError, match="scheme"):
        base_url(host)


@pytest.mark.parametrize("host", ["https://", "https:///api/v1", "https://:443"])
def test_base_url_without_host_name(host):
    with pytest.raises(CanvasConfigError, match="no host name"):
        base_url(host)


@pytest.mark.parametrize(
    "host", ["https://school.instructure.com:notaport", "https://school.com:99999", "http://[::1"]
)
def test_base_url_with_a_broken_port_or_address_is_a_config_error(host):
    with pytest.raises(CanvasConfigError):
        base_url(host)


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("localhost", True),
        ("LocalHost", True),
        ("127.0.0.1", True),
        ("127.255.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("localhost.evil.com", False),
        ("example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(hostname, expected):
    assert is_loopback(hostname) is expected


# --------------------------------------------------------------------------- segments and paths


@pytest.mark.parametrize(
    ("account_id", "expected"),
    [
        (None, "self"),
        ("", "self"),
        ("self", "self"),
        (1, "1"),
        ("123", "123"),
        (" 42 ", "42"),
        ("sis_account_id:MAIN", "sis_account_id:MAIN"),
        ("sis_account_id:a b/c", "sis_account_id:a%20b%2Fc"),
        ("sis_account_id:x?y#z", "sis_account_id:x%3Fy%23z"),
    ],
)
def test_account_segment(account_id, expected):
    assert account_segment(account_id) == expected


@pytest.mark.parametrize(
    "account_id",
    [
        "SELF",
        "me",
        "-1",
        "1.5",
        "12abc",
        "sis_account_id:",
        "sis_user_id:5",
        "../1",
        "1/reports",
        "١٢٣",
        "²",
        True,
    ],
)
def test_account_segment_refuses_junk(account_id):
    with pytest.raises(CanvasConfigError, match="account_id") as info:
        account_segment(account_id)
    assert "sis_account_id:<id>" in str(info.value)


@pytest.mark.parametrize("report", ["provisioning_csv", "sis_export_csv", "a", "x1_y2"])
def test_report_segment(report):
    assert report_segment(report) == report


@pytest.mark.parametrize(
    "report",
    ["", "Provisioning_csv", "1csv", "prov-csv", "prov csv", "../x", "x/y", "a" * 101, None, 5, "x\n"],
)
def test_report_segment_refuses_junk(report):
    with pytest.raises(CanvasConfigError, match="report name") as info:
        report_segment(report)
    assert "list_available_reports" in str(info.value)


@pytest.mark.parametrize(
    ("report_id", "expected"), [(1, "1"), (42, "42"), ("42", "42"), (" 7 ", "7"), ("007", "7")]
)
def test_report_id_segment(report_id, expected):
    assert report_id_segment(report_id) == expected


@pytest.mark.parametrize(
    "report_id",
    [True, False, 0, "0", "000", -1, "-1", "1.5", 1.5, "abc", "", "1e3", "0x1F", None, "²", "١٢", "1 2"],
)
def test_report_id_segment_refuses_junk(report_id):
    with pytest.raises(CanvasConfigError, match="positive integer"):
        report_id_segment(report_id)


def test_report_id_segment_message_is_short():
    with pytest.raises(CanvasConfigError) as info:
        report_id_segment("9" * 10 + "x" * 10_000)
    assert len(str(info.value)) < 300


def test_paths():
    assert available_path(None) == "/api/v1/accounts/self/reports"
    assert reports_path(1, "provisioning_csv") == "/api/v1/accounts/1/reports/provisioning_csv"
    assert report_path("sis_account_id:A", "grade_export_csv", "5") == (
        "/api/v1/accounts/sis_account_id:A/reports/grade_export_csv/5"
    )
    assert (
        abort_path("self", "provisioning_csv", 77)
        == "/api/v1/accounts/self/reports/provisioning_csv/77/abort"
    )


def test_paths_validate_every_segment():
    with pytest.raises(CanvasConfigError):
        reports_path("bad id", "provisioning_csv")
    with pytest.raises(CanvasConfigError):
        report_path(1, "../evil", 5)
    with pytest.raises(CanvasConfigError):
        abort_path(1, "provisioning_csv", 0)


def test_account_reports_page():
    assert account_reports_page(BASE, 1) == f"{BASE}/accounts/1/settings#tab-reports"


# --------------------------------------------------------------------------- origins


def test_origin_fills_default_ports():
    assert origin("https://A.example.com/x") == ("https", "a.example.com", 443)
    assert origin("http://a.example.com/x") == ("http", "a.example.com", 80)
    assert origin("https://a.example.com:8443/") == ("https", "a.example.com", 8443)


@pytest.mark.parametrize(
    "url", ["https://A.example.com/x", "http://127.0.0.1:8901/", "https://[::1]:8443/", "HTTP://[::1]/"]
)
def test_origin_of_its_parts_is_the_urls(url):
    # urllib3 names a pool by scheme, host (IPv6 without brackets) and port.
    scheme, host, port = origin(url)
    assert origin_of(scheme.upper(), f"[{host}]" if ":" in host else host.upper(), port) == origin(url)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (BASE, f"{BASE}/accounts/1", True),
        (BASE, "https://SCHOOL.instructure.com:443/x", True),
        (BASE, "https://school.instructure.com:8443/x", False),
        (BASE, "http://school.instructure.com/x", False),
        (BASE, "https://school.instructure.com.evil.com/x", False),
        (BASE, "https://evil.com/school.instructure.com", False),
    ],
)
def test_same_origin(a, b, expected):
    assert same_origin(a, b) is expected


# --------------------------------------------------------------------------- first_hop


def test_first_hop_to_canvas_sends_auth():
    assert first_hop(BASE, FILE_URL) == Hop(FILE_URL, True)


def test_first_hop_relative_file_url_is_resolved_against_canvas():
    assert first_hop(BASE, "/accounts/1/files/987/download") == Hop(FILE_URL, True)


def test_first_hop_to_another_host_withholds_auth():
    assert first_hop(BASE, FILES_DOMAIN) == Hop(FILES_DOMAIN, False)


def test_first_hop_to_plain_http_canvas_withholds_auth():
    hop = first_hop(BASE, "http://school.instructure.com/accounts/1/files/987/download")
    assert hop.send_auth is False


@pytest.mark.parametrize(
    "file_url", ["ftp://school.instructure.com/f", "file:///etc/passwd", "data:text/csv,a"]
)
def test_first_hop_refuses_non_http(file_url):
    with pytest.raises(DownloadError, match="non-HTTP"):
        first_hop(BASE, file_url)


# --------------------------------------------------------------------------- next_hop


def test_redirect_chain_canvas_files_domain_store():
    """The real hosted chain: Canvas -> files domain -> store. The token goes only to hop 0."""
    hop1 = next_hop(BASE, FILE_URL, FILES_DOMAIN, 0)
    assert hop1 == Hop(FILES_DOMAIN, False)
    hop2 = next_hop(BASE, hop1.url, STORE, 1)
    assert hop2 == Hop(STORE, False)


def test_redirect_back_to_canvas_sends_auth_again():
    assert next_hop(BASE, FILES_DOMAIN, f"{BASE}/files/987/download", 1).send_auth is True


@pytest.mark.parametrize(
    "location",
    [
        "https://school.instructure.com:8443/files/1",  # other port
        "https://files.school.instructure.com/files/1",  # subdomain
        "https://school.instructure.com.evil.com/files/1",
        "//evil.com/files/1",  # scheme-relative
    ],
)
def test_redirect_elsewhere_never_sends_auth(location):
    assert next_hop(BASE, FILE_URL, location, 0).send_auth is False


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        # urlsplit reads host school.instructure.com here; urllib3 ends the host at the backslash.
        ("https://evil.com\\@school.instructure.com/files/1", "backslash"),
        ("https://school.instructure.com/files/1 2", "space"),
        ("https://school.instructure.com/files/1\x00", "control"),
        ("https://school.instructure.com@evil.com/files/1", "credentials"),  # userinfo trick
        ("https://user:pw@files.example/files/1", "credentials"),
    ],
)
def test_redirects_that_url_parsers_could_read_differently_are_refused(location, problem):
    with pytest.raises(DownloadError, match=problem):
        next_hop(BASE, FILE_URL, location, 0)


def test_redirect_same_origin_with_explicit_default_port_sends_auth():
    assert next_hop(BASE, FILE_URL, "https://School.Instructure.com:443/files/1", 0).send_auth is True


def test_relative_location_is_resolved_against_the_current_url():
    hop = next_hop(BASE, FILE_URL, "/files/987/download?download_frd=1", 0)
    assert hop == Hop(f"{BASE}/files/987/download?download_frd=1", True)
    hop = next_hop(BASE, FILES_DOMAIN, "other?sig=1", 1)
    assert hop == Hop("https://school.canvas-user-content.com/files/987/other?sig=1", False)


@pytest.mark.parametrize("location", [None, ""])
def test_redirect_without_location(location):
    with pytest.raises(DownloadError, match="Location"):
        next_hop(BASE, FILE_URL, location, 0)


def test_redirect_loop_bound():
    assert MAX_REDIRECTS == 5
    for hops in range(MAX_REDIRECTS):
        next_hop(BASE, FILE_URL, FILES_DOMAIN, hops)
    with pytest.raises(DownloadError, match="redirect loop"):
        next_hop(BASE, FILE_URL, FILES_DOMAIN, MAX_REDIRECTS)
    with pytest.raises(DownloadError, match="more than 5 times"):
        next_hop(BASE, FILE_URL, FILES_DOMAIN, MAX_REDIRECTS + 10)


def test_redirect_loop_follows_at_most_max_redirects():
    url, hops = FILE_URL, 0
    while True:
        try:
            url = next_hop(BASE, url, FILE_URL, hops).url
        except DownloadError:
            break
        hops += 1
    assert hops == MAX_REDIRECTS


@pytest.mark.parametrize(
    "location",
    ["http://school.canvas-user-content.com/f", "http://school.instructure.com/f", "HTTP://store/f"],
)
def test_https_to_http_downgrade_refused(location):
    with pytest.raises(DownloadError, match="plain http"):
        next_hop(BASE, FILE_URL, location, 0)


def test_http_to_http_on_loopback_simulator_is_followed():
    base = "http://127.0.0.1:8080"
    hop = next_hop(base, f"{base}/accounts/1/files/2/download", "http://localhost:8081/store/x", 0)
    assert hop == Hop("http://localhost:8081/store/x", False)
    assert next_hop(base, hop.url, f"{base}/x", 1).send_auth is True


@pytest.mark.parametrize(
    "location",
    ["ftp://evil.com/f", "file:///etc/passwd", "javascript:alert(1)", "data:text/html,<h1>", "gopher://x"],
)
def test_non_http_schemes_refused(location):
    with pytest.raises(DownloadError, match="non-HTTP"):
        next_hop(BASE, FILE_URL, location, 0)


@pytest.mark.parametrize(
    "location",
    ["https://files.example.com:notaport/f", "https://files.example.com:99999/f", "https://[::1/f"],
)
def test_broken_location_is_a_download_error(location):
    with pytest.raises(DownloadError):
        next_hop(BASE, FILE_URL, location, 0)


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(max_size=80), st.integers(min_value=0, max_value=MAX_REDIRECTS - 1))
def test_next_hop_raises_only_download_errors_and_keeps_the_token_home(location, hops):
    try:
        hop = next_hop(BASE, FILES_DOMAIN, location, hops)
    except DownloadError:
        return
    assert hop.send_auth == same_origin(hop.url, BASE)
    if hop.send_auth:
        assert hop.url.lower().startswith("https://school.instructure.com")


# --------------------------------------------------------------------------- redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (STORE, "https://instfs.example.com"),
        (FILES_DOMAIN, "https://school.canvas-user-content.com"),
        ("https://user:pw@host.example/p?q=1#frag", "https://host.example"),
        (f"{BASE}/accounts/1/files/2/download", BASE),
        ("https://files.example/files/9/1767225600-5f3ac0ffee", "https://files.example"),
        ("http://127.0.0.1:8901/files/9/x?sig=1", "http://127.0.0.1:8901"),
    ],
)
def test_redact_url_keeps_only_scheme_and_host(url, expected):
    redacted = redact_url(url)
    assert redacted == expected
    assert "?" not in redacted
    assert "Signature" not in redacted


# --------------------------------------------------------------------------- loggable_target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "/api/v1/accounts/self/reports/provisioning_csv/7",
            "/api/v1/accounts/self/reports/provisioning_csv/7",
        ),
        ("/api/v1/accounts/self/reports?per_page=100&page=2", "/api/v1/accounts/self/reports?..."),
        ("/accounts/1/files/2/download?verifier=abc", "/accounts/1/files/2/download?..."),
    ],
)
def test_loggable_target_on_canvas_keeps_the_path_and_cuts_the_query(target, expected):
    assert loggable_target(target, on_canvas=True) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/files/9/1767225600-5f3ac0ffee", "/..."),
        ("/objects/9?X-Amz-Signature=deadbeef&X-Amz-Credential=k", "/..."),
        ("/location/eyJhbGciOiJIUzUxMiJ9.e30.sig?download=1", "/..."),
        (STORE, "https://instfs.example.com/..."),
        ("http://127.0.0.1:8901/files/9/1767225600-5f3ac0ffee", "http://127.0.0.1:8901/..."),
    ],
)
def test_loggable_target_elsewhere_hides_the_path(target, expected):
    # The files host's signed ticket and inst-fs tokens live in paths, presigned signatures in queries.
    assert loggable_target(target, on_canvas=False) == expected


def test_a_report_name_may_have_a_hundred_characters_not_more():
    assert report_segment("r" * 100) == "r" * 100
    with pytest.raises(CanvasConfigError, match="Invalid Canvas report name"):
        report_segment("r" * 101)


@pytest.mark.parametrize(
    "host", ["https://:t0ken@school.instructure.com", "https://user@school.instructure.com"]
)
def test_credentials_in_the_host_are_refused_without_echoing_them(host):
    with pytest.raises(CanvasConfigError, match="contains credentials") as info:
        base_url(host)
    assert "t0ken" not in str(info.value)


@pytest.mark.parametrize("port", [0, 65536])
def test_a_port_field_out_of_range_is_refused(port):
    with pytest.raises(CanvasConfigError, match=f"port {port} is not a valid port"):
        base_url("school.instructure.com", port=port)
    assert base_url("school.instructure.com", port=65535) == "https://school.instructure.com:65535"


def test_a_page_path_is_recognised_whatever_its_case():
    with pytest.raises(CanvasConfigError, match="that is a page of Canvas"):
        base_url("https://school.instructure.com/Accounts/2")


def test_an_empty_host_says_to_set_one():
    with pytest.raises(CanvasConfigError, match=r"has no host\. Set it to your Canvas URL"):
        base_url("  ")


def test_a_relative_file_url_resolves_under_a_canvas_path_prefix():
    hop = first_hop("https://lms.school.edu/canvas", "files/7/download")
    assert hop == Hop("https://lms.school.edu/canvas/files/7/download", True)


def test_https_to_plain_http_is_allowed_only_to_loopback():
    hop = next_hop(BASE, f"{BASE}/files/7/download", "http://127.0.0.1:9000/store/7", 0)
    assert hop == Hop("http://127.0.0.1:9000/store/7", False)


def test_plain_http_to_plain_http_is_followed_on_an_allow_http_canvas():
    canvas = "http://canvas.campus.lan"
    hop = next_hop(canvas, f"{canvas}/files/7/download", "http://files.campus.lan/7", 0)
    assert hop == Hop("http://files.campus.lan/7", False)


def test_a_redirect_with_only_a_password_in_it_is_refused():
    with pytest.raises(DownloadError, match="credentials"):
        next_hop(BASE, f"{BASE}/files/7/download", "https://:secret@files.example.com/7", 0)
