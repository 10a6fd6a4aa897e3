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
import re
import ssl
import stat


class EnvironmentProxies:
    """The environment's proxy per origin, looked up once: the hosts of a wait are few and
    fixed, and a poll should not re-read the environment."""

    __slots__ = ("_by_origin",)

    def __init__(self) -> None:
        self._by_origin: dict[tuple[str, ...], str | None] = {}

    def for_url(self, url: str) -> str | None:
        # Keyed by the scheme and authority as written, split off without a parse: this runs for
        # every request (urlsplit's hostname and port cost more than the rest of the lookup).
        key = tuple(url.split("/", 3)[:3])
        try:
            return self._by_origin[key]
        except KeyError:
            self._by_origin[key] = proxy = _environment_proxy(url)
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


class UnusableCertificates(Exception):
    """The certificates to trust (`ca_bundle`) cannot be loaded: no TLS peer can be verified.

    Said before anything is sent, the same way by both transports: requests would raise a bare
    OSError for a missing file, and take a file without certificates for a reset connection.
    """


CERTIFI = "certifi's bundle"


def ca_bundle() -> tuple[str, str]:
    """The certificates requests verifies servers with (a file or a directory), and who named them."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if path := os.environ.get(variable):
            return path, variable
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return DEFAULT_CA_BUNDLE_PATH, CERTIFI


def _trusting() -> str:
    """Which certificates a refusal was judged against, when the environment chose them: a bundle
    of only the private authority refuses a download's public files host or store."""
    bundle, named_by = ca_bundle()
    return (
        ""
        if named_by == CERTIFI
        else f" (the only certificates trusted are those in {bundle}, from {named_by})"
    )


# The last context built, by the bundle's path and state on disk: loading a bundle parses every
# certificate in it (about 16 ms for certifi's), and each event loop opens its own sessions
# (``dag.test()`` runs each trigger in a loop of its own). A bundle replaced or rewritten (a CA
# rotation) has another inode, mtime or size, so it is read again.
_LAST_CONTEXT: tuple[tuple[str, int, int, int], ssl.SSLContext] | None = None


def tls_context() -> ssl.SSLContext:
    """A client TLS context that trusts what requests trusts (`ca_bundle`); UnusableCertificates
    when those cannot be loaded."""
    global _LAST_CONTEXT
    bundle, named_by = ca_bundle()
    try:
        found = os.stat(bundle)
        key = (bundle, found.st_ino, found.st_mtime_ns, found.st_size)
        if _LAST_CONTEXT is not None and _LAST_CONTEXT[0] == key:
            return _LAST_CONTEXT[1]
        if stat.S_ISDIR(found.st_mode):
            context = ssl.create_default_context(capath=bundle)
        else:
            context = ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; named for the reader
        raise UnusableCertificates(
            f"the certificates to trust could not be loaded from {bundle} ({named_by}): {_why(exc)}"
        ) from None
    _LAST_CONTEXT = (key, context)
    return context


def _why(exc: OSError) -> str:
    # OpenSSL's text without its code and source line: "[X509: ...] no certificate or crl found (_ssl.c:4154)"
    if isinstance(exc, ssl.SSLError):
        return re.sub(r"^\[[^\]]*\]\s*|\s*\(_ssl\.c:\d+\)$", "", str(exc)) or str(exc)
    return exc.strerror or str(exc)


def check_bundle(url: str) -> None:
    """For requests, which loads the bundle itself: UnusableCertificates before a request to `url`
    that could not be verified. certifi's own bundle is not loaded again (16 ms a worker process):
    requests loaded it when imported."""
    if ca_bundle()[1] != CERTIFI:
        trusted_for(url)


def trusted_for(url: str) -> ssl.SSLContext | None:
    """The TLS context for a request to `url`: None for plain http, which needs none (as with
    requests, an unusable bundle does not stop it)."""
    return tls_context() if url[:6].lower() == "https:" else None


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
        if isinstance(current, UnusableCertificates):
            return str(current)
        if isinstance(current, ssl.SSLCertVerificationError):
            # aiohttp's own error is one too, without the reason: that is in its args.
            if reason_text := getattr(current, "verify_message", None):
                return f"{reason_text}{_trusting()}"
            refused = True
        # requests wraps urllib3's MaxRetryError (its `reason`), aiohttp keeps the ssl error in args.
        reason = getattr(current, "reason", None)
        pending += [
            current.__cause__,
            current.__context__,
            reason if isinstance(reason, BaseException) else None,
        ]
        pending += [arg for arg in current.args if isinstance(arg, BaseException)]
    return f"certificate verify failed{_trusting()}" if refused else None
