"""`GET /vm/{vm}/log` (issue #16): the VM's console log, from the node it runs on (or
last ran on), the last `console_log_bytes` of it there (`reconciler.endpoint.consolelogs`).

`lines=N` keeps the last N lines; `follow=true` goes on streaming what the guest prints
until the client leaves (the response has no end; herd-api's deadline is lifted). Bytes as
the guest wrote them (`application/octet-stream`). Viewer tokens.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from marshmallow import Schema, fields, validate

from server.access import reading
from server.consoles.nodelink import NODE_SESSION, link, refusal, unreachable, vm_of
from server.deadline import lift_deadline
from server.errors import conflict
from server.http import load_query, path_name

READ_TIMEOUT = 30.0  # seconds for a node to answer a (not followed) log


class LogQuery(Schema):
    class Meta:
        unknown = "raise"

    lines = fields.Integer(load_default=None, strict=False, validate=validate.Range(
        min=0, max=1_000_000, error="must be between 0 and 1000000"))
    follow = fields.Boolean(load_default=False)


async def vm_log(request: web.Request) -> web.StreamResponse:
    c = reading(request)
    name = path_name(request, "vm")
    query = load_query(request, LogQuery())
    vm = vm_of(c, name)
    node = vm.running_on or vm.status_node or vm.last_node
    if node is None:
        raise conflict(f"vm {name} has not run on any node: it has no console log")
    params = {} if query["lines"] is None else {"lines": str(query["lines"])}
    if query["follow"]:
        params["follow"] = "1"
    url, headers = link(c, node).request("GET", f"/vm/{name}/log", **params)
    session = request.app[NODE_SESSION]
    timeout = aiohttp.ClientTimeout(total=None if query["follow"] else READ_TIMEOUT)
    try:
        async with session.get(url, headers=headers, timeout=timeout) as upstream:
            if upstream.status != 200:
                raise await refusal(node, upstream)
            if not query["follow"]:
                return web.Response(body=await upstream.read(),
                                    content_type="application/octet-stream")
            lift_deadline(request)
            resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Cache-Control": "no-cache"})
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client left, or the node went away: the stream just ends
            return resp
    except (aiohttp.ClientError, TimeoutError) as e:
        raise unreachable(node, e) from None
