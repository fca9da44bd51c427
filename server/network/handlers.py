"""`/network` and `/network/{net}` (issue #14): list, add, show, modify and remove the
cluster's networks. Reads come from the cache; writes go through
`server.network.writes.write_network` (checked against every other network, version
-checked through the parent znode). Removing a network that a VM still names is a 409
unless `force`. Reading needs `viewer`, writing `admin` (`server.routes.ROLES`). Called
through the route table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from marshmallow import Schema, fields

from schemas.domainnics import networks_named
from schemas.network import NetworkCreateRequest, NetworkModifyRequest
from schemas.operations import DeleteQuery
from server.access import Ctx, reading, settled_gone, writing
from server.audit import note_object
from server.errors import conflict, not_found
from server.http import json_response, load_body, load_query, path_name, read_json, validated
from server.network.writes import cached_network, write_network
from server.responses import DocList, DocObject
from server.views import network_object
from store import networks, txn
from store.client import Versioned
from store.codec import Doc
from store.errors import NotFound
from store.objects import new_object, with_spec
from store.siblings import Siblings, write_serialized

_CREATE = NetworkCreateRequest()
_MODIFY = NetworkModifyRequest()
_DELETE = DeleteQuery()


NetworkList, NetworkObject = DocList, DocObject  # the route table's names


class NetworkDeleted(Schema):
    name = fields.String(required=True)
    deleted = fields.Boolean(required=True)
    vms = fields.List(fields.String(), required=True)


async def list_networks(request: web.Request) -> web.Response:
    c = reading(request)
    items = [network_object(found) for name in c.cache.network_names()
             if (found := c.cache.network(name)) is not None]
    return json_response({"items": items, "count": len(items)})


async def get_network(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(network_object(cached_network(c, path_name(request, "net"))))


async def create_network(request: web.Request) -> web.Response:
    c = writing(request)
    doc = new_object(await load_body(request, _CREATE))
    name = doc["metadata"]["name"]
    note_object(request, f"network/{name}")

    def change(current: Versioned | None) -> Doc:
        if current is not None:
            raise conflict(f"Network {name!r} exists already")
        return doc

    return json_response(network_object(await write_network(c, name, change)), status=201)


def with_spec_changes(current: Versioned | None, name: str,
                      changes: dict[str, Any]) -> Doc | None:
    """The stored network with spec keys changed (`store.objects.with_spec`: generation
    moved on; None when nothing changes); 404 when it is gone."""
    if current is None:
        raise not_found("Network", name)
    return with_spec(current.doc, **changes)


async def modify_network(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "net")
    raw = await read_json(request)
    loaded = validated(_MODIFY, raw)
    changes = {key: loaded[key] for key in raw}  # only what the body gives

    return json_response(network_object(await write_network(
        c, name, lambda current: with_spec_changes(current, name, changes))))


def vms_naming(c: Ctx, network: str) -> list[str]:
    """The VMs whose NICs name `network` (a scan of the cache: removes are rare)."""
    return [vm.name for vm in c.cache.all_vms()
            if network in networks_named(vm.spec_doc.get("xml", ""))]


async def delete_network(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "net")
    force = load_query(request, _DELETE)["force"]
    cached_network(c, name)
    users = vms_naming(c, name)
    if users and not force:
        raise conflict(f"Network {name!r} is named by {len(users)} VM(s) ({', '.join(users[:5])}"
                       f"{', ...' if len(users) > 5 else ''}); give force=true to remove it "
                       "anyway", vms=users[:100])
    await _delete(c, name)
    await settled_gone(c, "Network", name)
    return json_response({"name": name, "deleted": True, "vms": users})


async def _delete(c: Ctx, name: str) -> None:
    def plan(seen: Siblings) -> list[txn.Op]:
        if name not in seen.docs:
            raise not_found("Network", name)
        return networks.delete_ops(c.store, name)

    try:
        await asyncio.to_thread(write_serialized, c.store, c.store.paths.networks, plan)
    except NotFound:
        raise not_found("Network", name) from None
