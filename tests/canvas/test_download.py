"""Download checks: only complete reports with a file, and never an HTML page saved as the report."""

from __future__ import annotations

import pytest

from airflow_provider_canvas_reports.canvas.download import (
    HTML_STARTS,
    ZIP_MAGIC,
    Opened,
    OpenHop,
    Ready,
    check_first_bytes,
    check_response,
    check_size,
    is_zip,
    open_chain,
    require_file,
)
from airflow_provider_canvas_reports.canvas.endpoints import MAX_REDIRECTS
from airflow_provider_canvas_reports.canvas.errors import DownloadError
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy

FILE_URL = "https://school.instructure.com/accounts/1/files/987/download"


def make(
    status="complete",
    *,
    attachment=True,
    file_url=FILE_URL,
    name="grade_export_csv_01_Dec_2013_12_x.csv",
    content_type="text/csv",
    size=1234,
    extra_text=None,
    report="grade_export_csv",
) -> Report:
    data = {"id": 12, "report": report, "status": status, "progress": 100, "file_url": file_url}
    if attachment:
        data["attachment"] = {
            "id": 987,
            "filename": name,
            "display_name": name,
            "content-type": content_type,
            "size": size,
        }
    if extra_text:
        data["parameters"] = {"extra_text": extra_text}
    return Report.from_json(data)


CSV = make()
ZIP = make(
    name="provisioning_csv_01_Dec_2013_12.zip", content_type="application/zip", report="provisioning_csv"
)

# --------------------------------------------------------------------------- require_file


def test_complete_report_with_attachment_is_downloadable():
    require_file(CSV)
    require_file(ZIP)


@pytest.mark.parametrize("status", ["error", "aborted", "deleted"])
def test_failed_reports_have_no_file(status):
    report = make(status, extra_text="Failed, the report failed to generate a file. Please try again.")
    with pytest.raises(DownloadError) as info:
        require_file(report)
    message = str(info.value)
    assert f"'{status}'" in message
    assert "Failed, the report failed to generate a file." in message
    assert "no file to download" in message


def test_error_with_progress_100_and_attachment_is_still_refused():
    with pytest.raises(DownloadError):
        require_file(make("error"))


@pytest.mark.parametrize("status", ["created", "running", "compiling", "unknown", "mystery"])
def test_incomplete_reports_are_refused(status):
    with pytest.raises(DownloadError, match="not 'complete'") as info:
        require_file(make(status))
    assert "ReportCompleteSensor" in str(info.value)
    assert f"'{status}'" in str(info.value)


def test_complete_without_attachment_is_refused():
    with pytest.raises(DownloadError, match="no file attached"):
        require_file(make(attachment=False, file_url=None))
    with pytest.raises(DownloadError, match="no file attached"):
        require_file(make(attachment=False))
    with pytest.raises(DownloadError, match="no file attached"):
        require_file(make(file_url=None))


# --------------------------------------------------------------------------- is_zip


def test_is_zip():
    assert is_zip(ZIP)
    assert is_zip(make(name="x.ZIP", content_type=None))
    assert is_zip(make(name="report", content_type="application/x-zip-compressed"))
    assert not is_zip(CSV)
    assert not is_zip(make(attachment=False))
    assert not is_zip(make(name=None, content_type=None))


# --------------------------------------------------------------------------- check_response


def test_check_response_ok_returns_expected_size():
    assert check_response(200, {"Content-Type": "text/csv", "Content-Length": "1234"}, CSV) == 1234
    assert check_response(200, {"content-type": "application/octet-stream"}, CSV) == 1234


def test_check_response_without_attachment_size_uses_content_length():
    report = make(size=None)
    assert check_response(200, {"content-length": "99"}, report) == 99
    assert check_response(200, {}, report) is None
    assert check_response(200, {"content-length": "chunked"}, report) is None


@pytest.mark.parametrize("status", [201, 204, 206, 302, 400, 401, 403, 404, 500])
def test_check_response_refuses_anything_but_200(status):
    with pytest.raises(DownloadError, match=f"HTTP {status}") as info:
        check_response(status, {"Content-Type": "text/csv"}, CSV, where="https://files.example")
    assert "#12" in str(info.value)
    # The answering host is named, and the advice fits a refusal that follows a fresh link.
    assert "from https://files.example instead of the file" in str(info.value)
    assert "gets a fresh one on the next attempt" in str(info.value)


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/html"},
        {"content-type": "text/html; charset=utf-8"},
        {"CONTENT-TYPE": "TEXT/HTML"},
    ],
)
def test_check_response_refuses_html(headers):
    with pytest.raises(DownloadError, match="HTML page") as info:
        check_response(200, headers, CSV)
    assert "login" in str(info.value)


