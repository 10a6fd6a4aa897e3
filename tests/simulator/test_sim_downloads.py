"""The download chain: Canvas host -> files host -> store, and who may carry the token."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlsplit

import requests
from sim_helpers import Client, SimFactory, finish


def _complete(sim, client: Client, report: str = "provisioning_csv", **params) -> dict:
    started = client.start(report, **params)
    finish(sim)
    body = client.status(report, started["id"]).json()
    assert body["status"] == "complete"
    return body


def _bearer(running) -> dict[str, str]:
    return {"Authorization": f"Bearer {running.token}"}


def _store_hop(running, files_hop: str) -> str:
    """Where the files domain sends a signed link, through its session for a CSV: the store link."""
    with requests.Session() as session:
        location = files_hop
        while not location.startswith(running.store_url):
            answer = session.get(location, allow_redirects=False, timeout=10)
            assert answer.status_code == 302, answer.status_code
            location = answer.headers["location"]
        return location


def test_a_csv_passes_the_files_domain_session_then_bytes(sim_env):
    # files_controller: the signed link opens a session (a cookie) and answers 302 to the file's
    # own URL without the link, for a file Canvas could show inline; only the cookie gets in there.
    sim, running, client = sim_env
    report = _complete(sim, client)
    attachment = report["attachment"]
    first = requests.get(report["file_url"], headers=_bearer(running), allow_redirects=False, timeout=10)
    assert first.status_code == 302
    files_hop = first.headers["location"]
    assert files_hop.startswith(running.files_url + f"/files/{attachment['id']}/")
    assert running.token not in files_hop
    second = requests.get(files_hop, allow_redirects=False, timeout=10)
    assert second.status_code == 302
    session_hop = second.headers["location"]
    assert session_hop == f"{running.files_url}/files/{attachment['id']}/download"
    cookie = second.cookies["_files_session"]
    without = requests.get(session_hop, allow_redirects=False, timeout=10)
    assert (without.status_code, without.headers["location"]) == (302, f"{running.url}/login/canvas")
    third = requests.get(session_hop, cookies={"_files_session": cookie}, allow_redirects=False, timeout=10)
    assert third.status_code == 302
    store_hop = third.headers["location"]
    assert store_hop.startswith(running.store_url + "/objects/")
    assert "X-Amz-Signature=" in store_hop
    assert "X-Amz-Expires=" in store_hop
    assert running.token not in store_hop
    final = requests.get(store_hop, timeout=10)
    assert final.status_code == 200
    assert final.headers["content-type"] == "text/csv"
    assert int(final.headers["content-length"]) == attachment["size"] == len(final.content)
    assert final.content.startswith(b"canvas_user_id,user_id,integration_id,")
    assert sim.counters.files_auth_headers == 0
    assert sim.counters.requests["download"] == 1
    assert sim.counters.requests["files"] == 1
    assert sim.counters.requests["files_session"] == 2
    assert sim.counters.requests["store"] == 1
    assert sim.counters.bytes_served == attachment["size"]


def test_a_zip_takes_two_redirects(sim_env):
    sim, running, client = sim_env
    report = _complete(sim, client, users="true", courses="true")
    first = requests.get(report["file_url"], headers=_bearer(running), allow_redirects=False, timeout=10)
    second = requests.get(first.headers["location"], allow_redirects=False, timeout=10)
    assert second.headers["location"].startswith(running.store_url + "/objects/")
    assert "set-cookie" not in second.headers


def test_requests_follows_and_drops_the_token_itself(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    resp = client.http.get(report["file_url"], timeout=10)  # a Session: it keeps the cookie
    assert resp.status_code == 200
    assert [r.status_code for r in resp.history] == [302, 302, 302]
    assert len(resp.content) == report["attachment"]["size"]
    assert sim.counters.files_auth_headers == 0


def test_files_host_and_store_refuse_authorization(sim_env):
    sim, running, client = sim_env
    report = _complete(sim, client)
    files_hop = requests.get(report["file_url"], headers=_bearer(running), allow_redirects=False, timeout=10)
    leaked = requests.get(files_hop.headers["location"], headers=_bearer(running), timeout=10)
    assert leaked.status_code == 400
    store_hop = _store_hop(running, files_hop.headers["location"])
    leaked_store = requests.get(store_hop, headers=_bearer(running), timeout=10)
    assert leaked_store.status_code == 400
    assert b"<Code>InvalidArgument</Code>" in leaked_store.content
    assert sim.counters.files_auth_headers == 2


def test_download_without_token_lands_on_login_page(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    resp = requests.get(report["file_url"], timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "Log In to Canvas" in resp.text
    # The attachment's own url carries a verifier, which no longer opens the file.
    resp = requests.get(report["attachment"]["url"], timeout=10)
    assert "Log In to Canvas" in resp.text


def test_download_with_bad_token_or_unknown_file(sim_env):
    sim, running, client = sim_env
    report = _complete(sim, client)
    bad = requests.get(report["file_url"], headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401
    missing = requests.get(
        f"{running.url}/accounts/1/files/999999/download", headers=_bearer(running), timeout=10
    )
    assert missing.status_code == 404
    other_account = report["file_url"].replace("/accounts/1/", "/accounts/2/")
    assert requests.get(other_account, headers=_bearer(running), timeout=10).status_code == 404


def test_links_expire(make_sim: SimFactory):
    sim, running, client = make_sim(link_ttl_seconds=60)
    report = _complete(sim, client)
    files_hop = requests.get(report["file_url"], headers=_bearer(running), allow_redirects=False, timeout=10)
    store_hop = _store_hop(running, files_hop.headers["location"])
    sim.advance(120)
    expired_store = requests.get(store_hop, timeout=10)
    assert expired_store.status_code == 403
    assert b"Request has expired" in expired_store.content
    expired_files = requests.get(files_hop.headers["location"], timeout=10)
    assert expired_files.status_code == 200  # ... the login page, not the file
    assert "Log In to Canvas" in expired_files.text


def test_tampered_links_are_refused(sim_env):
    sim, running, client = sim_env
    report = _complete(sim, client)
    files_hop = requests.get(report["file_url"], headers=_bearer(running), allow_redirects=False, timeout=10)
    location = files_hop.headers["location"]
    assert requests.get(location[:-4] + "beef", timeout=10).status_code == 403
    store_hop = _store_hop(running, location)
    tampered = store_hop.replace("X-Amz-Expires=300", "X-Amz-Expires=99999")
    assert requests.get(tampered, timeout=10).status_code == 403


def test_deleted_report_file_is_gone(sim_env):
    sim, running, client = sim_env
    report = _complete(sim, client)
    client.reports(f"/provisioning_csv/{report['id']}", method="DELETE")
    assert requests.get(report["file_url"], headers=_bearer(running), timeout=10).status_code == 404


def test_direct_download_answers_200_on_canvas_host(make_sim: SimFactory):
    sim, running, client = make_sim(direct_download=True)
    report = _complete(sim, client, users="true", courses="true")
    resp = requests.get(report["file_url"], headers=_bearer(running), allow_redirects=False, timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/zip"
    assert urlsplit(resp.url).netloc == urlsplit(running.url).netloc
    assert zipfile.ZipFile(io.BytesIO(resp.content)).namelist() == ["users.csv", "courses.csv"]
    assert sim.counters.requests["files"] == 0


def test_range_request_resumes(sim_env):
    sim, _running, client = sim_env
    report = _complete(sim, client)
    full = client.http.get(report["file_url"], timeout=10).content
    store_url = client.http.get(report["file_url"], timeout=10, stream=True).url
    part = requests.get(store_url, headers={"Range": "bytes=100-"}, timeout=10)
    assert part.status_code == 206
    assert part.content == full[100:]
