"""Canvas URLs: the base URL rules, the account-reports paths, redirect decisions, and what of a
URL a log may show."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from airflow_provider_canvas_reports.canvas.errors import CanvasConfigError, DownloadError

_REPORT_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")  # fullmatch: "$" would let "x\n" through
_ACCOUNT_ID = re.compile(r"self|[0-9]+|sis_account_id:.+")  # fullmatch; ASCII digits only
MAX_REDIRECTS = 5


def is_loopback(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(host: str | None, *, allow_http: bool = False, port: int | None = None) -> str:
    """The Canvas base URL from a connection host (and its port field, if set).

    No scheme means https. Plain http is refused unless the host is a loopback address or the
    connection says `allow_http`, because the token would travel in clear text.
    """
    raw = (host or "").strip()
    if not raw:
        raise CanvasConfigError(
            "The Canvas connection has no host. Set it to your Canvas URL, e.g. https://school.instructure.com"
        )
    if _parsers_may_disagree(raw):
        # The token's origin must be the one every HTTP client reads out of it.
        raise CanvasConfigError(
            "The Canvas connection host contains a backslash, a space or a control character. Use "
            "https://<your canvas host>."
        )
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise CanvasConfigError(
            f"The Canvas connection host is not a valid URL ({exc}). Use https://<your canvas host>."
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise CanvasConfigError(
            f"The Canvas connection host uses the scheme '{scheme}'. Use https://<your canvas host>."
        )
    if parts.username or parts.password:  # checked first: the messages below must not echo them
        raise CanvasConfigError(
            "The Canvas connection host contains credentials. Put the API token in the password field only."
        )
    if not parts.hostname:
        raise CanvasConfigError(f"The Canvas connection host '{host}' has no host name.")
    if scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise CanvasConfigError(
            f"Refusing plain http:// to {parts.hostname}: the API token would travel unencrypted. "
            "Use https://, or set the connection extra allow_http=true if this is a trusted network."
        )
    netloc = parts.netloc.lower()
    if port is not None:
        # The URI form (canvas://:token@host:8443) and JSON connections put the port here.
        if parts.port is not None and parts.port != port:
            raise CanvasConfigError(
                f"The Canvas connection names two ports: {parts.port} in the host and {port} in the port "
                "field. Keep one."
            )
        if not 0 < port < 65536:
            raise CanvasConfigError(f"The Canvas connection port {port} is not a valid port.")
        host_part = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = f"{host_part}:{port}".lower()
    path = parts.path.rstrip("/")
    # People paste API URLs; the base is what comes before /api/v1.
    path = re.sub(r"/api(/v1)?$", "", path)
    _refuse_page_path(path, f"{scheme}://{netloc}")
    return f"{scheme}://{netloc}{path}"


# Paths of Canvas's pages and API calls: a host path holding one was pasted from the browser or
# an API call, and Canvas (even behind a path prefix, which may hold words like "api") lives
# before it. Only whole Canvas routes count: an API call, an account, course or user page by id,
# a login or profile page.
_PAGE_PATH = re.compile(
    r"/api/v1/|/(?P<kind>accounts|courses|users)/(?P<id>\d+|self|sis_[^/]+)(?:/|$)|/(?:login|profile)(?:/|$)",
    re.IGNORECASE,
)


def _refuse_page_path(path: str, origin_url: str) -> None:
    match = _PAGE_PATH.search(path)
    if match is None:
        return
    base = origin_url + path[: match.start()]
    account = match.group("id") if (match.group("kind") or "").lower() == "accounts" else None
    extra = f", and the connection extra's account_id to {account!r}" if account else ""
    raise CanvasConfigError(
        f"The Canvas connection host has the path {path!r}: that is a page of Canvas, not where Canvas "
        f"is. Set the host to {base}{extra}."
    )


Origin = tuple[str, str, int | None]  # scheme, host, port (the default port filled in)


def origin(url: str) -> Origin:
    parts = urlsplit(url)
    return origin_of(parts.scheme, parts.hostname, parts.port)


def origin_of(scheme: str, host: str | None, port: int | None) -> Origin:
    """An origin from its parts, as `origin` gives it (IPv6 hosts without brackets)."""
    scheme = scheme.lower()
    return scheme, (host or "").lower().strip("[]"), port or {"https": 443, "http": 80}.get(scheme)


def same_origin(url: str, other: str) -> bool:
    return origin(url) == origin(other)


def account_segment(account_id: str | int | None) -> str:
    value = "self" if account_id is None or account_id == "" else str(account_id).strip()
    if not _ACCOUNT_ID.fullmatch(value):
        raise CanvasConfigError(
            f"Invalid Canvas account_id '{value}'. Use 'self', a numeric account id, or 'sis_account_id:<id>'."
        )
    return quote(value, safe=":")


def report_segment(report: str) -> str:
    if not isinstance(report, str) or not _REPORT_NAME.fullmatch(report):
        raise CanvasConfigError(
            f"Invalid Canvas report name {report!r}. Use the report's type, such as 'provisioning_csv' "
            "(CanvasHook.list_available_reports() lists them)."
        )
    return report


def report_id_segment(report_id: int | str) -> str:
    text = str(report_id).strip()
    if isinstance(report_id, bool) or not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise CanvasConfigError(
            f"Invalid Canvas report id {str(report_id)[:40]!r}: it must be a positive integer, such as the "
            "'id' in the start task's XCom."
        )
    return str(int(text))


def available_path(account_id: str | int | None) -> str:
    return f"/api/v1/accounts/{account_segment(account_id)}/reports"


def reports_path(account_id: str | int | None, report: str) -> str:
    """Start (POST) and index (GET)."""
    return f"{available_path(account_id)}/{report_segment(report)}"


def report_path(account_id: str | int | None, report: str, report_id: int | str) -> str:
    """Status (GET) and delete (DELETE)."""
    return f"{reports_path(account_id, report)}/{report_id_segment(report_id)}"


def abort_path(account_id: str | int | None, report: str, report_id: int | str) -> str:
    return f"{report_path(account_id, report, report_id)}/abort"


def account_reports_page(base: str, account_id: str | int | None) -> str:
    """The account's reports page in the Canvas UI (Settings > Reports)."""
    return f"{base}/accounts/{account_segment(account_id)}/settings#tab-reports"


