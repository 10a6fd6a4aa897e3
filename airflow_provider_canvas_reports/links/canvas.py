"""Extra link from a task to its account's reports page in Canvas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

# The operators push this key right after the start, before any waiting, so the link exists
# even when the task then fails or is killed.
XCOM_KEY = "canvas_reports_url"


def safe_link(url: Any) -> str:
    """Only an http(s) URL, without userinfo or query string: a link never carries a credential."""
    if not isinstance(url, str) or not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, "", parts.fragment))


class CanvasReportsLink(BaseOperatorLink):
    """'Canvas reports': the account's Settings > Reports page, where runs can be seen and stopped."""

    name = "Canvas reports"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            url = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        except Exception:  # a missing XCom backend row must not break the task's end
            return ""
        return safe_link(url)
