"""Access tokens: who is calling, and may they read reports on this account."""

from __future__ import annotations

from aiohttp import web

from . import responses
from .config import TokenSpec
from .context import CTX
from .world import Account, resolve_account


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    # Canvas also accepts the token as a query parameter.
    return request.query.get("access_token") or None


def token_spec(request: web.Request) -> tuple[str, TokenSpec] | None:
    token = bearer_token(request)
    if token is None:
        return None
    spec = request.app[CTX].config.token_specs.get(token)
    return (token, spec) if spec is not None else None


def authorize(request: web.Request, account_segment: str) -> tuple[TokenSpec, Account] | web.Response:
    """The caller's token and the path's account, or the error Canvas would answer."""
    found = token_spec(request)
    if found is None:
        return responses.invalid_token()
    _token, spec = found
    if not spec.scopes_ok:
        return responses.insufficient_scopes()
    account = resolve_account(account_segment)
    if account is None:
        return responses.not_found()
    if not spec.permissions:
        return responses.unauthorized()
    return spec, account
