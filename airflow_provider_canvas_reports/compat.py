"""Names that moved between the Airflow versions this provider supports (3.1 to 3.3)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

try:  # common-compat masks secrets correctly before Airflow 3.3.2; prefer it when present.
    from airflow.providers.common.compat.connection import get_async_connection
except ImportError:  # pragma: no cover - depends on the installed common-compat

    async def get_async_connection(conn_id: str, hook: Any = None) -> Any:  # type: ignore[misc]
        return await BaseHook.aget_connection(conn_id)


__all__ = ["BaseHook", "get_async_connection"]
