"""What a transport needs to talk to one Canvas: base URL, token, policy. Never printed whole."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

from airflow_provider_canvas_reports import __version__
from airflow_provider_canvas_reports.canvas.exchange import Sleep
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy


def log_sleep(log: logging.Logger, sleep: Sleep) -> None:
    """Say why a request waits, at the wait's level. Never a URL or header."""
    if sleep.level <= logging.DEBUG:
        log.debug("Waiting %.1fs before the next Canvas request: %s", sleep.seconds, sleep.reason)
    elif sleep.reason:
        log.log(sleep.level, "%s; retrying in %.1fs", sleep.reason, sleep.seconds)


USER_AGENT = f"airflow-provider-canvas-reports/{__version__}"
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class CanvasSettings:
    base_url: str
    token: str = field(repr=False)
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __repr__(self) -> str:
        return f"CanvasSettings(base_url={self.base_url!r}, token=***)"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session_key(self) -> tuple[str, str]:
        """Identifies a (host, token) pair without keeping the token readable in a key."""
        return self.base_url, hashlib.sha256(self.token.encode()).hexdigest()

    @property
    def turn_key(self) -> str:
        """Names the (host, token) pair's turn ledger on a worker host; no way back to the token."""
        return hashlib.sha256("\n".join(self.session_key).encode()).hexdigest()[:32]

    def url(self, path_or_url: str) -> str:
        """The URL to send a request carrying the token to: always on the configured Canvas origin.

        Our own paths start with one "/". Anything else comes from a Link header: it is resolved
        against the base URL, and only its path and query are kept, so a proxy that builds http://
        links, another domain of the same Canvas, or a hostile header ("//evil.example/",
        ":8443/", ".evil.example/", which appended to the base would name another host or port)
        never gets the token.
        """
        if path_or_url.startswith("/") and not path_or_url.startswith("//"):
            return self.base_url + path_or_url
        parts = urlsplit(urljoin(self.base_url + "/", path_or_url))
        base = urlsplit(self.base_url)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
