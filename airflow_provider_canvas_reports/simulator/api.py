"""The account reports API on the Canvas host."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from . import responses
from .auth import authorize
from .catalogue import CATALOGUE, ReportSpec, available, is_parallel, read_bool, selected_tables
from .context import CTX, SimContext
from .data import TABLES, GenParams
from .middleware import Handler
from .pagination import paginate
from .reportfiles import FileRequest
from .serialize import report_json
from .state import GENERIC_FAILURE, ReportState, error_code_failure
from .world import Sizes, TermError, mgp_terms, resolve_terms, term_label


def _offered(ctx: SimContext) -> list[ReportSpec]:
    return available(ctx.config.reports)


def _spec(ctx: SimContext, report: str) -> ReportSpec | None:
    names = ctx.config.reports
    if report not in CATALOGUE or (names is not None and report not in names):
        return None
    return CATALOGUE[report]


async def available_reports(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    auth = authorize(request, request.match_info["account_id"])
    if isinstance(auth, web.StreamResponse):
        return auth
    _spec_token, account = auth
    include = set(request.query.getall("include[]", [])) | set(request.query.getall("include", []))
    items = []
    for spec in _offered(ctx):
        runs = ctx.reports.index(spec.report, account.id)
        item: dict[str, Any] = {
            "title": spec.title,
            "parameters": spec.parameters_json(),
            "report": spec.report,
            "last_run": report_json(ctx, runs[0]) if runs else None,
        }
        if "description_html" in include:
            item["description_html"] = f"<p>{spec.description}</p>"
        if "parameters_html" in include or "params_html" in include:
            item["parameters_html"] = "".join(
                f'<label><input type="checkbox" name="parameters[{name}]"> {name}</label>'
                for name, _req, _desc in spec.parameters
            )
        items.append(item)
    # The whole list, no Link header: current Canvas does not paginate this one.
    return responses.json_response(items)


def _bracket_path(key: str) -> list[str] | None:
    """``parameters[a][b][]`` -> ["a", "b", ""]; None for other keys."""
    if not key.startswith("parameters["):
        return None
    parts = key[len("parameters") :].split("]")
    names = [p.lstrip("[") for p in parts[:-1]]
    return names if names and names[0] else None


def parse_form(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Rails-style nested form fields, values kept as strings (as Canvas echoes them)."""
    params: dict[str, Any] = {}
    for key, raw in pairs:
        path = _bracket_path(key)
        if path is None or not isinstance(raw, str):
            continue
        node = params
        for depth, name in enumerate(path):
            last = depth == len(path) - 1
            next_is_list = depth + 1 < len(path) and path[depth + 1] == ""
            if last:
                node[name] = raw
                break
            if next_is_list:
                existing = node.get(name)
                if not isinstance(existing, list):
                    existing = node[name] = []
                existing.append(raw)
                break
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
    return params


async def _read_parameters(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.text() or "{}")
        except ValueError:
            return responses.bad_request("invalid JSON body")
        params = body.get("parameters") if isinstance(body, dict) else None
        return dict(params) if isinstance(params, dict) else {}
    form = await request.post()
    return parse_form([*request.query.items(), *form.items()])


def _extra_text(spec: ReportSpec, params: dict[str, Any], term_ids: frozenset[int] | None) -> str:
    parts = [f"Term: {term_label(term_ids)};"]
    if read_bool(params.get("include_deleted")):
        parts.append("Include Deleted Objects;")
    if spec.kind == "sis":
        parts.append("Reports: " + " ".join(selected_tables(params)) + ";")
    return " ".join(parts)


def _failure(spec: ReportSpec, params: dict[str, Any]) -> str | None:
    """Why Canvas's report job would fail for these parameters (it checks at run time)."""
    if spec.kind == "sis" and not selected_tables(params):
        return error_code_failure(random.randint(1000, 99999))
    return None


def _file_request(ctx: SimContext, spec: ReportSpec, params: dict[str, Any], gen: GenParams) -> FileRequest:
    if spec.kind == "sis":
        tables: tuple[str, ...] = tuple(selected_tables(params))
    elif spec.kind == "mgp":
        tables = ()
    else:
        tables = (spec.table,)
    return FileRequest(
        report=spec.report,
        kind=spec.kind,
        tables=tables,
        gen=gen,
        pad_to_bytes=ctx.config.pad_to_bytes,
        zip_compresslevel=ctx.config.zip_compresslevel,
    )


