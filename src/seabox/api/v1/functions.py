"""Native /v1 function routes (create, list, inspect, update, remove, call, results, logs, status) and the public
call URL `/call/NAME/SECRET[/sync]`, which needs no API key: the secret in its path is the credential."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode
from typing import Any

from aiohttp import web

from seabox.api.auth import tenant_of
from seabox.api.body import read_capped
from seabox.api.common import NdjsonStream, body, cloud, dump, flag
from seabox.errors import PayloadTooLarge
from seabox.model.function import MAX_BODY, Function, FunctionSpec, FunctionUpdate
from seabox.model.tenant import Tenant
from seabox.services.function_calls import CALL_ID_HEADER, answer_headers, forwarded
from seabox.services.function_exec import Reply
from seabox.store.functions import CallRecord

routes = web.RouteTableDef()
CALL_STATUS_HEADER = "X-Seabox-Call-Status"
MAX_WAIT = 3660.0  # seconds a result read with ?wait=1 waits at most (past any call's timeout)
LOG_CALLS = 20  # calls whose output `func logs NAME` shows
FOLLOW_POLL = 0.5  # seconds between looks for newly ended calls with ?follow=1
_CALL_ID = "{call_id:[0-9a-f]{32}}"


def view(fn: Function) -> dict[str, Any]:
    """A function as its tenant sees it: with the path of its public call URL."""
    return {**fn.model_dump(mode="json"), "call_path": f"/call/{fn.spec.name}/{fn.secret}"}


def _name(request: web.Request) -> str:
    return request.match_info["name"]


@routes.get("/v1/funcs")
async def list_functions(request: web.Request) -> web.Response:
    return dump([view(f) for f in cloud(request).functions.list(tenant_of(request))])


@routes.post("/v1/funcs")
async def create(request: web.Request) -> web.Response:
    spec = await body(request, FunctionSpec)
    return dump(view(await cloud(request).functions.create(tenant_of(request), spec)), 201)


@routes.get("/v1/funcs/calls/" + _CALL_ID)
async def get_result(request: web.Request) -> web.Response:
    wait = MAX_WAIT if flag(request, "wait") else 0.0
    record = await cloud(request).calls.result(tenant_of(request), request.match_info["call_id"], wait)
    return result_response(record)


@routes.get("/v1/funcs/{name}")
async def inspect(request: web.Request) -> web.Response:
    return dump(view(cloud(request).functions.get(tenant_of(request), _name(request))))


@routes.patch("/v1/funcs/{name}")
@routes.post("/v1/funcs/{name}")
async def update(request: web.Request) -> web.Response:
    change = await body(request, FunctionUpdate)
    return dump(view(await cloud(request).functions.update(tenant_of(request), _name(request), change)))


@routes.delete("/v1/funcs/{name}")
async def remove(request: web.Request) -> web.Response:
    await cloud(request).functions.remove(tenant_of(request), _name(request))
    return web.Response(status=204)


@routes.get("/v1/funcs/{name}/status")
async def status(request: web.Request) -> web.Response:
    return dump(cloud(request).functions.status(tenant_of(request), _name(request)))


@routes.post("/v1/funcs/{name}/call")
async def call(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    fn = cloud(request).functions.get(tenant, _name(request))
    return await _call(request, tenant, fn, flag(request, "sync"))


async def _call(request: web.Request, tenant: Tenant, fn: Function, sync: bool) -> web.Response:
    payload = await read_capped(request, MAX_BODY, lambda: PayloadTooLarge(
        f"a call's body may be at most {MAX_BODY} bytes (1 MiB)"))
    query = urlencode([(k, v) for k, v in request.rel_url.query.items() if k != "sync"])
    outcome = await cloud(request).calls.call(tenant, fn, payload, forwarded(list(request.headers.items())),
                                              sync=sync, method=request.method, query=query)
    if isinstance(outcome, Reply):
        return web.Response(status=outcome.status, body=outcome.body, headers=answer_headers(outcome.headers))
    return web.json_response({"CallId": outcome}, status=202, headers={CALL_ID_HEADER: outcome})


def result_response(record: CallRecord) -> web.Response:
    """An async call's result: the function's reply once it is done, its error once it failed, else 202."""
    headers = {CALL_ID_HEADER: record.id, CALL_STATUS_HEADER: record.status}
    if not record.ended:
        return web.json_response({"CallId": record.id, "Status": record.status}, status=202, headers=headers)
    if record.status == "done":
        return web.Response(status=record.result_status or 200, body=record.result_body or b"",
                            headers={**answer_headers(record.result_headers), **headers})
    return web.json_response({"message": record.error or record.status, "field": "call"},
                             status=record.result_status or 500, headers=headers)


def _log_line(record: CallRecord) -> dict[str, Any]:
    return {"call": record.id, "status": record.status, "result_status": record.result_status,
            "container": record.container, "created_at": record.created_at, "finished_at": record.finished_at,
            "error": record.error, "log": record.log_tail or ""}


@routes.get("/v1/funcs/{name}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    """The output of the function's latest calls (or of ?call=ID), as NDJSON; ?follow=1 adds calls as they end."""
    c = cloud(request)
    fn = c.functions.get(tenant_of(request), _name(request))
    call_id = request.query.get("call")
    if call_id is not None:
        return web.json_response(_log_line(c.functions.call_log(tenant_of(request), fn.spec.name, call_id)))
    out = await NdjsonStream(request).open()
    after = 0.0
    try:
        while True:
            for record in c.functions.ended_calls(fn, LOG_CALLS, after):
                await out.send(_log_line(record))
                after = max(after, record.finished_at or after)
            if not flag(request, "follow") or request.transport is None or request.transport.is_closing():
                break  # not following, or the follower went away
            await asyncio.sleep(FOLLOW_POLL)
    except ConnectionResetError:
        pass
    return await out.close()


# the public call URL ---------------------------------------------------------------------------
def _by_secret(request: web.Request) -> tuple[Tenant, Function]:
    """The function the URL's secret opens, and its tenant; 404 alike for a wrong secret or name."""
    c = cloud(request)
    fn = c.functions.public(request.match_info["name"], request.match_info["secret"])
    return c.store.tenant_by_id(fn.tenant), fn


@routes.route("*", "/call/{name}/{secret}")
async def public_call(request: web.Request) -> web.Response:
    tenant, fn = _by_secret(request)
    return await _call(request, tenant, fn, sync=False)


@routes.route("*", "/call/{name}/{secret}/sync")
async def public_call_sync(request: web.Request) -> web.Response:
    tenant, fn = _by_secret(request)
    return await _call(request, tenant, fn, sync=True)
