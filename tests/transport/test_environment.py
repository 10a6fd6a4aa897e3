"""Both transports take the environment's proxy (HTTP_PROXY, NO_PROXY, ...) and trusted
certificates (REQUESTS_CA_BUNDLE, ...) as requests reads them.

Behind an egress proxy the worker (requests) reached Canvas and the triggerer (aiohttp, which
ignores the environment by default) did not: every deferred wait failed. A real forward proxy
here relays to the simulator and records what passed through it. For TLS, a Canvas with a
certificate from a private authority is served here with one made for the test.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.errors import CanvasError, DownloadError
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator
from airflow_provider_canvas_reports.transport import aio, environment
from airflow_provider_canvas_reports.transport.environment import EnvironmentProxies
from airflow_provider_canvas_reports.transport.settings import CanvasSettings
from airflow_provider_canvas_reports.transport.sync import SyncTransport
from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger
from tests.fixtures import transports
from tests.fixtures.http_servers import QuietHandler, serving, start
from tests.fixtures.simulator import connection_json, wait_until
from tests.fixtures.transports import one_call

POLICY = RetryPolicy(connect_timeout=2.0, read_timeout=5.0, max_elapsed=30.0)
REPORT = "provisioning_csv"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "transfer-encoding"}


def clear_environment(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Unset these variables, in either case (requests reads both), for the test's duration."""
    for name in names:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@dataclass
class ForwardProxy:
    """An HTTP forward proxy: what it relayed, as (method, host:port, carried a token)."""

    port: int = 0
    relayed: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hosts(self) -> set[str]:
        return {host for _, host, _ in self.relayed}


def _serve(proxy: ForwardProxy) -> ThreadingHTTPServer:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def relay(self) -> None:
            target = urlsplit(self.path)  # absolute form: the client knows it talks to a proxy
            if target.scheme != "http" or not target.netloc:
                self.send_error(400, "not a proxy request")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            proxy.relayed.append((self.command, target.netloc, "Authorization" in self.headers))
            upstream = http.client.HTTPConnection(target.netloc, timeout=10)
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
            upstream.close()

        do_GET = do_POST = do_PUT = do_DELETE = relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy.port = server.server_address[1]
    return start(server)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardProxy]:
    """A proxy the environment names for every http:// URL, loopback included."""
    clear_environment(monkeypatch, *PROXY_VARIABLES)
    relay = ForwardProxy()
    with serving(_serve(relay)):
        monkeypatch.setenv("HTTP_PROXY", relay.url)
        yield relay


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    with CanvasSimulator(users=12, run_seconds=0.0).run_in_thread() as running:
        yield running
    await aio.close_shared_sessions()


def start_complete(sim: RunningSimulator) -> Report:
    transport = SyncTransport(CanvasSettings(sim.url, sim.token, POLICY))
    try:
        started = transport.call(api.start("self", REPORT, {"users": True}))
        wait_until(sim.simulator, started.id, "complete")
        return transport.call(api.status("self", REPORT, started.id))
    finally:
        transport.close()


async def download(mode: str, sim: RunningSimulator, report: Report) -> bytes:
    return await transports.download(mode, CanvasSettings(sim.url, sim.token, POLICY), report)


def host_of(url: str) -> str:
    return urlsplit(url).netloc


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_requests_and_every_hop_of_a_download_go_through_the_proxy(
    sim: RunningSimulator, proxy: ForwardProxy, mode: str
) -> None:
    report = start_complete(sim)
    proxy.relayed.clear()

    body = await download(mode, sim, report)

    assert body.startswith(b"canvas_user_id,user_id,")
    canvas, files, store = (host_of(url) for url in (sim.url, sim.files_url, sim.store_url))
    # The Canvas hop, the files host's signed redirect and the store: each through the proxy.
    assert proxy.hosts() == {canvas, files, store}
    # The token went through the proxy only on its way to the Canvas host.
    assert {host for _, host, token in proxy.relayed if token} == {canvas}