@pytest.mark.parametrize("length", ["1233", "1235", "0", "10000000"])
def test_check_response_refuses_a_length_other_than_the_attachment(length):
    with pytest.raises(DownloadError, match=f"announces {length} bytes") as info:
        check_response(200, {"Content-Length": length}, CSV)
    assert "1234" in str(info.value)
    assert "Nothing was written" in str(info.value)


@pytest.mark.parametrize("length", [" 1234 ", "abc", "-5", "1e3", "²", "١٢٣٤", ""])
def test_check_response_ignores_unreadable_content_length(length):
    assert check_response(200, {"content-length": length}, CSV) == 1234


def test_check_response_never_leaks_the_url():
    with pytest.raises(DownloadError) as info:
        check_response(403, {"Location": "https://s3.example/x?X-Amz-Signature=abc"}, CSV)
    assert "Signature" not in str(info.value)


# --------------------------------------------------------------------------- check_first_bytes


def test_csv_first_bytes_pass():
    check_first_bytes(b"canvas_user_id,user_id,login_id\n1,u1,l1\n", CSV)
    check_first_bytes(b"\xef\xbb\xbfid,name\n", CSV)
    check_first_bytes(b"", CSV)


@pytest.mark.parametrize(
    "chunk",
    [
        b"<!DOCTYPE html><html><head><title>Log In to Canvas</title>",
        b"<!doctype html>\n<html>",
        b"<html><body>Login</body></html>",
        b"  \r\n\t<HTML lang='en'>",
        b"<head><meta charset='utf-8'>",
        b"<body>expired</body>",
        b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>',
        b"\n\n<!DOCTYPE HTML PUBLIC>",
    ],
)
def test_html_disguised_as_csv_is_refused(chunk):
    with pytest.raises(DownloadError, match="HTML page") as info:
        check_first_bytes(chunk, CSV)
    assert "Nothing was written" in str(info.value)


def test_html_disguised_as_zip_is_refused():
    with pytest.raises(DownloadError):
        check_first_bytes(b"<!DOCTYPE html><html>", ZIP)


@pytest.mark.parametrize("chunk", [b"PK\x03\x04\x14\x00\x00\x00", b"PK\x05\x06" + b"\x00" * 18])
def test_zip_magic_passes(chunk):
    check_first_bytes(chunk, ZIP)


@pytest.mark.parametrize("chunk", [b"canvas_user_id,user_id\n", b"PK", b"\x1f\x8b\x08\x00", b"pk\x03\x04"])
def test_a_zip_report_that_is_not_a_zip_is_refused(chunk):
    with pytest.raises(DownloadError, match="should be a ZIP"):
        check_first_bytes(chunk, ZIP)


def test_a_csv_report_may_start_with_anything_but_html():
    check_first_bytes(b"PK\x03\x04", CSV)
    check_first_bytes(b"<not a tag but data", CSV)


def test_magic_constants():
    assert b"PK\x03\x04" in ZIP_MAGIC
    assert all(start == start.lower() for start in HTML_STARTS)


# --------------------------------------------------------------------------- check_size


def test_check_size():
    check_size(1234, 1234, CSV)
    check_size(1, None, CSV)
    check_size(10**12, None, CSV)


@pytest.mark.parametrize("expected", [0, None, 1234])
def test_check_size_refuses_an_empty_file(expected):
    with pytest.raises(DownloadError, match="empty file for report #12; a report file is never empty"):
        check_size(0, expected, CSV)


@pytest.mark.parametrize("received", [1233, 1235])
def test_check_size_refuses_a_short_or_long_body(received):
    with pytest.raises(DownloadError, match=f"received {received} of 1234 bytes") as info:
        check_size(received, 1234, CSV)
    assert "Nothing was written" in str(info.value)


