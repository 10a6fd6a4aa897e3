"""The three simulated hosts as aiohttp applications: routes and middleware."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from . import api, downloads
from .context import CTX, ENDPOINT_NAMES, SimContext
from .middleware import Handler, canvas_middleware, foreign_host_middleware
from .responses import lowercase_headers

_REPORTS = "/api/v1/accounts/{account_id}/reports"


def _host_app(ctx: SimContext, middleware: Middleware) -> web.Application:
    """One simulated host: its middleware, the shared context, Canvas's lowercase header names."""
    app = web.Application(middlewares=[middleware])
    app[CTX] = ctx
    app.on_response_prepare.append(lowercase_headers)
    return app


def canvas_app(ctx: SimContext) -> web.Application:
    """The Canvas host: the account reports API, file download route, login page."""
    app = _host_app(ctx, canvas_middleware)
    routes: list[tuple[str, str, Handler, str]] = [
        ("GET", _REPORTS, api.available_reports, "available"),
        ("GET", _REPORTS + "/", api.available_reports, "available"),
        ("POST", _REPORTS + "/{report}", api.start_report, "start"),
        ("GET", _REPORTS + "/{report}", api.index_reports, "index"),
        ("GET", _REPORTS + "/{report}/{report_id}", api.report_status, "status"),
        ("DELETE", _REPORTS + "/{report}/{report_id}", api.delete_report, "delete"),
        ("PUT", _REPORTS + "/{report}/{report_id}/abort", api.abort_report, "abort"),
        (
            "GET",
            "/accounts/{account_id}/files/{attachment_id}/download",
            downloads.canvas_download,
            "download",
        ),
        ("GET", "/files/{attachment_id}/download", downloads.canvas_download, "download"),
        ("GET", "/login", api.login, "login"),
        ("GET", "/login/canvas", api.login, "login"),
    ]
    for method, path, handler, _name in routes:
        app.router.add_route(method, path, handler)
    # Counters and faults address requests by these endpoint names.
    app[ENDPOINT_NAMES] = {handler: name for _m, _p, handler, name in routes}
    return app


def files_app(ctx: SimContext) -> web.Application:
    """The separate files domain: signed link in, redirect to the store out."""
    app = _host_app(ctx, foreign_host_middleware("files"))
    # Before the signed link's route, which would take "download" for a ticket.
    app.router.add_get("/files/{attachment_id}/download", downloads.files_session, name="files_session")
    app.router.add_get("/files/{attachment_id}/{ticket}", downloads.files_host, name="files")
    return app


def store_app(ctx: SimContext) -> web.Application:
    """The object store: presigned-looking URLs, bytes out."""
    app = _host_app(ctx, foreign_host_middleware("store"))
    app.router.add_get("/objects/{key:.+}", downloads.store_object, name="store")
    return app