async def test_a_deferred_wait_reaches_canvas_through_the_proxy(
    sim: RunningSimulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CANVAS_DEFAULT", connection_json(sim.url, sim.token))
    report = start_complete(sim)
    proxy.relayed.clear()
    trigger = ReportStatusTrigger(
        canvas_conn_id="canvas_default", report=REPORT, report_id=report.id, poll_interval=0.1
    )
    events = trigger.run()
    event = await asyncio.wait_for(anext(events), 30)
    await events.aclose()

    assert event.payload["status"] == "success"
    assert ("GET", host_of(sim.url), True) in proxy.relayed


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.0/8", "*"])
async def test_no_proxy_sends_requests_straight_to_canvas(
    sim: RunningSimulator, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch, mode: str, no_proxy: str
) -> None:
    monkeypatch.setenv("NO_PROXY", no_proxy)
    report = start_complete(sim)

    assert (await download(mode, sim, report)).startswith(b"canvas_user_id,user_id,")
    assert proxy.relayed == []


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://egress:3128"}, "https://canvas.example.edu/api/v1", "http://egress:3128"),
        ({"HTTPS_PROXY": "http://egress:3128"}, "http://canvas.example.edu/api/v1", None),
        ({"ALL_PROXY": "egress.corp:3128"}, "https://canvas.example.edu/", "http://egress.corp:3128"),
        (
            {"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": ".example.edu"},
            "https://canvas.example.edu/",
            None,
        ),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3/", None),
        ({"https_proxy": "http://u:p@egress:3128"}, "https://canvas.example.edu/", "http://u:p@egress:3128"),
        ({}, "https://canvas.example.edu/", None),
    ],
    ids=[
        "https",
        "other-scheme",
        "all-and-no-scheme",
        "no-proxy-suffix",
        "no-proxy-cidr",
        "lowercase",
        "none",
    ],
)
def test_the_proxy_is_the_one_requests_would_use(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str, expected: str | None
) -> None:
    clear_environment(monkeypatch, *PROXY_VARIABLES)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert EnvironmentProxies().for_url(url) == expected


def test_the_environment_is_read_once_per_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    proxies = EnvironmentProxies()
    monkeypatch.setenv("HTTPS_PROXY", "http://egress:3128")
    clear_environment(monkeypatch, "NO_PROXY")
    first = proxies.for_url("https://canvas.example.edu/api/v1/accounts/self/reports")
    monkeypatch.setenv("HTTPS_PROXY", "http://other:3128")
    # A poll does not re-read the environment: the same origin keeps its proxy.
    assert proxies.for_url("https://canvas.example.edu/api/v1/accounts/self/reports/x/1") == first
    assert proxies.for_url("https://files.example.edu/1") == "http://other:3128"


# -- trusted certificates --------------------------------------------------------------------------


@dataclass
class Authority:
    """A private certificate authority, and a server certificate it signed for 127.0.0.1."""

    ca_file: str
    cert_file: str
    key_file: str


def _certificates(directory: Path, *, names: list[x509.GeneralName]) -> Authority:
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "School Private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "canvas.school.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Authority(str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server.key"))
    Path(files.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert_file).write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    Path(files.key_file).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


STATUS_PATH = f"/api/v1/accounts/self/reports/{REPORT}/1"
STATUS_BODY = json.dumps({"id": 1, "report": REPORT, "status": "running", "progress": 40}).encode()


@dataclass
class TlsCanvas:
    """A Canvas over https with a privately signed certificate: how many TLS handshakes it saw."""

    url: str
    authority: Authority
    handshakes: list[str] = field(default_factory=list)


def _serve_tls(authority: Authority, handshakes: list[str]) -> ThreadingHTTPServer:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            status, body = (200, STATUS_BODY) if self.path == STATUS_PATH else (404, b"{}")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        def get_request(self) -> tuple[Any, Any]:
            raw, address = self.socket.accept()
            handshakes.append(str(address))
            tls = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            return tls, address

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that refused the certificate hangs up mid-handshake

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority.cert_file, authority.key_file)
    return Server(("127.0.0.1", 0), Handler)