def _rows_hint(request: FileRequest) -> int:
    if request.pad_to_bytes:
        return max(1, request.pad_to_bytes // 120)
    # An estimate (filters ignored): current_line only needs to rise plausibly.
    sizes = Sizes(request.gen.users)
    return sum(TABLES[table].count(sizes) for _name, table, _terms in request.members)


async def start_report(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    auth = authorize(request, request.match_info["account_id"])
    if isinstance(auth, web.StreamResponse):
        return auth
    token, account = auth
    spec = _spec(ctx, request.match_info["report"])
    if spec is None:
        return responses.not_found()
    params = await _read_parameters(request)
    if isinstance(params, web.Response):
        return params
    now = ctx.clock.now()
    try:
        term_ids = resolve_terms(params.get("enrollment_term_id"), now)
    except TermError as exc:
        return responses.bad_request(str(exc))
    if spec.kind == "mgp":
        term_ids = mgp_terms(params.get("enrollment_term_id"))
    fate = ctx.reports.take_fate(spec.report)
    failure = GENERIC_FAILURE if fate == "error" else _failure(spec, params)
    gen = GenParams(
        users=ctx.config.users,
        seed=ctx.config.seed,
        sis_format=spec.report == "sis_export_csv",
        include_deleted=read_bool(params.get("include_deleted")),
        term_ids=term_ids,
        account_id=account.id,
    )
    file_request = _file_request(ctx, spec, params, gen)
    state = ctx.reports.add(
        ReportState(
            id=ctx.reports.new_id(),
            report=spec.report,
            account_id=account.id,
            parameters=params,
            user_id=token.user_id,
            user_name=token.user_name,
            created_at=now,
            queue_seconds=ctx.config.queue_seconds,
            run_seconds=ctx.config.run_seconds,
            compile_seconds=ctx.config.compile_seconds,
            parallel=is_parallel(spec, params),
            fate=fate,
            extra_text=_extra_text(spec, params, term_ids),
            failure=failure,
            rows_hint=_rows_hint(file_request),
            clock=ctx.clock,
        )
    )
    ctx.counters.starts[spec.report] += 1
    if failure is None and fate is None:
        ctx.jobs.submit(state, file_request)
    # As of its creation: Canvas answers a start with status "created", progress 0.
    return responses.json_response(report_json(ctx, state, now=state.created_at))


def _find(request: web.Request) -> tuple[SimContext, ReportState] | web.StreamResponse:
    ctx = request.app[CTX]
    auth = authorize(request, request.match_info["account_id"])
    if isinstance(auth, web.StreamResponse):
        return auth
    _token, account = auth
    report_id = request.match_info.get("report_id", "")
    if _spec(ctx, request.match_info["report"]) is None or not report_id.isdigit():
        return responses.not_found()
    state = ctx.reports.find(int(report_id), request.match_info["report"], account.id)
    if state is None:
        return responses.not_found()
    return ctx, state


async def index_reports(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    auth = authorize(request, request.match_info["account_id"])
    if isinstance(auth, web.StreamResponse):
        return auth
    _token, account = auth
    # Canvas's index does not check the type (type_scope.active): an unknown one has no runs.
    report = request.match_info["report"]
    runs = ctx.reports.index(report, account.id)
    base = f"{ctx.canvas_url}{request.path}"
    page, link = paginate(runs, request.query, base)
    return responses.json_response([report_json(ctx, s) for s in page], headers={"link": link})


def _on_report(action: Callable[[SimContext, ReportState], web.StreamResponse]) -> Handler:
    """The handler of a route naming one report: the action runs on it once it is found."""

    @functools.wraps(action)
    async def handle(request: web.Request) -> web.StreamResponse:
        found = _find(request)
        if isinstance(found, web.StreamResponse):
            return found
        return action(*found)

    return handle


@_on_report
def report_status(ctx: SimContext, state: ReportState) -> web.StreamResponse:
    return responses.json_response(report_json(ctx, state))


@_on_report
def delete_report(ctx: SimContext, state: ReportState) -> web.StreamResponse:
    ctx.reports.delete(state)
    return responses.json_response(report_json(ctx, state))


@_on_report
def abort_report(ctx: SimContext, state: ReportState) -> web.StreamResponse:
    if not ctx.reports.abort(state):
        return responses.not_found()
    return responses.json_response(report_json(ctx, state))


async def login(request: web.Request) -> web.StreamResponse:
    if request.path == "/login":
        return responses.redirect(f"{request.app[CTX].canvas_url}/login/canvas")
    return responses.login_page()
