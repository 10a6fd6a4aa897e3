"""Canvas answers mapped to typed errors whose messages name the problem and the fix."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.canvas.errors import (
    EXCERPT_CHARS,
    AbortNotPossibleError,
    CanvasAuthError,
    CanvasBadRequestError,
    CanvasConfigError,
    CanvasError,
    CanvasNotFoundError,
    CanvasResponseError,
    CanvasRetryExhaustedError,
    InsufficientScopesError,
    InvalidEnrollmentTermError,
    InvalidParametersError,
    InvalidTokenError,
    PermissionDeniedError,
    ReportNotFoundError,
    RequestContext,
    UnknownReportError,
    error_from_response,
    is_rate_limited,
    not_json_error,
    sanitise_excerpt,
)

TOKEN = "7~SuperSecretCanvasToken0123456789abcdefABCDEF"
WWW_AUTH = {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}
STATUS_CTX = RequestContext("get report status", "1", report="provisioning_csv", report_id=42)
START_CTX = RequestContext("start a report", "1", report="provisoning_csv")
LIST_CTX = RequestContext("list available reports", "sis_account_id:MAIN")
ABORT_CTX = RequestContext("abort a report", "self", report="provisioning_csv", report_id=42, abort=True)
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}


def body(payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def err(status, payload=b"", headers=None, context=STATUS_CTX, secrets=(TOKEN,)) -> CanvasError:
    error = error_from_response(status, headers or {}, body(payload), context, secrets=secrets)
    assert isinstance(error, CanvasError)
    assert error.status == status
    message = str(error)
    assert "\n" not in message
    assert TOKEN not in message
    assert len(message) < 1000
    return error


# --------------------------------------------------------------------------- hierarchy


def test_class_hierarchy():
    assert issubclass(CanvasConfigError, ValueError)
    assert issubclass(InvalidParametersError, CanvasConfigError)
    for cls in (InvalidTokenError, PermissionDeniedError, InsufficientScopesError):
        assert issubclass(cls, CanvasAuthError)
        assert cls.status == 401
    for cls in (UnknownReportError, ReportNotFoundError, AbortNotPossibleError):
        assert issubclass(cls, CanvasNotFoundError)
        assert cls.status == 404
    assert issubclass(InvalidEnrollmentTermError, CanvasBadRequestError)
    assert InvalidEnrollmentTermError.status == 400


def test_status_override_is_per_instance():
    error = CanvasResponseError("x", status=502)
    assert error.status == 502
    assert CanvasResponseError.status is None
    assert CanvasResponseError("y").status is None


# --------------------------------------------------------------------------- 401


@pytest.mark.parametrize(
    "headers", [WWW_AUTH, {"www-authenticate": 'Bearer realm="canvas-lms"'}, {"Www-Authenticate": "Bearer"}]
)
def test_401_with_www_authenticate_is_invalid_token(headers):
    error = err(401, {"errors": [{"message": "Invalid access token."}]}, headers)
    assert type(error) is InvalidTokenError
    message = str(error)
    assert "Invalid access token." in message
    assert "missing, invalid or expired" in message
    assert "password field" in message  # the fix
    assert "get report status" in message
    assert "account 1" in message


def test_401_with_www_authenticate_and_not_authorized_text_is_still_a_token_problem():
    error = err(401, {"errors": [{"message": "user not authorized to perform that action"}]}, WWW_AUTH)
    assert type(error) is InvalidTokenError


def test_401_without_www_authenticate_and_not_authorized_is_permission_denied():
    error = err(
        401,
        {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]},
        {"Content-Type": "application/json"},
        context=LIST_CTX,
    )
    assert type(error) is PermissionDeniedError
    message = str(error)
    assert "read_reports" in message
    assert "user not authorized to perform that action" in message
    assert "sis_account_id:MAIN" in message
    assert "admin role" in message  # the fix


def test_401_without_www_authenticate_and_other_text_is_invalid_token():
    assert type(err(401, {"errors": [{"message": "Invalid access token."}]})) is InvalidTokenError


def test_401_empty_body():
    error = err(401, b"", WWW_AUTH)
    assert type(error) is InvalidTokenError
    assert "(empty body)" in str(error)


@pytest.mark.parametrize("headers", [{}, WWW_AUTH])
def test_401_insufficient_scopes(headers):
    error = err(401, {"errors": [{"message": "Insufficient scopes on access token."}]}, headers)
    assert type(error) is InsufficientScopesError
    message = str(error)
    assert "scope" in message
    assert "developer key" in message
    assert "Insufficient scopes on access token." in message
    assert "url:GET|/api/v1/accounts/:account_id/reports" in message


# --------------------------------------------------------------------------- 404


def test_404_unknown_report_points_at_the_listing():
    error = err(404, NOT_FOUND, context=START_CTX)
    assert type(error) is UnknownReportError
    message = str(error)
    assert "'provisoning_csv'" in message
    assert "list_available_reports" in message


def test_404_unknown_id():
    error = err(404, NOT_FOUND)
    assert type(error) is ReportNotFoundError
    message = str(error)
    assert "#42" in message
    assert "provisioning_csv" in message
    assert "deleted" in message
    assert "report_id" in message


def test_404_abort_of_non_running_report_is_told_by_the_flag_not_the_wording():
    reworded = RequestContext("stop a report", "self", report="provisioning_csv", report_id=42, abort=True)
    assert type(err(404, NOT_FOUND, context=reworded)) is AbortNotPossibleError


def test_404_abort_of_non_running_report():
    error = err(404, NOT_FOUND, context=ABORT_CTX)
    assert type(error) is AbortNotPossibleError
    message = str(error)
    assert "'running'" in message
    assert "#42" in message
    assert "deleted instead" in message


def test_404_without_report_is_about_the_account():
    error = err(404, NOT_FOUND, context=LIST_CTX)
    assert type(error) is CanvasNotFoundError
    message = str(error)
    assert "account_id" in message
    assert "The specified resource does not exist." in message


# --------------------------------------------------------------------------- 400


def test_400_invalid_enrollment_term_singular_error_key():
    error = err(400, {"error": "invalid enrollment_term_id 'fall'"}, context=START_CTX)
    assert type(error) is InvalidEnrollmentTermError
    message = str(error)
    assert "invalid enrollment_term_id 'fall'" in message
    assert "active_terms" in message
    assert "sis_term_id:" in message


def test_400_other_is_bad_request():
    error = err(400, {"errors": [{"message": "something else"}]})
    assert type(error) is CanvasBadRequestError
    assert "something else" in str(error)
    assert "parameters" in str(error)


# --------------------------------------------------------------------------- throttling and 5xx


def test_403_rate_limit_exceeded_text_plain_is_retry_exhausted():
    error = err(403, b"403 Forbidden (Rate Limit Exceeded)", {"Content-Type": "text/plain"})
    assert type(error) is CanvasRetryExhaustedError
    message = str(error)
    assert "throttling" in message
    assert "HTTP 403" in message
    assert "concurrent" in message  # the fix


def test_403_rate_limit_in_json_body_is_retry_exhausted():
    assert type(err(403, {"errors": [{"message": "Rate Limit Exceeded"}]})) is CanvasRetryExhaustedError


def test_plain_403_is_not_throttling():
    error = err(403, {"errors": [{"message": "Forbidden"}]})
    assert not isinstance(error, CanvasRetryExhaustedError)
    assert type(error) is CanvasResponseError
    assert "HTTP 403" in str(error)
    assert "Forbidden" in str(error)


def test_429_is_retry_exhausted():
    error = err(429, b"", {"Retry-After": "30"})
    assert type(error) is CanvasRetryExhaustedError
    assert "HTTP 429" in str(error)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_5xx_is_retry_exhausted(status):
    error = err(status, b"Service Unavailable")
    assert type(error) is CanvasRetryExhaustedError
    assert f"HTTP {status}" in str(error)
    assert "Service Unavailable" in str(error)
    assert "retried later" in str(error)


@pytest.mark.parametrize("status", [405, 409, 418, 422])
def test_other_4xx_is_a_response_error(status):
    error = err(status, {"errors": [{"message": "nope"}]})
    assert type(error) is CanvasResponseError
    assert f"HTTP {status}" in str(error)


# --------------------------------------------------------------------------- bodies


def test_while_1_prefix_is_stripped():
    error = err(401, b'while(1);{"errors":[{"message":"Invalid access token."}]}', WWW_AUTH)
    assert type(error) is InvalidTokenError
    assert "Invalid access token." in str(error)
    assert "while(1)" not in str(error)


def test_while_1_prefix_with_singular_error():
    error = err(400, b'while(1);{"error":"invalid enrollment_term_id \'x\'"}')
    assert type(error) is InvalidEnrollmentTermError


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"errors": {"base": [{"message": "dict form"}]}}, "dict form"),
        ({"errors": ["plain string"]}, "plain string"),
        ({"message": "top-level message"}, "top-level message"),
        ({"errors": [{"message": "one"}, {"message": "two"}]}, "one; two"),
    ],
)
def test_canvas_error_body_shapes(payload, expected):
    assert expected in str(err(422, payload))


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title>"
    b"<style>body { color: red; }</style><script>var t = 'tracking';</script></head>\n"
    b"<body>\n<h1>502   Bad\tGateway</h1>\r\n<p>nginx &amp; friends</p></body></html>"
)


def test_html_body_is_sanitised():
    message = str(err(502, HTML_PAGE))
    assert message.count("502 Bad Gateway") == 1  # the title and the heading say it once
    assert "nginx & friends" in message
    assert "<" not in message
    assert ">" not in message
    assert "tracking" not in message
    assert "color: red" not in message
    assert "\t" not in message
    assert "\r" not in message


def test_secrets_are_redacted_from_json_messages_and_html():
    message = str(err(401, {"errors": [{"message": f"bad token {TOKEN}"}]}, WWW_AUTH))
    assert TOKEN not in message
    assert "***" in message
    message = str(err(500, f"<p>Authorization: Bearer {TOKEN}</p>".encode()))
    assert TOKEN not in message
    assert "***" in message


def test_request_headers_never_reach_the_message():
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Secret": "hdr-secret-value"}
    for status in (400, 401, 403, 404, 429, 500):
        assert "hdr-secret-value" not in str(err(status, b"x", headers))


@pytest.mark.parametrize(
    "payload",
    [
        b"<html><body>" + b"<p>error text</p>\n" * 20_000 + b"</body></html>",
        b"A" * 500_000,
        {"errors": [{"message": "m" * 500_000}]},
        {"errors": [{"message": f"problem number {i}"} for i in range(5_000)]},
        {"errors": {"base": [{"message": "x" * 300}] * 2_000}},
        {"errors": ["short"] * 10_000, "error": "e" * 10_000, "message": "m" * 10_000},
    ],
    ids=["huge-html", "huge-text", "huge-message", "many-messages", "many-dict-messages", "everything"],
)
@pytest.mark.parametrize("status", [400, 401, 404, 500])
def test_huge_body_does_not_make_a_huge_message(payload, status):
    # err() asserts the message stays under 1,000 characters and on one line
    err(status, payload, context=LIST_CTX)


def test_invalid_utf8_body():
    message = str(err(500, b"\xff\xfe broken \x80 bytes"))
    assert "broken" in message


# --------------------------------------------------------------------------- sanitise_excerpt


def test_excerpt_strips_tags_and_joins_lines():
    assert sanitise_excerpt("<b>Hello</b>\n\n  <i>world</i>\r\n") == "Hello world"


def test_excerpt_unescapes_entities():
    assert sanitise_excerpt("a &lt;b&gt; &amp; c") == "a <b> & c"


def test_excerpt_replaces_non_printables():
    assert sanitise_excerpt("a\x00b\x1bc\u200bd") == "a b c d"


def test_excerpt_truncates_to_the_limit_with_an_ellipsis():
    text = "x" * 1000
    excerpt = sanitise_excerpt(text)
    assert excerpt == "x" * EXCERPT_CHARS + "..."
    assert EXCERPT_CHARS == 200
    assert sanitise_excerpt("y" * 200) == "y" * 200
    assert sanitise_excerpt("z" * 201) == "z" * 200 + "..."
    assert sanitise_excerpt("abcdef", limit=3) == "abc..."


def test_excerpt_of_bytes_and_empty():
    assert sanitise_excerpt(b"caf\xc3\xa9") == "café"
    assert sanitise_excerpt(b"") == ""
    assert sanitise_excerpt("   \n\t ") == ""


def test_excerpt_redacts_secrets_and_ignores_empty_ones():
    assert sanitise_excerpt(f"token={TOKEN}&x=1", secrets=["", TOKEN]) == "token=***&x=1"
    assert sanitise_excerpt("nothing here", secrets=[""]) == "nothing here"


def test_excerpt_redacts_a_secret_split_by_the_raw_cut():
    # Lots of markup before the secret: after tags are removed the secret lands in the excerpt,
    # so it must be redacted before the body is cut, not only after.
    for pad in range(1300, 1340):
        page = "<p>" * pad + "Bearer " + TOKEN
        excerpt = sanitise_excerpt(page, secrets=[TOKEN])
        assert TOKEN[:8] not in excerpt, pad


def test_excerpt_of_huge_input_is_bounded():
    assert len(sanitise_excerpt("<p>word</p> " * 1_000_000)) <= EXCERPT_CHARS + 3


@settings(max_examples=80, deadline=None, database=None)
@given(st.one_of(st.binary(max_size=3000), st.text(max_size=3000)), st.integers(min_value=1, max_value=300))
def test_excerpt_property(raw, limit):
    excerpt = sanitise_excerpt(raw, limit=limit)
    assert len(excerpt) <= limit + 3
    assert all(ch.isprintable() for ch in excerpt)
    assert excerpt == excerpt.strip()
    assert "  " not in excerpt


# --------------------------------------------------------------------------- is_rate_limited / not_json_error


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (429, "", True),
        (403, "403 Forbidden (Rate Limit Exceeded)", True),
        (403, "rate limit exceeded", True),
        (403, "Forbidden", False),
        (401, "Rate Limit Exceeded", False),
        (500, "Rate Limit Exceeded", False),
    ],
)
def test_is_rate_limited(status, text, expected):
    assert is_rate_limited(status, text) is expected


def test_not_json_error_for_an_html_login_page():
    error = not_json_error(
        200,
        "text/html; charset=utf-8",
        b"<html><body><h1>Log In</h1></body></html>",
        LIST_CTX,
        secrets=[TOKEN],
    )
    assert isinstance(error, CanvasResponseError)
    assert error.status == 200
    message = str(error)
    assert "an HTML page" in message
    assert "Log In" in message
    assert "<" not in message
    assert "SSO or proxy" in message


def test_not_json_error_other_content_types():
    assert "'no content type'" in str(not_json_error(200, None, b"", LIST_CTX, secrets=[TOKEN]))
    assert "(empty body)" in str(not_json_error(200, None, b"", LIST_CTX, secrets=[TOKEN]))
    assert "'text/plain'" in str(not_json_error(200, "text/plain", b"hello", LIST_CTX, secrets=[TOKEN]))
    assert len(str(not_json_error(200, "text/plain", b"x" * 10**6, LIST_CTX, secrets=[TOKEN]))) < 600


def test_not_json_error_hides_the_token_of_a_page_that_echoes_the_request():
    page = f"<html><pre>Authorization: Bearer {TOKEN}</pre></html>".encode()
    message = str(not_json_error(200, "text/html", page, LIST_CTX, secrets=[TOKEN]))
    assert TOKEN not in message
    assert "Bearer ***" in message


# --------------------------------------------------------------------------- property

JSON_BODIES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=300)),
    lambda children: st.one_of(
        st.lists(children, max_size=40),
        st.dictionaries(st.sampled_from(["errors", "error", "message", "status", "x"]), children, max_size=4),
    ),
    max_leaves=60,
).map(lambda value: json.dumps(value).encode())


@settings(max_examples=60, deadline=None, database=None)
@given(
    st.integers(min_value=400, max_value=599),
    st.one_of(st.binary(max_size=2000), JSON_BODIES),
    st.dictionaries(
        st.sampled_from(["WWW-Authenticate", "www-authenticate", "Content-Type"]), st.text(max_size=20)
    ),
    st.sampled_from([STATUS_CTX, START_CTX, LIST_CTX, ABORT_CTX]),
)
def test_error_from_response_always_maps_to_a_bounded_canvas_error(status, raw, headers, context):
    err(status, raw, headers, context=context)


def test_long_html_body_is_cut_to_the_excerpt_length_in_the_message():
    message = str(err(502, b"<html><body><p>" + b"word " * 2_000 + b"</p></body></html>"))
    said = message.split("retry budget: ", 1)[1].split(". Canvas may be deploying", 1)[0]
    assert said == ("word " * 40)[:EXCERPT_CHARS] + "..."
    assert len(said) == EXCERPT_CHARS + 3


def test_many_json_messages_are_cut_to_the_excerpt_length_in_the_message():
    message = str(err(422, {"errors": [{"message": f"problem {i}"} for i in range(500)]}))
    said = message.split(": ", 1)[1]
    assert said.startswith("problem 0; problem 1; ")
    assert len(said) <= EXCERPT_CHARS + 4  # the excerpt, its ellipsis and the closing full stop


def test_a_redirected_api_call_names_the_host_and_the_fix_but_not_the_path():
    err = error_from_response(
        302,
        {"location": "https://sso.school.edu/login?SAMLRequest=abcdef&ticket=s3cret"},
        b"",
        LIST_CTX,
    )
    assert str(err) == (
        "Canvas redirected the request to list available reports on account sis_account_id:MAIN (HTTP 302) "
        "to https://sso.school.edu instead of answering: the connection host is not the Canvas API host (a "
        "vanity domain, http instead of https, or an SSO page). Set the connection host to the Canvas URL "
        "itself."
    )
    assert "s3cret" not in str(err)


# ------------------------------------------------- the excerpt's raw cut (limit x 20 characters)

PADDING = "<br>"  # markup: long in the raw body, nothing in the excerpt


def test_a_body_of_exactly_the_raw_limit_is_not_cut():
    body = "Bad gateway." + PADDING * 995 + "upstream"
    assert len(body) == EXCERPT_CHARS * 20
    assert sanitise_excerpt(body) == "Bad gateway. upstream"


def test_a_body_over_the_raw_limit_loses_its_cut_last_piece_and_says_so():
    body = "<h1>Oops</h1>" + PADDING * 1000 + "z" * 100  # the cut falls inside the z's
    assert sanitise_excerpt(body) == "Oops..."


def test_a_secret_across_the_raw_cut_leaves_no_prefix():
    secret = "SuperSecretCanvasToken"
    body = PADDING * 999 + secret + " and more"  # the cut at 4,000 splits the secret after "Supe"
    excerpt = sanitise_excerpt(body, secrets=[secret])
    assert "Supe" not in excerpt
    assert excerpt.startswith("***")


@pytest.mark.parametrize(
    "page",
    [
        "<SCRIPT>var token = 1;</SCRIPT>Service unavailable",
        "<script>\nvar token = 1;\n</script>Service unavailable",
        "<Style type='text/css'>\nbody { color: red }\n</STYLE>Service unavailable",
    ],
)
def test_scripts_and_styles_are_dropped_whatever_their_case_and_lines(page):
    assert sanitise_excerpt(page) == "Service unavailable"


def test_an_empty_pair_of_angle_brackets_is_text_not_a_tag():
    assert sanitise_excerpt("expected <> here") == "expected <> here"


# ------------------------------------------------------------- Canvas's error shapes, all read


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        ({"errors": ["Term is not active"]}, "Term is not active"),
        ({"errors": {"base": [{"message": "Term is not active"}]}}, "Term is not active"),
        ({"error": "Term is not active"}, "Term is not active"),
        ({"message": "Term is not active"}, "Term is not active"),
    ],
)
def test_every_shape_of_canvas_error_text_is_quoted(payload, said):
    error = error_from_response(400, {}, json.dumps(payload).encode(), START_CTX)
    assert f"with 400: {said}. Check" in str(error)


def test_at_most_ten_of_canvas_messages_are_quoted():
    payload = {"errors": [{"message": f"m{i}"} for i in range(11)]}
    error = error_from_response(400, {}, json.dumps(payload).encode(), START_CTX)
    assert "m0; m1; m2; m3; m4; m5; m6; m7; m8; m9." in str(error)
    assert "m10" not in str(error)


def test_quoted_messages_are_cut_at_the_excerpt_length():
    exact = {"errors": [{"message": "a" * EXCERPT_CHARS}]}
    assert f"with 400: {'a' * EXCERPT_CHARS}. Check" in str(
        error_from_response(400, {}, json.dumps(exact).encode(), START_CTX)
    )
    many = {"errors": [{"message": "b" * 150}, {"message": "c" * 150}]}
    said = "b" * 150 + "; " + "c" * 48 + "..."
    assert f"with 400: {said}. Check" in str(
        error_from_response(400, {}, json.dumps(many).encode(), START_CTX)
    )


def test_an_error_keeps_its_class_status_when_none_is_given():
    assert InvalidTokenError("x").status == 401
    assert ReportNotFoundError("x").status == 404
    assert CanvasError("x").status is None
    assert CanvasError("x", status=502).status == 502


@pytest.mark.parametrize("status", [300, 301, 399])
def test_every_3xx_to_an_api_call_is_a_redirect_away_from_canvas(status):
    error = error_from_response(status, {"Location": "https://sso.school.edu/login"}, b"", STATUS_CTX)
    assert f"(HTTP {status}) to https://sso.school.edu instead of answering" in str(error)


def test_a_relative_redirect_is_not_shown_as_a_url():
    error = error_from_response(302, {"Location": "/login/saml"}, b"", STATUS_CTX)
    assert "(HTTP 302) instead of answering" in str(error)


def test_a_redirect_the_client_could_not_parse_is_named_malformed():
    from airflow_provider_canvas_reports.canvas.errors import redirected_error

    assert (
        "redirected the request to get report status on account 1 (report provisioning_csv #42) to a malformed URL instead"
        in str(redirected_error(STATUS_CTX, None, None))
    )


def test_an_html_content_type_is_named_whatever_its_case():
    error = not_json_error(200, "Text/HTML; charset=utf-8", b"<p>Sign in</p>", STATUS_CTX, secrets=())
    assert "with an HTML page instead of JSON" in str(error)


def test_a_secret_spelled_with_an_html_entity_is_masked_once_decoded():
    secret = "SuperSecretCanvasToken"
    assert sanitise_excerpt("token: &#83;uperSecretCanvasToken", secrets=[secret]) == "token: ***"
