"""`/pool` and `/pool/{pool}` (issue #15): list, add, show and remove storage pools.

Reads come from the cache; an add is checked against every other pool (one path per
pool) in a write serialized through `/pools` (`store.siblings`), retried on a concurrent
pool write. Removing a pool with volumes is a 409; an empty one goes: the nodes then stop and
undefine their libvirt pool, and never delete data in it. Reading needs `viewer`, writing
`admin` (`server.routes.ROLES`). Called through the route table.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from marshmallow import Schema, ValidationError, fields

from schemas.storage import PoolSchema, pool_conflicts
from server.access import Ctx, reading, settled_gone, writing
from server.audit import note_object
from server.errors import conflict, not_found
from server.http import json_response, load_body, path_name
from server.responses import DocList as PoolList
from server.responses import DocObject as PoolObject
from server.views import doc_object
from store import pools, txn
from store.client import Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Refused
from store.objects import new_object
from store.siblings import Siblings, write_serialized

_POOL = PoolSchema()
__all__ = ["PoolList", "PoolObject"]


class PoolDeleted(Schema):
    name = fields.String(required=True)
    deleted = fields.Boolean(required=True)


def cached_pool(c: Ctx, name: str) -> Versioned:
    found = c.cache.docs.get("Pool", name)
    if found is None:
        raise not_found("Pool", name)
    return found


async def list_pools(request: web.Request) -> web.Response:
    c = reading(request)
    items = [doc_object(found, "Pool") for name in c.cache.docs.names("Pool")
             if (found := c.cache.docs.get("Pool", name)) is not None]
    return json_response({"items": items, "count": len(items)})


async def get_pool(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(doc_object(cached_pool(c, path_name(request, "pool")), "Pool"))


async def create_pool(request: web.Request) -> web.Response:
    c = writing(request)
    doc = new_object(await load_body(request, _POOL))
    name = doc["metadata"]["name"]
    note_object(request, f"pool/{name}")
    await _write(c, name, doc)
    found = await _settled(c, name)
    return json_response(doc_object(found, "Pool"), status=201)


async def _write(c: Ctx, name: str, doc: Doc) -> None:
    def plan(seen: Siblings) -> list[txn.Op]:
        if name in seen.docs:
            raise conflict(f"Pool {name!r} exists already")
        clashes = pool_conflicts(name, doc["spec"], seen.specs())
        if clashes:
            raise ValidationError({"spec": clashes})
        return pools.create_ops(c.store, name, doc)

    try:
        await asyncio.to_thread(write_serialized, c.store, c.store.paths.pools, plan)
    except AlreadyExists:
        raise conflict(f"Pool {name!r} exists already") from None


async def _settled(c: Ctx, name: str) -> Versioned:
    found = await c.cache.wait_for(("Pool", name), lambda: c.cache.docs.get("Pool", name),
                                   timeout=10.0)
    if found is None:
        found = await asyncio.to_thread(c.store.get, c.store.paths.pool(name))
    return found


async def delete_pool(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "pool")

    def plan(seen: Siblings) -> list[txn.Op]:
        current = seen.docs.get(name)
        if current is None:
            raise not_found("Pool", name)
        return pools.delete_ops(c.store, name, version=current.version)

    try:
        await asyncio.to_thread(write_serialized, c.store, c.store.paths.pools, plan)
    except Refused:
        raise conflict(f"Pool {name!r} has volumes: delete them first") from None
    await settled_gone(c, "Pool", name)
    return json_response({"name": name, "deleted": True})
