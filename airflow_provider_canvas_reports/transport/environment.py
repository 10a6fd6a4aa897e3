"""What the worker's requests reads from the environment, read the same way for the triggerer.

requests honours HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, and verifies TLS against
REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or certifi's bundle. aiohttp ignores the proxy variables
(unless the session trusts the environment, which also sends ~/.netrc credentials to every host
of a download's chain) and verifies against OpenSSL's default paths. Without this module a
Canvas behind an egress proxy, or with a certificate from a private authority, works from the
worker and fails from the triggerer, or the other way round.
"""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit


class EnvironmentProxies:
    """The environment's proxy per origin, looked up once: the hosts of a wait are few and
    fixed, and a poll should not re-read the environment."""

    __slots__ = ("_by_origin",)

    def __init__(self) -> None:
        self._by_origin: dict[tuple[str, str | None, int | None], str | None] = {}

    def for_url(self, url: str) -> str | None:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.hostname, parts.port)
        try:
            return self._by_origin[origin]
        except KeyError:
            self._by_origin[origin] = proxy = _environment_proxy(url)
            return proxy


def _environment_proxy(url: str) -> str | None:
    # requests' own rules (NO_PROXY host suffixes and CIDR ranges, per-scheme and ALL_PROXY
    # variables, a scheme-less proxy taken as http://), so the two transports never disagree.
    from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy

    proxy = select_proxy(url, get_environ_proxies(url))
    if not proxy:
        return None
    try:
        return prepend_scheme_if_needed(proxy, "http")
    except ValueError:  # malformed: aiohttp refuses it as requests does, a failed connection
        return proxy


def ca_bundle() -> str:
    """The certificates requests verifies servers with: a file or a directory."""
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH


def tls_context() -> ssl.SSLContext:
    """A client TLS context that trusts what requests trusts (`ca_bundle`)."""
    bundle = ca_bundle()
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def certificate_refusal(exc: BaseException) -> str | None:
    """Why TLS verification refused the server's certificate, if that is what `exc` (from either
    transport, however deeply wrapped) comes down to; else None."""
    refused = False
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            # aiohttp's own error is one too, without the reason: that is in its args.
            if reason_text := getattr(current, "verify_message", None):
                return str(reason_text)
            refused = True
        # requests wraps urllib3's MaxRetryError (its `reason`), aiohttp keeps the ssl error in args.
        reason = getattr(current, "reason", None)
        pending += [
            current.__cause__,
            current.__context__,
            reason if isinstance(reason, BaseException) else None,
        ]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return "certificate verify failed" if refused else None
