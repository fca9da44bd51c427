"""`GET /vm/{vm}/figures` and `GET /node/{node}/figures` (issue #16): current CPU %,
memory and I/O rates, which herd-api gathers from the node's endpoint
(`reconciler.endpoint.figures`: two bulk stats samples) for `herdctl vm info` and
`node info`. A node's answer adds its totals. Viewer tokens.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from marshmallow import Schema, fields

from server.access import Ctx, reading
from server.consoles.nodelink import (
    NODE_SESSION,
    link,
    refusal,
    running_node,
    unreachable,
    vm_of,
)
from server.errors import conflict
from server.http import json_response, path_name

TIMEOUT = 30.0
RATES = ("cpuPercent", "diskReadBytesPerSecond", "diskWriteBytesPerSecond",
         "diskReadsPerSecond", "diskWritesPerSecond", "networkReceiveBytesPerSecond",
         "networkTransmitBytesPerSecond")


class VMFiguresSchema(Schema):
    state = fields.String()
    cpuPercent = fields.Float()
    memoryBytes = fields.Integer(allow_none=True)
    rssBytes = fields.Integer(allow_none=True)
    diskReadBytesPerSecond = fields.Float()
    diskWriteBytesPerSecond = fields.Float()
    diskReadsPerSecond = fields.Float()
    diskWritesPerSecond = fields.Float()
    networkReceiveBytesPerSecond = fields.Float()
    networkTransmitBytesPerSecond = fields.Float()


class VMFiguresAnswer(Schema):
    vm = fields.String()
    node = fields.String()
    figures = fields.Nested(VMFiguresSchema)


class NodeFiguresAnswer(Schema):
    node = fields.String()
    total = fields.Dict()
    vms = fields.Dict(keys=fields.String(), values=fields.Nested(VMFiguresSchema))


async def _ask(c: Ctx, request: web.Request, node: str) -> dict[str, Any]:
    url, headers = link(c, node).request("GET", "/figures")
    try:
        async with request.app[NODE_SESSION].get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as resp:
            if resp.status != 200:
                raise await refusal(node, resp)
            found: dict[str, Any] = (await resp.json()).get("vms") or {}
            return found
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise unreachable(node, e) from None


async def vm_figures(request: web.Request) -> web.Response:
    c = reading(request)
    name = path_name(request, "vm")
    node = running_node(vm_of(c, name))
    figures = (await _ask(c, request, node)).get(name)
    if figures is None:
        raise conflict(f"node {node} reports no figures for vm {name} (it left meanwhile?)")
    return json_response({"vm": name, "node": node, "figures": figures})


async def node_figures(request: web.Request) -> web.Response:
    c = reading(request)
    node = path_name(request, "node")
    vms = await _ask(c, request, node)
    total: dict[str, float] = {k: round(sum(float(f.get(k) or 0) for f in vms.values()), 1)
                               for k in RATES}
    total["memoryBytes"] = sum(int(f.get("memoryBytes") or 0) for f in vms.values())
    total["rssBytes"] = sum(int(f.get("rssBytes") or 0) for f in vms.values())
    return json_response({"node": node, "total": total, "vms": vms})
