"""Thousands of triggers in one triggerer loop must share one aiohttp session per Canvas and token."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_canvas_reports.canvas.errors import PermissionDeniedError
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.transport import aio

from .helpers import FAST, NO_PERMISSION_TOKEN, Canvas

pytestmark = pytest.mark.usefixtures("close_sessions")


async def test_concurrent_hooks_in_one_loop_share_one_session(canvas: Canvas) -> None:
    setup = canvas.hook()
    ids = [setup.start_report("grade_export_csv").id for _ in range(5)]
    conn_id = canvas.connect(conn_id="canvas_shared")
    # One hook per "trigger", as the triggerer creates them.
    hooks = [CanvasHook(canvas_conn_id=conn_id, retry_policy=FAST) for _ in range(300)]

    reports = await asyncio.gather(
        *(hook.aget_report("grade_export_csv", ids[n % len(ids)]) for n, hook in enumerate(hooks))
    )

    assert [r.id for r in reports] == [ids[n % len(ids)] for n in range(len(hooks))]
    loop = asyncio.get_running_loop()
    shared = aio._SHARED[loop]
    assert len(shared) == 1
    (entry,) = shared.values()
    assert not entry.session.closed
    # Every hook's transport resolves to that one session.
    transports = await asyncio.gather(*(hook.atransport() for hook in hooks[:20]))
    assert {id(t._shared().session) for t in transports} == {id(entry.session)}
    assert canvas.counters.requests["status"] == len(hooks)


async def test_one_session_per_token_and_host(canvas: Canvas) -> None:
    first = canvas.hook()
    second = canvas.hook()  # same Canvas, same token, another connection id
    other_token = canvas.hook(token=NO_PERMISSION_TOKEN)

    await first.alist_available_reports()
    await second.alist_available_reports()
    with pytest.raises(PermissionDeniedError, match="read_reports"):
        await other_token.alist_available_reports()

    shared = aio._SHARED[asyncio.get_running_loop()]
    assert len(shared) == 2
    assert all(key[0] == canvas.url for key in shared)


async def test_close_shared_sessions_closes_them_and_a_new_one_is_made(canvas: Canvas) -> None:
    hook = canvas.hook()
    await hook.alist_available_reports()
    loop = asyncio.get_running_loop()
    (old,) = aio._SHARED[loop].values()

    await aio.close_shared_sessions()

    assert old.session.closed
    assert loop not in aio._SHARED
    await hook.alist_available_reports()  # reopens transparently
    (new,) = aio._SHARED[loop].values()
    assert new.session is not old.session


async def test_async_download_and_polls_share_the_session(canvas: Canvas) -> None:
    hook = canvas.hook()
    started = await hook.astart_report("grade_export_csv")
    canvas.finish()
    report = await hook.aget_report("grade_export_csv", started.id)

    async with await hook.aopen_report_file(report) as download:
        polls = await asyncio.gather(*(hook.aget_report("grade_export_csv", started.id) for _ in range(10)))
        body = b"".join([chunk async for chunk in download.chunks])

    assert body == canvas.file_bytes(started.id)
    assert {p.status for p in polls} == {"complete"}
    assert len(aio._SHARED[asyncio.get_running_loop()]) == 1
    assert canvas.counters.files_auth_headers == 0


async def test_one_hook_polling_several_reports_gets_each_one(canvas: Canvas) -> None:
    # The hook keeps the last status request it built; asking about another report must not reuse it.
    setup = canvas.hook()
    first = setup.start_report("grade_export_csv").id
    second = setup.start_report("provisioning_csv", {"users": True}).id
    hook = CanvasHook(canvas_conn_id=canvas.connect(conn_id="canvas_polls"), retry_policy=FAST)

    seen = [
        await hook.aget_report(report, report_id)
        for report, report_id in [
            ("grade_export_csv", first),
            ("grade_export_csv", first),
            ("provisioning_csv", second),
            ("grade_export_csv", first),
        ]
    ]

    assert [(r.report, r.id) for r in seen] == [
        ("grade_export_csv", first),
        ("grade_export_csv", first),
        ("provisioning_csv", second),
        ("grade_export_csv", first),
    ]
    assert canvas.counters.requests["status"] == 4
