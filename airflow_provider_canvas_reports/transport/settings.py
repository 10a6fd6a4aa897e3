"""What a transport needs to talk to one Canvas: base URL, token, policy. Never printed whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from airflow_provider_canvas_reports import __version__
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy

USER_AGENT = f"airflow-provider-canvas-reports/{__version__}"
CHUNK_SIZE = 1024 * 1024
MAX_JSON_BODY = 32 * 1024 * 1024


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

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base_url + path_or_url