@dataclass(frozen=True)
class Hop:
    """The next request of a download: where, and whether the token may go with it."""

    url: str
    send_auth: bool


def first_hop(canvas_base: str, file_url: str) -> Hop:
    """The file URL Canvas gave: the token goes only if it points at the Canvas host itself."""
    absolute = _resolve(canvas_base + "/", file_url)
    return Hop(absolute, same_origin(absolute, canvas_base))


def next_hop(canvas_base: str, current: str, location: str | None, hops: int) -> Hop:
    """Follow one redirect. The token never leaves the Canvas host, whatever the chain does."""
    if not location:
        raise DownloadError("Canvas redirected the download without a Location header.")
    if hops >= MAX_REDIRECTS:
        raise DownloadError(
            f"The report download was redirected more than {MAX_REDIRECTS} times (a redirect loop). "
            "Canvas or its file store is misbehaving; retry later."
        )
    target = _resolve(current, location)
    if origin(current)[0] == "https" and origin(target)[0] == "http" and not is_loopback(origin(target)[1]):
        raise DownloadError(
            "The report download was redirected from https to plain http; refusing to follow."
        )
    return Hop(target, same_origin(target, canvas_base))


def _parsers_may_disagree(url: str) -> bool:
    """Whether `url` holds a backslash, space or control character: where URL parsers differ on the
    host (urllib3 ends the host at a backslash, urlsplit does not)."""
    return any(ch == "\\" or ch.isspace() or not ch.isprintable() for ch in url)


def _resolve(current: str, reference: str) -> str:
    """An absolute http(s) URL with a valid host and port, or a DownloadError (never a bare ValueError)."""
    try:
        target = urljoin(current, reference)
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a malformed or out-of-range port
    except ValueError:
        raise DownloadError("The report download points at a malformed URL; refusing to follow it.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise DownloadError("The report download points at a non-HTTP URL; refusing to follow it.")
    # The token's destination is decided on this parse; HTTP clients must not read another host
    # out of the same URL. Userinfo is where clients add credentials of their own. Genuine file
    # and store URLs have neither.
    if _parsers_may_disagree(target):
        raise DownloadError(
            "The report download points at a URL with a backslash, space or control character; "
            "refusing to follow it."
        )
    if parts.username is not None or parts.password is not None:
        raise DownloadError(
            "The report download points at a URL with credentials in it; refusing to follow it."
        )
    return target


def redact_url(url: str) -> str:
    """A URL fit for logs and errors: scheme and host only.

    Query strings carry signatures (presigned store URLs), and so do the paths of Canvas's
    files host (a signed ticket), so neither is ever shown.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def loggable_target(target: str, *, on_canvas: bool) -> str:
    """A request target (a path and query, or a whole URL) fit for a DEBUG request line.

    Query strings are always cut: presigned store URLs are signed there. The path stays only on
    the Canvas origin, whose API and file routes name accounts, reports and ids, and no secret;
    elsewhere (the files host, the store) it is hidden, because signed tickets and inst-fs tokens
    live in paths.
    """
    if on_canvas:
        path, query, _ = target.partition("?")
        return path + "?..." if query else path
    if "://" in target:
        return redact_url(target) + "/..."
    return "/..."