def tls_canvas(tmp_path: Path, names: list[x509.GeneralName]) -> Iterator[TlsCanvas]:
    authority = _certificates(tmp_path, names=names)
    handshakes: list[str] = []
    with serving(_serve_tls(authority, handshakes)) as server:
        yield TlsCanvas(f"https://127.0.0.1:{server.server_address[1]}", authority, handshakes)


@pytest.fixture
def private_canvas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsCanvas]:
    clear_environment(monkeypatch, *PROXY_VARIABLES, *CA_VARIABLES)
    yield from tls_canvas(tmp_path, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])


@pytest.fixture
def misnamed_canvas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsCanvas]:
    """A certificate the authority signed for another host name."""
    clear_environment(monkeypatch, *PROXY_VARIABLES, *CA_VARIABLES)
    yield from tls_canvas(tmp_path, [x509.DNSName("canvas.school.test")])


async def status(mode: str, url: str) -> Report:
    report: Report = await one_call(
        mode, CanvasSettings(url, "t0ken-for-tls", POLICY), api.status("self", REPORT, 1)
    )
    return report


def complete_report(file_url: str) -> Report:
    """A complete report whose file Canvas serves from `file_url`."""
    attachment = {"id": 7, "filename": "users.csv", "content-type": "text/csv", "size": 10}
    return Report.from_json(
        {"id": 1, "report": REPORT, "status": "complete", "file_url": file_url, "attachment": attachment}
    )


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_private_authority_named_in_the_environment_is_trusted(
    private_canvas: TlsCanvas, monkeypatch: pytest.MonkeyPatch, mode: str, variable: str
) -> None:
    monkeypatch.setenv(variable, private_canvas.authority.ca_file)
    assert (await status(mode, private_canvas.url)).status == "running"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_unknown_authority_fails_at_once_and_says_what_to_set(
    private_canvas: TlsCanvas, mode: str
) -> None:
    with pytest.raises(CanvasError) as info:
        await status(mode, private_canvas.url)
    message = str(info.value)
    assert "the TLS certificate of Canvas could not be verified: unable to get local issuer" in message
    assert "REQUESTS_CA_BUNDLE" in message
    assert private_canvas.url in message
    assert "t0ken" not in message
    # Not retried: another attempt would meet the same certificate.
    assert len(private_canvas.handshakes) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_certificate_for_another_host_is_named_as_such(
    misnamed_canvas: TlsCanvas, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", misnamed_canvas.authority.ca_file)
    with pytest.raises(CanvasError, match=r"could not be verified: .*(mismatch|not valid).*127\.0\.0\.1"):
        await status(mode, misnamed_canvas.url)
    assert len(misnamed_canvas.handshakes) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_download_from_an_unknown_authority_fails_at_once_with_the_fix(
    private_canvas: TlsCanvas, mode: str
) -> None:
    report = complete_report(f"{private_canvas.url}/files/7/download")
    settings = CanvasSettings(private_canvas.url, "t0ken-for-tls", POLICY)
    with pytest.raises(DownloadError) as info:
        await transports.download(mode, settings, report)
    assert "the TLS certificate of Canvas could not be verified: unable to get local issuer" in str(
        info.value
    )
    assert private_canvas.url in str(info.value)
    assert "REQUESTS_CA_BUNDLE" in str(info.value)
    assert len(private_canvas.handshakes) == 1


# -- certificates that cannot be loaded --------------------------------------------------------------

UNUSABLE_BUNDLES = {
    "missing": ("does-not-exist.pem", None, "No such file or directory"),
    "no certificates": ("empty.pem", b"not a certificate\n", "no certificate or crl found"),
}


@pytest.fixture(params=sorted(UNUSABLE_BUNDLES))
def unusable_bundle(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """REQUESTS_CA_BUNDLE naming a file that holds no certificate (or none at all): the path and
    the reason expected in the error."""
    name, content, reason = UNUSABLE_BUNDLES[request.param]
    path = tmp_path / "bundle" / name
    path.parent.mkdir()
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    return str(path), reason


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_unusable_bundle_is_named_before_anything_is_sent(
    private_canvas: TlsCanvas, unusable_bundle: tuple[str, str], mode: str
) -> None:
    # Before: requests raised a bare OSError for a missing file and retried a file without
    # certificates as a reset connection for the whole budget; aiohttp raised FileNotFoundError.
    path, reason = unusable_bundle
    with pytest.raises(CanvasError) as info:
        await status(mode, private_canvas.url)
    assert f"the certificates to trust could not be loaded from {path} (REQUESTS_CA_BUNDLE): {reason}" in str(
        info.value
    )
    assert private_canvas.handshakes == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_download_with_an_unusable_bundle_is_refused_before_the_first_hop(
    private_canvas: TlsCanvas, unusable_bundle: tuple[str, str], mode: str
) -> None:
    path, _ = unusable_bundle
    report = complete_report(f"{private_canvas.url}/files/7/download")
    with pytest.raises(DownloadError, match=f"could not be loaded from {path}"):
        await transports.download(mode, CanvasSettings(private_canvas.url, "t0ken-for-tls", POLICY), report)
    assert private_canvas.handshakes == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_plain_http_needs_no_bundle(
    sim: RunningSimulator, unusable_bundle: tuple[str, str], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """As with requests, a bundle is read only for https: the triggerer used to fail every wait on
    an http Canvas (the simulator) when REQUESTS_CA_BUNDLE named a missing file."""
    clear_environment(monkeypatch, *PROXY_VARIABLES)
    reports = await one_call(mode, CanvasSettings(sim.url, sim.token, POLICY), api.available("self"))
    assert REPORT in {available.report for available in reports}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_authority_replaced_in_the_bundle_is_trusted_without_a_restart(
    private_canvas: TlsCanvas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The loaded bundle is kept between sessions, but not past a change on disk (a CA rotation)."""
    (tmp_path / "other").mkdir()
    other = _certificates(tmp_path / "other", names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(Path(other.ca_file).read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with pytest.raises(CanvasError, match="unable to get local issuer"):
        await status(mode, private_canvas.url)
    # Replaced whole, as configuration tools do (a file rewritten in place within the same clock
    # tick, at the same size, would look unchanged).
    replacement = tmp_path / "trusted.pem.new"
    replacement.write_bytes(Path(private_canvas.authority.ca_file).read_bytes())
    replacement.replace(bundle)
    assert (await status(mode, private_canvas.url)).status == "running"


def test_the_loaded_bundle_is_reused_while_it_is_unchanged(
    private_canvas: TlsCanvas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", private_canvas.authority.ca_file)
    first = environment.tls_context()
    assert environment.tls_context() is first
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", private_canvas.authority.cert_file)  # another file
    assert environment.tls_context() is not first


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_bundle_of_only_the_private_authority_names_itself_when_a_file_host_is_refused(
    private_canvas: TlsCanvas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A self-hosted Canvas (private authority) whose files live with another authority (a public
    store): requests, and so both transports, trust only the bundle's file; the error says so."""
    (tmp_path / "files").mkdir()
    files = tls_canvas(tmp_path / "files", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    files_host = next(files)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", private_canvas.authority.ca_file)
    report = complete_report(f"{files_host.url}/files/7/download")
    try:
        with pytest.raises(DownloadError) as info:
            await transports.download(
                mode, CanvasSettings(private_canvas.url, "t0ken-for-tls", POLICY), report
            )
    finally:
        files.close()
    message = str(info.value)
    assert (
        "the TLS certificate of the file host could not be verified: unable to get local issuer certificate "
        f"(the only certificates trusted are those in {private_canvas.authority.ca_file}, from REQUESTS_CA_BUNDLE)"
    ) in message
    assert "together with the public ones (certifi's bundle)" in message
    assert len(files_host.handshakes) == 1