class TestChunkChecker:
    """A transport may hand over a first chunk of a few bytes: the check must still see the head."""

    def _drain(self, checker, chunks):
        out = b"".join(checker.feed(c) for c in chunks)
        return out + checker.finish()

    def test_html_split_into_tiny_chunks_is_caught(self):
        from airflow_provider_canvas_reports.canvas.download import ChunkChecker

        page = b"<!DOCTYPE html><html><body>Log in to Canvas</body></html>" + b" " * 40
        checker = ChunkChecker(make(size=len(page)), len(page))
        with pytest.raises(DownloadError, match="HTML page"):
            self._drain(checker, [page[i : i + 3] for i in range(0, len(page), 3)])

    def test_zip_whose_first_chunk_is_shorter_than_the_magic_passes_whole(self):
        from airflow_provider_canvas_reports.canvas.download import ChunkChecker

        body = b"PK\x03\x04" + bytes(range(256)) * 4
        report = make(name="r.zip", content_type="application/zip", size=len(body))
        checker = ChunkChecker(report, len(body))
        assert self._drain(checker, [body[:2], body[2:3], body[3:100], body[100:]]) == body

    def test_file_shorter_than_the_head_is_released_by_finish(self):
        from airflow_provider_canvas_reports.canvas.download import ChunkChecker

        checker = ChunkChecker(make(size=10), 10)
        assert checker.feed(b"a,b\n1,2\n") == b""
        assert checker.feed(b"3\n") == b""
        assert checker.finish() == b"a,b\n1,2\n3\n"

    def test_bom_before_html_is_still_html(self):
        with pytest.raises(DownloadError, match="HTML page"):
            check_first_bytes(b"\xef\xbb\xbf<html><body>x</body></html>", make())


@pytest.mark.parametrize("status", [401, 403])
def test_refused_download_on_the_canvas_host_names_the_token(status):
    with pytest.raises(
        DownloadError, match=rf"refused the download of report #12 \(HTTP {status}\): the token"
    ):
        check_response(status, {}, make(), hop_sent_auth=True)


def test_refused_download_on_a_store_is_an_expired_link():
    with pytest.raises(DownloadError, match="A signed link that expired or was refused"):
        check_response(403, {}, make(), hop_sent_auth=False)


# --------------------------------------------------------------------------- the redirect chain


def walk(redirects: list[tuple[int, str]]) -> tuple[Ready, list[str]]:
    """Drive `open_chain` through these redirects to a 200: what it returned and the URLs it opened."""
    gen = open_chain("https://school.instructure.com", CSV, RetryPolicy(max_attempts=1))
    opened: list[str] = []
    step = next(gen)
    try:
        for status, location in redirects:
            assert isinstance(step, OpenHop)
            opened.append(step.hop.url)
            step = gen.send(Opened(status, {"location": location}))
        assert isinstance(step, OpenHop)
        opened.append(step.hop.url)
        gen.send(Opened(200, {"content-length": "1234", "content-type": "text/csv"}))
    except StopIteration as stop:
        return stop.value, opened
    raise AssertionError("open_chain did not finish at the 200")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(status):
    # S3 answers 307 for a region redirect, other stores 303: each is a hop, not a refusal.
    ready, opened = walk([(status, "https://files.example/f/987?sig=abc")])
    assert ready.expected_size == 1234
    assert opened == [FILE_URL, "https://files.example/f/987?sig=abc"]


def test_five_redirects_are_followed_and_a_sixth_is_a_loop():
    chain = [(302, f"https://files.example/hop/{n}") for n in range(MAX_REDIRECTS)]
    assert len(walk(chain)[1]) == MAX_REDIRECTS + 1
    with pytest.raises(DownloadError, match=f"redirected more than {MAX_REDIRECTS} times"):
        walk([*chain, (302, "https://files.example/hop/last")])


def test_a_body_longer_than_announced_is_refused_at_the_chunk_that_overflows():
    from airflow_provider_canvas_reports.canvas.download import ChunkChecker

    checker = ChunkChecker(make(size=10), 10)
    with pytest.raises(DownloadError, match="longer than the 10 bytes Canvas announced"):
        checker.feed(b"x" * 11)  # not only at finish(): the transfer stops here


# --------------------------------------------------------------------------- the files domain's session


