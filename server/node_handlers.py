"""Handlers of nodes: `GET /node`, `GET /node/{node}`, `GET/POST /node/{node}/domain-state`.

Nodes come from the cache (spec, status with resources, alive, and whether a node is the
primary: the cache follows the coordinator election too, no ZooKeeper read). `flush`
sets spec.domainState `flushed`, `ready` sets `ready` (a version-checked
read-modify-write); the primary's controllers carry it out, and `wait`
follows the node's status until status.domainState gets there (504 after `timeout`).
Registered by `server.routes`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from schemas.operations import NodeDomainStateRequest
from server.access import Ctx, cached_node, reading, settled_node, writing
from server.deadline import extend_deadline, wait_limit
from server.errors import ApiError, not_found
from server.http import json_response, load_body, path_name
from server.views import node_domain_state, node_object
from store.errors import NotFound
from store.model import Node
from store.objects import node_patch
from vocabulary import DESIRED_DOMAIN_STATE

# One instance each: building a schema costs more than a load.
_NODE_DOMAIN_STATE_REQUEST = NodeDomainStateRequest()


async def current_primary(c: Ctx) -> str | None:
    return c.cache.primary


async def list_nodes(request: web.Request) -> web.Response:
    c = reading(request)
    leader = await current_primary(c)
    items = [node_object(n, primary=leader) for n in c.cache.all_nodes()]
    return json_response({"items": items, "count": len(items),
                          "resourceVersion": str(c.cache.watermark)})


async def get_node(request: web.Request) -> web.Response:
    c = reading(request)
    rec = cached_node(c, path_name(request, "node"))
    return json_response(node_object(rec, primary=await current_primary(c)))


async def get_domain_state(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(node_domain_state(cached_node(c, path_name(request, "node"))))


async def _await_domain_state(c: Ctx, name: str, *, want: str,
                              timeout: float | None) -> Node:
    def check() -> Node | None:
        rec = c.cache.node(name)
        if rec is None:
            raise not_found("Node", name)
        return rec if rec.domain_state == want else None

    limit = wait_limit(c.config, timeout)
    rec = await c.cache.wait_for(("Node", name), check, timeout=limit)
    if rec is not None:
        return rec
    now = cached_node(c, name)
    raise ApiError(504, "timeout", f"node {name!r} did not get {want} in {limit:g} s; it is "
                   f"{now.domain_state or 'unknown'}",
                   details=node_domain_state(now))


async def set_domain_state(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "node")
    data = await load_body(request, _NODE_DOMAIN_STATE_REQUEST)
    want = DESIRED_DOMAIN_STATE[data["state"]].value
    try:
        result = await asyncio.to_thread(c.store.update, c.store.paths.node(name),
                                         lambda doc: node_patch(doc, {"domainState": want}))
    except NotFound:
        raise not_found("Node", name) from None
    rec = await settled_node(c, name, result.mzxid)
    if data["wait"]:
        extend_deadline(request, wait_limit(c.config, data["timeout"]))
        rec = await _await_domain_state(c, name, want=want, timeout=data["timeout"])
    return json_response(node_domain_state(rec))
