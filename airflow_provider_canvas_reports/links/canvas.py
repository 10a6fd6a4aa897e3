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
# What the try running in this process knows of the link: the URL, or None when it failed before
# it had one. At the try's end the worker asks for the link; reading it here spares an XCom
# lookup, whose absence Airflow's client logs as an error beside the task's real one.
_KNOWN = "_canvas_reports_url"


def remember_link(operator: Any, url: str | None) -> None:
    """Record on the operator what this try knows of its link (see ``_KNOWN``)."""
    vars(operator)[_KNOWN] = url


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
        known = getattr(operator, "__dict__", {})
        if _KNOWN in known:  # this try ran here (a resumed deferral did not: it reads the XCom)
            return safe_link(known[_KNOWN])
        try:
            url = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        except Exception:  # a missing XCom backend row must not break the task's end
            return ""
        return safe_link(url)
