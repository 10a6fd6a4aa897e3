"""The proxy a request goes through, read from the environment as requests reads it.

The worker's transport (requests) honours HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY;
aiohttp ignores them unless told to trust the environment, which would also send ~/.netrc
credentials to every host of a download's chain. The triggerer's transport asks this instead,
so both take the same route to Canvas, its files host and the store.
"""

from __future__ import annotations

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
