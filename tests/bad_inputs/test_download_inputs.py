"""Bad inputs to DownloadReportOperator: destinations, and files or links a hostile "Canvas" serves.

Files the simulator cannot produce (hostile ZIPs, HTML served as CSV, odd attachment names,
redirects to odd places) come from a tiny Canvas-shaped server started by the test, with the
real shape: Canvas host 302 -> a separate files host that serves the bytes. Each case asserts
the exact error and that the destination is untouched (no object, no hidden temp, no spool).
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from canvas_harness import (
    HANG_GUARD,
    REPORT,
    FakeCanvas,
    canvas_report,
    json_answer,
    listing,
    run_task,
)

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from tests.fixtures.stores import Store

POLICY = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1, max_elapsed=10, read_timeout=5)
REFUSED = "The ZIP was refused and nothing was written; it is not a well-formed report export: inspect it."


def serve(canvas: FakeCanvas, body: bytes, *, filename: str = "provisioning.csv", content_type: str = "text/csv",
          size: int | None = None, served_type: str | None = None, **report: Any) -> None:  # fmt: skip
    """The report is complete with this attachment; the files host serves `body`."""
    declared = len(body) if size is None else size

    async def status(request: web.Request) -> web.Response:
        return json_answer(
            canvas_report(
                7, "complete", size=declared, filename=filename, content_type=content_type, **report
            )
        )

    async def files(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"content-type": served_type or content_type})

    canvas.handlers["status"] = status
    canvas.handlers["files"] = files


def land(lake: Path, spool: Path, **kwargs: Any) -> Any:
    spool.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("destination", lake.as_uri())
    task = DownloadReportOperator(task_id="land", report=REPORT, report_id=7, canvas_retry_policy=POLICY,
                                  download_attempts=1, spool_dir=str(spool), **kwargs)  # fmt: skip
    return run_task(task)


def zip_bytes(
    members: dict[str, bytes], *, compress: bool = True, modes: dict[str, int] | None = None
) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            info.compress_type = method
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            zf.writestr(info, data)
    return buf.getvalue()


def untouched(lake: Path, spool: Path) -> None:
    assert listing(lake) == {}
    assert listing(spool) == {}


# -- destinations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "conn_id", "message"),
    [
        pytest.param(
            "nosuch://bucket/reports/",
            None,
            "Destination scheme 'nosuch' has no filesystem: install the Airflow provider that registers a "
            "filesystem for 'nosuch://'",
            id="unknown-scheme",
        ),
        pytest.param(
            "{lake}",
            "no_such_connection",
            "Destination connection 'no_such_connection' is not defined: create it (UI Admin > Connections, an "
            "AIRFLOW_CONN_NO_SUCH_CONNECTION environment variable or a secrets backend) or fix dest_conn_id.",
            id="destination-connection-missing",
        ),
        pytest.param(
            "s3://reports-bucket/canvas/",
            "no_such_aws",
            "Destination connection 'no_such_aws' is not defined: create it (UI Admin > Connections, an "
            "AIRFLOW_CONN_NO_SUCH_AWS environment variable or a secrets backend) or fix dest_conn_id.",
            id="s3-connection-missing",
        ),
        pytest.param(
            "s3://a@reports-bucket/canvas/",
            "b",
            "Destination names connection 'a' but dest_conn_id is 'b': give the connection in one place only.",
            id="two-connections",
        ),
        pytest.param(
            "", None, "Destination is empty: give a folder URL such as 's3://bucket/prefix/'", id="empty"
        ),
        pytest.param(
            "reports/canvas/",
            None,
            "Destination 'reports/canvas/' has no scheme: give a URL such as 's3://bucket/prefix/' or "
            "'file:///absolute/folder/'",
            id="relative-path",
        ),
        pytest.param(
            "C:\\data\\canvas",
            None,
            "Destination 'C:\\\\data\\\\canvas' looks like a Windows path: give a URL such as 'file:///data/reports/'",
            id="windows-path",
        ),
        pytest.param(
            "{file}",
            None,
            "Destination {file_uri} is a file, not a folder: give the folder that should receive the report "
            "files, e.g. 's3://bucket/reports/'.",
            id="an-existing-file",
        ),
        pytest.param(
            "{file}/sub/",
            None,
            "Destination {file_uri}/sub cannot be a folder: {file_path} is a file. Remove it "
            "or choose another destination.",
            id="a-folder-under-a-file",
        ),
        pytest.param(
            "file:lake/",
            None,
            "Destination 'file:lake/' is a relative path: give an absolute folder, e.g. 'file:///data/reports/'.",
            id="file-without-slashes",
        ),
        pytest.param(
            "file:~/lake/",
            None,
            "Destination 'file:~/lake/' is a relative path: give an absolute folder, e.g. 'file:///data/reports/'.",
            id="file-with-a-tilde",
        ),
        pytest.param(
            "local:lake/",
            None,
            "Destination 'local:lake/' is a relative path: give an absolute folder, e.g. 'file:///data/reports/'.",
            id="local-relative",
        ),
        pytest.param(
            "s3:///canvas/2026-11-27/",
            None,
            "Destination 's3:///canvas/2026-11-27/' names no bucket: give one, e.g. 's3://my-bucket/canvas/' (a "
            "template that renders the bucket may have rendered nothing).",
            id="s3-without-bucket",
        ),
        pytest.param(
            "abfs://",
            None,
            "Destination 'abfs://' names no container: give one, e.g. 'abfs://my-container/canvas/' (a template "
            "that renders the container may have rendered nothing).",
            id="azure-without-container",
        ),
    ],
)
def test_bad_destination_downloads_and_writes_nothing(
    canvas: FakeCanvas, tmp_path: Path, destination: str, conn_id: str | None, message: str
) -> None:
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    a_file = tmp_path / "not-a-folder.csv"
    a_file.write_bytes(b"keep\n")
    destination = destination.replace("{lake}", lake.as_uri()).replace("{file}", a_file.as_uri())
    message = message.replace("{file_uri}", "file://" + str(a_file)).replace("{file_path}", str(a_file))
    run = land(lake, spool, destination=destination, dest_conn_id=conn_id)
    assert run.message == message
    assert canvas.count("status") == 0  # checked before Canvas is asked anything
    assert canvas.count("download") == 0
    assert canvas.count("files") == 0
    untouched(lake, spool)
    assert a_file.read_bytes() == b"keep\n"


def test_a_path_object_is_refused_with_its_url(canvas: FakeCanvas, tmp_path: Path) -> None:
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool, destination=lake)
    assert run.message == (
        f"Destination must be a URL string or an ObjectStoragePath, got the path {str(lake)!r}: give it as a "
        f"URL, e.g. {lake.as_uri()!r}."
    )
    assert canvas.count("status") == 0
    untouched(lake, spool)


def test_missing_bucket_downloads_and_writes_nothing(
    canvas: FakeCanvas, tmp_path: Path, store: Store
) -> None:
    """A bucket (Azure: container) that does not exist fails before the download, not after it."""
    serve(canvas, b"id\n1\n")
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    scheme = store.folder.protocol
    run = land(
        lake, spool, destination=f"{scheme}://no-such-bucket-4711/reports/", dest_conn_id=store.conn_id
    )
    word = "container" if scheme == "abfs" else "bucket"
    assert run.message == (
        f"Destination {scheme}://no-such-bucket-4711/reports (connection {store.conn_id!r}): {word} "
        "'no-such-bucket-4711' does not exist. Create it, or fix the destination."
    )
    assert canvas.count("download") == 0
    assert canvas.count("files") == 0
    untouched(lake, spool)
    assert store.names() == []


# -- hostile ZIPs ---------------------------------------------------------------------------------

ZIP_CASES = [
    pytest.param(
        {"users.csv": b"a\n", "../../escaped.csv": b"x\n"},
        {},
        f"ZIP member '../../escaped.csv' is unsafe: path traversal ('..'). {REFUSED}",
        id="traversal",
    ),
    pytest.param(
        {"users.csv": b"a\n", "/etc/cron.d/evil": b"x\n"},
        {},
        f"ZIP member '/etc/cron.d/evil' is unsafe: it is an absolute path. {REFUSED}",
        id="absolute-name",
    ),
    pytest.param(
        {"C:/Windows/evil.csv": b"x\n"},
        {},
        f"ZIP member 'C:/Windows/evil.csv' is unsafe: it starts with a drive letter. {REFUSED}",
        id="drive-letter",
    ),
    pytest.param(
        {"..\\..\\evil.csv": b"x\n"},
        {},
        f"ZIP member '..\\\\..\\\\evil.csv' is unsafe: its name contains a backslash. {REFUSED}",
        id="backslash-traversal",
    ),
    pytest.param(
        {"users.csv": b"a\n", "link.csv": b"/etc/passwd"},
        {"link.csv": stat.S_IFLNK | 0o777},
        f"ZIP member 'link.csv' is a symbolic link. {REFUSED}",
        id="symlink",
    ),
    pytest.param(
        {"sub_users.csv": b"a\n", "sub/users.csv": b"b\n"},
        {},
        "ZIP members 'sub_users.csv' and 'sub/users.csv' would both land as 'sub_users.csv' ('/' becomes "
        f"'_', names compared case-insensitively). {REFUSED}",
        id="two-members-one-name",
    ),
    pytest.param(
        {"users.csv": b"a\n", "Users.CSV": b"b\n"},
        {},
        "ZIP members 'users.csv' and 'Users.CSV' would both land as 'Users.CSV' ('/' becomes '_', "
        f"names compared case-insensitively). {REFUSED}",
        id="names-differing-in-case",
    ),
    pytest.param(
        {"users\u202ecsv.exe": b"a\n"},
        {},
        "ZIP member 'users\\u202ecsv.exe' is unsafe: its file name is not usable (Unsafe object name "
        "'users\\u202ecsv.exe': it contains the control or invisible character U+202E. Use a plain file name "
        "such as 'users.csv' (no folders, no '..', no control characters).). " + REFUSED,
        id="bidi-override-in-name",
    ),
    pytest.param(
        {f"m{n}.csv": b"a\n" for n in range(1001)},
        {},
        "ZIP 'provisioning.zip' has 1001 entries, more than max_members=1000. "
        + REFUSED
        + " If it is genuine, raise "
        "ZipLimits.max_members.",
        id="too-many-members",
    ),
]


@pytest.mark.parametrize(("members", "modes", "message"), ZIP_CASES)
def test_hostile_zip_is_refused_and_nothing_lands(
    canvas: FakeCanvas, tmp_path: Path, members: dict[str, bytes], modes: dict[str, int], message: str
) -> None:
    serve(
        canvas, zip_bytes(members, modes=modes), filename="provisioning.zip", content_type="application/zip"
    )
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.elapsed < HANG_GUARD
    assert run.message == message
    untouched(lake, spool)
    assert not (tmp_path / "escaped.csv").exists()


def test_zip_bomb_is_refused_before_anything_is_written(canvas: FakeCanvas, tmp_path: Path) -> None:
    bomb = zip_bytes({"users.csv": b"a\n", "courses.csv": b"0" * (64 << 20)})
    serve(canvas, bomb, filename="provisioning.zip", content_type="application/zip")
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert re.fullmatch(
        r"ZIP member 'courses\.csv' expands \d+x \(\d+ -> 67108864 bytes\), over max_ratio=200: a ZIP bomb\. "
        + re.escape(REFUSED)
        + r" If it is genuine, raise ZipLimits\.max_ratio\.",
        run.message,
    ), run.message
    untouched(lake, spool)


def test_zip_member_lying_about_its_size_is_caught_and_nothing_lands(
    canvas: FakeCanvas, tmp_path: Path
) -> None:
    """A header that under-declares a member: the first member is staged, the liar is caught, and
    neither is ever committed."""
    good = zip_bytes({"a.csv": b"first\n", "b.csv": b"B" * 5000}, compress=True)
    # Forge b.csv's uncompressed size (central directory) down to 10 bytes.
    data = bytearray(good)
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    serve(canvas, bytes(data), filename="provisioning.zip", content_type="application/zip")
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == (
        "ZIP member 'b.csv' decompresses to more than the 10 bytes its header declares: a ZIP bomb or a forged "
        "header, not a genuine report export. Nothing was written: the 1 member(s) already extracted and "
        "verified (a.csv) were discarded before any was committed; every object already in the folder is as it was."
    )
    untouched(lake, spool)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            b"",
            "Canvas served an empty file for report #7; a report file is never empty. Nothing was written; run "
            "the report again.",
            id="empty-zip",
        ),
        pytest.param(
            b"user_id,login_id\n1,a\n",
            "The download of report #7 should be a ZIP but is not one. Nothing was written.",
            id="csv-posing-as-zip",
        ),
        pytest.param(
            b"PK\x03\x04" + b"\x00" * 100,
            "ZIP 'provisioning.zip' is not a readable ZIP archive (File is not a zip file). Nothing was written. Download "
            "the report again, or set extract_zip=False to land the file as it is.",
            id="truncated-zip",
        ),
    ],
)
def test_broken_zip_is_refused(canvas: FakeCanvas, tmp_path: Path, body: bytes, message: str) -> None:
    serve(canvas, body, filename="provisioning.zip", content_type="application/zip")
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == message
    untouched(lake, spool)


# -- files that are not the report ----------------------------------------------------------------

HTML_BODY = b"<!DOCTYPE html><html><head><title>Log In to Canvas</title></head><body>login</body></html>"


@pytest.mark.parametrize(
    ("body", "served_type", "message"),
    [
        pytest.param(
            HTML_BODY,
            "text/csv",
            "The download of report #7 is an HTML page, not the report file. Nothing was written.",
            id="html-served-as-csv",
        ),
        pytest.param(
            b"\xef\xbb\xbf  <!-- login -->" + HTML_BODY,
            "application/octet-stream",
            "The download of report #7 is an HTML page, not the report file. Nothing was written.",
            id="html-behind-a-bom-and-comment",
        ),
        pytest.param(
            HTML_BODY,
            "text/html; charset=utf-8",
            "The download of report #7 returned an HTML page (a login or error page) instead of the report file. "
            "Check the token can read files on this account, then retry.",
            id="html-content-type",
        ),
    ],
)
def test_a_page_instead_of_the_file_is_refused(
    canvas: FakeCanvas, tmp_path: Path, body: bytes, served_type: str, message: str
) -> None:
    serve(canvas, body, served_type=served_type)
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == message
    untouched(lake, spool)


def test_body_longer_than_the_attachment_is_refused(canvas: FakeCanvas, tmp_path: Path) -> None:
    async def files(request: web.Request) -> web.StreamResponse:
        # No Content-Length (chunked): only the body's length can tell.
        response = web.StreamResponse(headers={"content-type": "text/csv"})
        await response.prepare(request)
        await response.write(b"a,b\n" * 100)
        await response.write_eof()
        return response

    serve(canvas, b"a,b\n", size=4)
    canvas.handlers["files"] = files
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == (
        "The download of report #7 is longer than the 4 bytes Canvas announced. Nothing was written; retry the task."
    )
    untouched(lake, spool)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        pytest.param(
            "../../etc/cron.d/evil.csv",
            "Unsafe object name '../../etc/cron.d/evil.csv': it starts with '.' (relative path or hidden name). "
            "Use a plain file name such as 'users.csv' (no folders, no '..', no control characters).",
            id="path-traversal",
        ),
        pytest.param(
            "reports/provisioning.csv",
            "Unsafe object name 'reports/provisioning.csv': it contains '/' (a path, not a single name). Use a "
            "plain file name such as 'users.csv' (no folders, no '..', no control characters).",
            id="folder-in-name",
        ),
        pytest.param(
            ".bashrc",
            "Unsafe object name '.bashrc': it starts with '.' (relative path or hidden name). Use a plain file "
            "name such as 'users.csv' (no folders, no '..', no control characters).",
            id="hidden-name",
        ),
        pytest.param(
            "report\x00.csv",
            "Unsafe object name 'report\\x00.csv': it contains the control or invisible character U+0000. Use a "
            "plain file name such as 'users.csv' (no folders, no '..', no control characters).",
            id="nul-in-name",
        ),
    ],
)
def test_attachment_name_that_could_escape_is_refused(
    canvas: FakeCanvas, tmp_path: Path, filename: str, message: str
) -> None:
    serve(canvas, b"a,b\n", filename=filename)
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == message
    assert canvas.count("download") == 0  # refused before the file was fetched
    untouched(lake, spool)
    assert not (tmp_path / "etc").exists()


# -- links and redirects to odd places ----------------------------------------------------------


def redirect_to(location: str | None) -> Any:
    async def handler(request: web.Request) -> web.Response:
        headers = {"location": location} if location is not None else {}
        return web.Response(status=302, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("file_url", "location", "message"),
    [
        pytest.param(
            "file:///etc/passwd",
            None,
            "The report download points at a non-HTTP URL; refusing to follow it.",
            id="file-url-with-a-file-scheme",
        ),
        pytest.param(
            None,
            "javascript:alert(1)",
            "The report download points at a non-HTTP URL; refusing to follow it.",
            id="redirect-to-javascript",
        ),
        pytest.param(
            None,
            "http://[::1",
            "The report download points at a malformed URL; refusing to follow it.",
            id="redirect-to-a-malformed-url",
        ),
        pytest.param(
            None,
            "",
            "Canvas redirected the download without a Location header.",
            id="redirect-without-location",
        ),
    ],
)
def test_links_to_odd_places_are_not_followed(
    canvas: FakeCanvas, tmp_path: Path, file_url: str | None, location: str | None, message: str
) -> None:
    serve(canvas, b"a,b\n", file_url=file_url)
    if location is not None:
        canvas.handlers["download"] = redirect_to(location or None)
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == message
    assert canvas.count("files") == 0
    untouched(lake, spool)


def test_file_url_on_another_host_is_fetched_without_the_token(canvas: FakeCanvas, tmp_path: Path) -> None:
    serve(canvas, b"a,b\n", file_url=f"{canvas.files_url}/direct/provisioning.csv")
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.error is None, run.message
    assert listing(lake) == {"provisioning.csv": b"a,b\n"}
    assert canvas.count("download") == 0
    assert canvas.files_auth_headers == 0


# -- gaps found by this suite, fixed in 800d078 ---------------------------------------------------


def test_empty_csv_file_is_refused(canvas: FakeCanvas, tmp_path: Path) -> None:
    """Canvas writes a header row into every CSV: a 0-byte file is broken, not an empty table."""
    serve(canvas, b"", size=0)
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    run = land(lake, spool)
    assert run.message == (
        "Canvas served an empty file for report #7; a report file is never empty. Nothing was written; run the "
        "report again."
    )
    untouched(lake, spool)


def test_zip_limits_with_an_unknown_field_fail_at_parse_time(canvas: FakeCanvas) -> None:
    with pytest.raises(
        TypeError, match=r"^ZipLimits\.__init__\(\) got an unexpected keyword argument 'max_files'$"
    ):
        DownloadReportOperator(task_id="land", report=REPORT, report_id=7, destination="/x",
                               zip_limits={"max_files": 3})  # fmt: skip
    assert canvas.seen == []