def walk_with_cookies(answers: list[tuple[int, str, tuple[str, ...]]]) -> list[tuple[str, str | None]]:
    """Drive `open_chain` through these (status, location, Set-Cookie lines) to a 200: each hop
    it opened, with the Cookie header it would send."""
    gen = open_chain("https://school.instructure.com", CSV, RetryPolicy(max_attempts=1))
    opened: list[tuple[str, str | None]] = []
    step = next(gen)
    for status, location, cookies in answers:
        assert isinstance(step, OpenHop)
        opened.append((step.hop.url, step.cookie))
        step = gen.send(Opened(status, {"location": location}, set_cookies=cookies))
    assert isinstance(step, OpenHop)
    opened.append((step.hop.url, step.cookie))
    with pytest.raises(StopIteration):
        gen.send(Opened(200, {"content-length": "1234", "content-type": "text/csv"}))
    return opened


FILES = "https://school.canvas-user-content.com"


def test_the_files_domain_session_goes_back_to_the_files_domain_only():
    # files_controller: a CSV's signed link opens a session and answers 302 to the file's own
    # URL without the verifier, where only that session's cookie gets in.
    opened = walk_with_cookies(
        [
            (302, f"{FILES}/files/987/download?sf_verifier=v&ts=1&user_id=5", ("canvas_session=c; path=/",)),
            (302, f"{FILES}/files/987/download", ("_legacy_normandy_session=s1; path=/; HttpOnly", "x=1")),
            (302, "https://inst-fs.example/files/abc/report.csv?token=jwt", ()),
        ]
    )
    assert opened == [
        (FILE_URL, None),  # the Canvas host: the token, never a cookie (and its own is not kept)
        (f"{FILES}/files/987/download?sf_verifier=v&ts=1&user_id=5", None),
        (f"{FILES}/files/987/download", "_legacy_normandy_session=s1; x=1"),
        ("https://inst-fs.example/files/abc/report.csv?token=jwt", None),  # another origin
    ]


def test_a_cookie_goes_to_the_same_origin_only_port_included():
    opened = walk_with_cookies(
        [
            (302, f"{FILES}/files/987/download?sf_verifier=v", ()),
            (302, f"{FILES}:8443/files/987/download", ("s=1",)),  # set by FILES (port 443)
            (302, f"{FILES}/files/987/download", ()),
        ]
    )
    assert [cookie for _url, cookie in opened] == [None, None, None, "s=1"]


def test_an_unreadable_set_cookie_is_ignored_and_the_jar_is_bounded():
    from airflow_provider_canvas_reports.canvas.download import FilesSession
    from airflow_provider_canvas_reports.canvas.endpoints import Hop

    hop = Hop(f"{FILES}/files/987/download", send_auth=False)
    session = FilesSession()
    session.note(hop, ("no-equals-sign", "=nameless", "big=" + "x" * 5000, *(f"c{n}=v" for n in range(30))))
    header = session.header(hop)
    assert header is not None
    assert header.split("; ") == [f"c{n}=v" for n in range(FilesSession.MAX_COOKIES)]
    assert session.header(Hop(f"{FILES}/files/987/download", send_auth=True)) is None


# --------------------------------------------------------------------------- a file_url on another name


def test_a_login_page_after_a_file_url_on_another_host_names_the_host():
    # Canvas builds file_url on the root account's primary domain: a connection made with another
    # name of the same Canvas sends no token there, and the hop ends on the login page.
    report = make(file_url="https://canvas.school.edu/accounts/1/files/987/download")
    gen = open_chain("https://school.instructure.com", report, RetryPolicy(max_attempts=1))
    step = next(gen)
    assert isinstance(step, OpenHop)
    assert step.hop.send_auth is False
    gen.send(Opened(302, {"location": "https://canvas.school.edu/login/canvas"}))
    with pytest.raises(DownloadError) as info:
        gen.send(Opened(200, {"content-type": "text/html; charset=utf-8"}))
    assert str(info.value) == (
        "The download of report #12 returned an HTML page (a login or error page) instead of the report "
        "file. Check the token can read files on this account, then retry. (The report's file is on "
        "https://canvas.school.edu, not on the connection's Canvas host https://school.instructure.com, "
        "so the token was not sent there. If that is the same Canvas under its primary name, make it "
        "the connection's host.)"
    )


def test_a_login_page_after_the_token_went_along_says_nothing_of_hosts():
    gen = open_chain("https://school.instructure.com", CSV, RetryPolicy(max_attempts=1))
    next(gen)
    with pytest.raises(DownloadError) as info:
        gen.send(Opened(200, {"content-type": "text/html"}))
    assert "connection's Canvas host" not in str(info.value)
