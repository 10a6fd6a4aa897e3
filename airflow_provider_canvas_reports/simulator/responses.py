"""The answers Canvas, its files domain and its store give, byte for byte where it matters."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
NOT_FOUND_MESSAGE = "The specified resource does not exist."

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Log In to Canvas</title></head>
<body class="ic-Login-Body">
<form id="login_form" action="/login/canvas" method="post">
<label for="pseudonym_session_unique_id">Email</label>
<input type="text" id="pseudonym_session_unique_id" name="pseudonym_session[unique_id]">
<label for="pseudonym_session_password">Password</label>
<input type="password" id="pseudonym_session_password" name="pseudonym_session[password]">
<button type="submit">Log In</button>
</form>
</body>
</html>
"""

_GATEWAY_PAGES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, headers={"content-type": JSON_TYPE, **(headers or {})})


def not_found() -> web.Response:
    return json_response({"errors": [{"message": NOT_FOUND_MESSAGE}]}, 404)


def invalid_token() -> web.Response:
    return json_response(
        {"errors": [{"message": "Invalid access token."}]},
        401,
        {"www-authenticate": 'Bearer realm="canvas-lms"'},
    )


def unauthorized() -> web.Response:
    # A valid token without the permission: no WWW-Authenticate, unlike a bad token.
    return json_response(
        {"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]}, 401
    )


def insufficient_scopes() -> web.Response:
    return json_response({"errors": [{"message": "Insufficient scopes on access token."}]}, 401)


def bad_request(message: str) -> web.Response:
    return json_response({"error": message}, 400)


def throttled(mode: str | None, retry_after: int | None, remaining: float) -> web.Response:
    """The rate-limit answer. Canvas's middleware finishes it with X-Rate-Limit-Remaining set to
    the bucket's level once the up-front cost is refunded, which is above 0 as often as not
    (request_throttle.rb), so only the body and the status say "throttled"."""
    left = f"{remaining:.1f}"
    if mode == "403":
        return web.Response(
            text="403 Forbidden (Rate Limit Exceeded)\n",
            status=403,
            headers={"content-type": "text/plain; charset=utf-8", "x-rate-limit-remaining": left},
        )
    headers = {"content-type": "text/plain; charset=utf-8", "x-rate-limit-remaining": left}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return web.Response(text="429 Too Many Requests (Rate Limit Exceeded)\n", status=429, headers=headers)


def server_error(status: int, error_report_id: int = 0) -> web.Response:
    if status in _GATEWAY_PAGES:
        # Load balancers answer 502-504 with an HTML page, not Canvas JSON.
        title = _GATEWAY_PAGES[status]
        page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>\n"
        return web.Response(text=page, status=status, headers={"content-type": HTML_TYPE})
    return json_response(
        {"errors": [{"message": "An error occurred."}], "error_report_id": error_report_id}, status
    )


def login_page() -> web.Response:
    return web.Response(text=LOGIN_PAGE, headers={"content-type": HTML_TYPE})


def redirect(location: str) -> web.Response:
    body = f'<html><body>You are being <a href="{escape(location)}">redirected</a>.</body></html>'
    return web.Response(text=body, status=302, headers={"location": location, "content-type": HTML_TYPE})


def s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        "<RequestId>SIMULATOR</RequestId></Error>"
    )
    return web.Response(text=body, status=status, headers={"content-type": "application/xml"})


async def lowercase_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Hosted Canvas sends every header name in lower case; so do we.

    Runs after aiohttp has added its own headers (Content-Type, Date, Server ...).
    """
    items = list(response.headers.items())
    response.headers.clear()
    for name, value in items:
        response.headers.add(name.lower(), value)
