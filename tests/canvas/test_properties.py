"""Property-based tests the rest of tests/canvas and tests/storage do not already have.

Already covered elsewhere (not repeated here): Report.from_json on arbitrary JSON, phase by
known status whatever the progress, available reports (test_report.py); Link headers never
raising and round-tripping (test_pagination.py); decide() never over the budget and honouring a
bounded Retry-After, backoff bounds, pacing (test_retry.py); next_hop keeping the token home
(test_endpoints.py); safe_name (tests/storage/test_names.py).

Added here:
- Report: any status string maps to the right phase and cancel action; as_json() drops only the
  verifier; parse_timestamp never raises and round-trips aware datetimes.
- Link headers: parsed URLs are never invented; header name in any case; a Pager never reads a
  page twice.
- The retry policy as the transports run it (the api_call and open_chain conversations, driven
  with a fake clock): never more sends than max_attempts, never more waiting than max_elapsed, a
  start that may have reached Canvas sent once, Retry-After honoured up to its cap, only typed
  errors; the download chain's token stays on the Canvas origin and its hops are bounded.
- Names: ZIP member names and URL path segments (account, report, report id) cannot escape.
- Download verification does not depend on how the body is chunked.
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.canvas import api, endpoints
from airflow_provider_canvas_reports.canvas.download import ChunkChecker, Opened, OpenHop, Ready, open_chain
from airflow_provider_canvas_reports.canvas.errors import (
    CanvasConfigError,
    CanvasError,
    CanvasResponseError,
    DownloadError,
    RequestContext,
)
from airflow_provider_canvas_reports.canvas.exchange import (
    ApiRequest,
    ApiResponse,
    Failed,
    Received,
    Send,
    Sleep,
    api_call,
)
from airflow_provider_canvas_reports.canvas.pagination import next_page, parse_link_header
from airflow_provider_canvas_reports.canvas.report import (
    FAILURE_STATES,
    KNOWN_STATES,
    Phase,
    Report,
    cancel_action,
    classify,
    parse_timestamp,
)
from airflow_provider_canvas_reports.canvas.retry import (
    RETRYABLE_STATUS,
    Attempt,
    Done,
    Failure,
    Retry,
    RetryPolicy,
    decide,
)
from airflow_provider_canvas_reports.storage.errors import UnsafeNameError
from airflow_provider_canvas_reports.storage.names import safe_name
from airflow_provider_canvas_reports.storage.zipfiles import member_object_name

SETTINGS = settings(max_examples=120, deadline=None, database=None)
BASE = "https://school.instructure.com"
STATUSES = st.one_of(st.sampled_from(sorted(KNOWN_STATES)), st.text(max_size=12), st.none())


# -- Report ----------------------------------------------------------------------------------------


@SETTINGS
@given(STATUSES)
def test_only_complete_is_success_and_only_error_aborted_deleted_are_failure(status: str | None) -> None:
    phase = classify(status)
    assert (phase is Phase.SUCCESS) == (status == "complete")
    assert (phase is Phase.FAILURE) == (status in FAILURE_STATES)
    # Whatever is neither keeps waiting (with the caller's deadline): never success by default.
    if status not in KNOWN_STATES:
        assert phase is Phase.WAITING


@SETTINGS
@given(STATUSES)
def test_cancel_action_aborts_only_running_leaves_queued_and_never_touches_finished(
    status: str | None,
) -> None:
    action = cancel_action(status)
    if status == "running":
        assert action == "abort"  # Canvas aborts only running reports
    elif status == "created":
        assert action == "leave"  # a delete would not stop it: its job runs it anyway
    elif classify(status) is Phase.WAITING:
        assert action == "delete"
    else:
        assert action is None


URL_TAILS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=&%_-.", max_size=30)


# Canvas's attachment uuid is 40 letters and digits; the verifier in the url is that uuid.
UUIDS = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=40, max_size=40
)
ATTACHMENT_EXTRAS = st.dictionaries(
    st.sampled_from(["display_name", "content-type", "mime_class", "thumbnail_url", "preview_url", "locked"]),
    st.one_of(st.booleans(), st.none(), st.text(max_size=12)),
    max_size=4,
)


@SETTINGS
@given(
    st.integers(min_value=1, max_value=10**9),
    st.sampled_from(sorted(KNOWN_STATES)),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz/:.", min_size=1, max_size=40),
    st.one_of(st.none(), URL_TAILS),
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8)), max_size=4),
    UUIDS,
    ATTACHMENT_EXTRAS,
    st.sets(st.sampled_from(["thumbnail_url", "preview_url"])),
)
def test_as_json_drops_the_verifier_and_the_uuid_and_keeps_the_rest(
    report_id: int,
    status: str,
    path: str,
    query: str | None,
    extra: dict[str, Any],
    uuid: str,
    attachment_extra: dict[str, Any],
    carrying_uuid: set[str],
) -> None:
    url = "https://school.instructure.com/" + path + ("" if query is None else "?" + query)
    url += ("&" if "?" in url else "?") + f"verifier={uuid}"
    links = {key: f"https://school.instructure.com/images/thumbnails/1/{uuid}" for key in carrying_uuid}
    attachment = {**attachment_extra, **links, "id": 1, "uuid": uuid, "url": url, "size": 3}
    raw = {**extra, "id": report_id, "status": status, "attachment": attachment}
    snapshot = repr(raw)
    out = Report.from_json(raw).as_json()
    assert repr(raw) == snapshot  # the parsed input is never changed
    assert uuid not in repr(out)
    assert out["attachment"]["url"] == url.split("?", 1)[0]
    assert {k: v for k, v in out.items() if k != "attachment"} == {
        k: v for k, v in raw.items() if k != "attachment"
    }
    kept = {k: v for k, v in attachment.items() if k not in {"url", "uuid", *carrying_uuid}}
    assert {k: v for k, v in out["attachment"].items() if k != "url"} == kept


@SETTINGS
@given(
    st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.none(), st.booleans(), st.lists(st.text()))
)
def test_parse_timestamp_never_raises(value: Any) -> None:
    parsed = parse_timestamp(value)
    assert parsed is None or isinstance(parsed, datetime)


@SETTINGS
@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
)
def test_parse_timestamp_round_trips_canvas_iso_8601(moment: datetime, offset: int, timespec: str) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    text = aware.isoformat(timespec=timespec)
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert abs((parsed - aware).total_seconds()) < 1
    utc = aware.astimezone(timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")
    assert parse_timestamp(utc) == parsed


# -- Link headers and paging -----------------------------------------------------------------------


@SETTINGS
@given(st.text(alphabet='<>;,= "relnxtcuprvfisaNEXT/:?&.0123456789', max_size=200))
def test_parsed_links_are_never_invented(value: str) -> None:
    for rel, url in parse_link_header(value).items():
        assert url in value
        assert rel == rel.lower()
        assert rel.lower() in value.lower()


@SETTINGS
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/?&=", min_size=1, max_size=30),
    st.lists(st.sampled_from(["l", "L"]), min_size=4, max_size=4),
)
def test_next_page_reads_the_header_in_any_case(url: str, cases: list[str]) -> None:
    name = "".join(c if case == "l" else c.upper() for c, case in zip("link", cases, strict=True))
    assert next_page({name: f'<{url}>; rel="next"'}) == url.strip()


CTX = RequestContext("list report runs", "self", report="provisioning_csv")


@SETTINGS
@given(st.lists(st.sampled_from(["/p1", "/p2", "/p3", "/p4", None]), min_size=1, max_size=12))
def test_pager_never_reads_a_page_twice(links: list[str | None]) -> None:
    pager = api.Pager(api.Call(ApiRequest("GET", "/p0", CTX), lambda resp: list(resp.data)))
    read = ["/p0"]
    for link in links:
        headers = {"link": f'<{BASE}{link}>; rel="next"'} if link else {}
        looped: CanvasResponseError | None = None
        try:
            pager.advance(ApiResponse(200, headers, [{"id": 1}]))
        except CanvasResponseError as exc:
            looped = exc
        if looped is not None:
            assert "looped back to a page already read" in str(looped)
            assert link in read
            return
        if pager.current is None:
            return
        read.append(pager.current.request.path.removeprefix(BASE))
        assert len(read) == len(set(read))


# -- the retry policy as the transports run it ------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


OUTCOMES = st.one_of(
    st.builds(lambda s: Received(s, {}, b"{}"), st.sampled_from([200, 201])),
    st.builds(lambda s: Received(s, {}, b'{"errors":[{"message":"x"}]}'), st.sampled_from([400, 401, 404])),
    st.builds(lambda s: Received(s, {}, b"<html>oops</html>"), st.sampled_from(sorted(RETRYABLE_STATUS))),
    st.builds(
        lambda h: Received(429, {} if h is None else {"Retry-After": h}, b"429 Too Many Requests"),
        st.one_of(st.none(), st.sampled_from(["0", "1", "2.5", "30", "9999", "soon", "-3"])),
    ),
    st.just(Received(403, {}, b"403 Forbidden (Rate Limit Exceeded)")),
    st.builds(Failed, st.sampled_from(list(Failure))),
)
POLICIES = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=12),
    max_elapsed=st.floats(min_value=0.1, max_value=200),
    base_delay=st.floats(min_value=0, max_value=5),
    max_delay=st.floats(min_value=0, max_value=30),
    max_retry_after=st.floats(min_value=0, max_value=60),
)


@settings(max_examples=200, deadline=None, database=None)
@given(POLICIES, st.booleans(), st.lists(OUTCOMES, min_size=1, max_size=15), st.integers())
def test_api_call_conversation_stays_within_the_policy(
    policy: RetryPolicy, idempotent: bool, outcomes: list[Any], seed: int
) -> None:
    clock = FakeClock()
    request = ApiRequest("POST" if not idempotent else "GET", "/api/v1/x", CTX, idempotent=idempotent)
    gen = api_call(request, policy, clock=clock, rng=random.Random(seed))
    sends, slept, sent = 0, 0.0, None
    step: Any = next(gen)
    final: Any = None
    try:
        while True:
            if isinstance(step, Sleep):
                assert step.seconds >= 0
                if sent is not None and isinstance(sent, Received) and sent.status == 429:
                    hinted = sent.headers.get("Retry-After")
                    with contextlib.suppress(TypeError, ValueError):
                        if hinted is not None and float(hinted) >= 0:
                            honoured = min(float(hinted), policy.max_retry_after)
                            assert honoured <= step.seconds <= honoured * (1 + policy.throttle_jitter)
                slept += step.seconds
                clock.now += step.seconds
                step = gen.send(None)
                continue
            assert isinstance(step, Send)
            sends += 1
            assert sends <= policy.max_attempts
            if not idempotent and sent is not None:
                # A start is repeated only after an answer that proves Canvas did not run it.
                assert (isinstance(sent, Received) and sent.status in (403, 429)) or (
                    isinstance(sent, Failed) and sent.failure is Failure.CONNECT
                )
            sent = outcomes[(sends - 1) % len(outcomes)]
            step = gen.send(sent)
    except StopIteration as stop:
        final = stop.value
    except CanvasError as exc:
        final = exc  # typed, whatever went wrong
    if not isinstance(final, CanvasError):
        assert isinstance(final, ApiResponse)
        assert 200 <= final.status < 300
    assert slept <= policy.max_elapsed


def canvas_report(size: int = 10, *, zipped: bool = False) -> Report:
    name, ctype = ("r.zip", "application/zip") if zipped else ("r.csv", "text/csv")
    return Report.from_json(
        {
            "id": 12,
            "report": "provisioning_csv",
            "status": "complete",
            "file_url": f"{BASE}/accounts/1/files/9/download",
            "attachment": {"id": 9, "filename": name, "content-type": ctype, "size": size},
        }
    )


LOCATIONS = st.one_of(
    st.sampled_from(
        [
            f"{BASE}/files/9/download",
            "/files/9/download?x=1",
            "https://school.canvas-user-content.com/files/9/abc",
            "https://instfs.example.com/objects/r.csv?X-Amz-Signature=s",
            "http://instfs.example.com/objects/r.csv",
            "https://school.instructure.com.evil.example/steal",
            "https://SCHOOL.instructure.com:443/files/9",
            "//evil.example/x",
            "javascript:alert(1)",
            "",
        ]
    ),
    st.text(max_size=40),
)
HOP_OUTCOMES = st.one_of(
    st.builds(
        lambda loc, s: Opened(s, {"location": loc}), LOCATIONS, st.sampled_from([301, 302, 303, 307, 308])
    ),
    st.builds(lambda s: Opened(s, {"content-length": "10"}), st.sampled_from([200, 403, 404, 500, 503, 429])),
    st.builds(Failed, st.sampled_from(list(Failure))),
)


@settings(max_examples=200, deadline=None, database=None)
@given(POLICIES, st.lists(HOP_OUTCOMES, min_size=1, max_size=30))
def test_download_chain_keeps_the_token_on_canvas_and_its_hops_bounded(
    policy: RetryPolicy, outcomes: list[Any]
) -> None:
    clock = FakeClock()
    gen = open_chain(BASE, canvas_report(), policy, clock=clock, rng=random.Random(0))
    opened, slept, hops_in_chain = 0, 0.0, 0
    step: Any = next(gen)
    final: Any = None
    try:
        while True:
            if isinstance(step, Sleep):
                assert not _signed_parts(step.reason), step.reason
                slept += step.seconds
                clock.now += step.seconds
                hops_in_chain = 0
                step = gen.send(None)
                continue
            assert isinstance(step, OpenHop)
            assert step.hop.send_auth == endpoints.same_origin(step.hop.url, BASE)
            if step.hop.send_auth:
                assert step.hop.url.lower().startswith(BASE)
            hops_in_chain += 1
            assert hops_in_chain <= endpoints.MAX_REDIRECTS + 1
            opened += 1
            assert opened <= policy.max_attempts * (endpoints.MAX_REDIRECTS + 1)
            step = gen.send(outcomes[(opened - 1) % len(outcomes)])
    except StopIteration as stop:
        final = stop.value
    except DownloadError as exc:
        final = exc
    assert isinstance(final, (Ready, DownloadError))
    assert not _signed_parts(str(final) if isinstance(final, DownloadError) else ""), final
    assert slept <= policy.max_elapsed


def _signed_parts(text: str) -> list[str]:
    """The paths and queries of the files host and the store (signatures) that `text` shows."""
    return [part for part in ("X-Amz", "/objects/", "/files/9", "/steal") if part in text]


BODIES = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(
        [b"", b"<!DOCTYPE html>", b"\xef\xbb\xbf  <html>", b"<!-- x --><body>", b"PK\x03\x04", b"id,name\n"]
    ),
    st.binary(max_size=200),
)


@SETTINGS
@given(BODIES, st.lists(st.integers(min_value=1, max_value=64), max_size=40), st.booleans(), st.booleans())
def test_download_verification_does_not_depend_on_chunking(
    body: bytes, cuts: list[int], honest: bool, zipped: bool
) -> None:
    """Whatever pieces the transport hands over (a first chunk of 1 byte included), same verdict."""
    size = len(body) if honest else len(body) + 1
    report = canvas_report(size=size, zipped=zipped)

    def verdict(chunks: list[bytes]) -> bytes | str:
        checker = ChunkChecker(report, size)
        out = b""
        try:
            for chunk in chunks:
                out += checker.feed(chunk)
            return out + checker.finish()
        except DownloadError as exc:
            return str(exc).split(" after ")[0].split(": received")[0]

    whole = verdict([body])
    pieces, rest = [], body
    for cut in cuts:
        if not rest:
            break
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        pieces.append(rest)
    assert verdict(pieces) == whole
    if isinstance(whole, bytes):
        assert whole == body
        assert honest
        assert (
            not body.removeprefix(b"\xef\xbb\xbf")
            .lstrip()
            .lower()
            .startswith((b"<!doctype", b"<html", b"<!--"))
        )
        assert not zipped or not body or body.startswith(b"PK")


# -- names -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(alphabet=st.sampled_from(list("ab./\\:C \x00\u202e名")), max_size=30))
def test_zip_member_names_are_refused_or_one_safe_component(raw: str) -> None:
    try:
        name = member_object_name(raw)
    except UnsafeNameError:
        return
    assert "/" not in name
    assert "\\" not in name
    assert ".." not in raw.split("/")
    assert not raw.startswith("/")
    assert name == safe_name(name)
    # The whole name, '/' made '_': a term name "2025/26" keeps both parts.
    assert name == safe_name("_".join(part for part in raw.split("/") if part not in ("", ".")))


@SETTINGS
@given(st.text(max_size=40))
def test_account_segment_cannot_leave_its_path_segment(value: str) -> None:
    try:
        segment = endpoints.account_segment(value)
    except CanvasConfigError:
        return
    for forbidden in ("/", "?", "#", " ", "\n", "\\"):
        assert forbidden not in segment
    assert unquote(segment) == (value.strip() or "self")


@SETTINGS
@given(st.text(max_size=30))
def test_report_segment_accepts_only_plain_report_names(value: str) -> None:
    try:
        segment = endpoints.report_segment(value)
    except CanvasConfigError:
        return
    assert segment == value
    assert segment.isascii()
    assert all(c.islower() or c.isdigit() or c == "_" for c in segment)


@SETTINGS
@given(st.one_of(st.integers(), st.text(max_size=12), st.booleans(), st.floats()))
def test_report_id_segment_accepts_exactly_positive_integers(value: Any) -> None:
    refused: CanvasConfigError | None = None
    try:
        segment = endpoints.report_id_segment(value)
    except CanvasConfigError as exc:
        refused = exc
    if refused is not None:
        assert str(refused).startswith("Invalid Canvas report id ")
        assert len(str(refused)) < 200
        assert not (isinstance(value, int) and not isinstance(value, bool) and value > 0)
        return
    assert not isinstance(value, bool)
    assert segment.isascii()
    assert segment.isdigit()
    assert int(segment) > 0
    assert int(segment) == int(str(value).strip())


@pytest.mark.parametrize("value", ["0", "-1", "1.0", "\u0661", "True", "", " "])
def test_report_id_segment_examples(value: str) -> None:
    with pytest.raises(CanvasConfigError):
        endpoints.report_id_segment(value)


@SETTINGS
@given(
    st.sampled_from(["0.0", "0", "-1.5", "0.00"]),
    st.sampled_from(["X-Rate-Limit-Remaining", "x-rate-limit-remaining"]),
    st.binary(max_size=40),
    st.integers(min_value=1, max_value=5),
)
def test_a_403_saying_the_bucket_is_empty_is_throttling_whatever_its_body(
    remaining: str, name: str, body: bytes, number: int
) -> None:
    """Legacy Canvas throttles with 403 and `x-rate-limit-remaining: 0.0`; the download chain never
    reads bodies, so the header alone must make it a retry (0.0 is falsy: a classic slip)."""
    policy = RetryPolicy(max_attempts=10, max_elapsed=1e6)
    attempt = Attempt(number, 0.0, status=403, headers={name: remaining}, body_excerpt=body.decode("latin-1"))
    assert isinstance(decide(policy, attempt, random.Random(0)), Retry)


@SETTINGS
@given(st.one_of(st.none(), st.sampled_from(["1", "150.0", "junk", ""])), st.text(max_size=40))
def test_a_403_with_quota_left_is_not_throttling(remaining: str | None, body: str) -> None:
    """A permission 403 (quota left, or no header) is final unless its body says rate limit."""
    headers = {} if remaining is None else {"x-rate-limit-remaining": remaining}
    decision = decide(RetryPolicy(), Attempt(1, 0.0, status=403, headers=headers, body_excerpt=body))
    assert isinstance(decision, Done) != ("rate limit exceeded" in body.lower())
