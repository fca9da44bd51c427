"""A network's parts (issue #14): its DHCP reservations (`/network/{net}/reservation`,
`.../reservation/{mac}`), its firewall rules (`/network/{net}/acl`, `.../acl/{rule}`),
both kept in the network's document and written through
`server.network.writes.write_network` (so every network rule is checked again), and its
leases (`/network/{net}/lease`: what the gateway's dnsmasq handed out, read from
ZooKeeper, where the primary records them). Reading needs `viewer`, writing `admin`.
Called through the route table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from marshmallow import INCLUDE, Schema, ValidationError, fields

from schemas.netaddr import normal_mac
from schemas.netrules import AclRuleSchema
from schemas.network import ReservationSchema
from server.access import Ctx, reading, writing
from server.audit import note_object
from server.errors import ApiError, conflict, not_found
from server.http import json_response, load_body, path_name
from server.network.handlers import with_spec_changes
from server.network.writes import cached_network, write_network
from store import networks
from store.client import Versioned
from store.codec import Doc
from store.errors import NotFound

_RESERVATION = ReservationSchema()
_RULE = AclRuleSchema()


class ItemList(Schema):
    items = fields.List(fields.Dict(), required=True)
    count = fields.Integer(required=True)


class ItemObject(Schema):
    """One reservation or rule (as added), or what was removed."""

    class Meta:
        unknown = INCLUDE


def _items(items: list[Any]) -> web.Response:
    return json_response({"items": items, "count": len(items)})


async def list_reservations(request: web.Request) -> web.Response:
    c = reading(request)
    spec = cached_network(c, path_name(request, "net")).doc.get("spec", {})
    return _items(spec.get("reservations", []))


async def list_rules(request: web.Request) -> web.Response:
    c = reading(request)
    rules = cached_network(c, path_name(request, "net")).doc.get("spec", {}).get("acl", [])
    return _items(sorted(rules, key=lambda r: (r["direction"], r["order"], r["name"])))


async def list_leases(request: web.Request) -> web.Response:
    c = reading(request)
    name = path_name(request, "net")
    cached_network(c, name)
    try:
        found = await asyncio.to_thread(networks.leases, c.store, name)
    except NotFound:
        raise not_found("Network", name) from None
    return _items(found)


async def add_reservation(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "net")
    entry = await load_body(request, _RESERVATION)
    note_object(request, f"network/{name}")
    found = await _append(c, name, "reservations", entry,
                          same=lambda r: r["mac"] == entry["mac"])
    return json_response(found, status=201)


async def add_rule(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "net")
    entry = await load_body(request, _RULE)
    note_object(request, f"network/{name}")
    found = await _append(c, name, "acl", entry, same=lambda r: r["name"] == entry["name"])
    return json_response(found, status=201)


async def _append(c: Ctx, name: str, key: str, entry: dict[str, Any], *,
                  same: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Add `entry` to the network's list `key` (409 if one like it is there)."""
    def change(current: Versioned | None) -> Doc | None:
        listed = current.doc.get("spec", {}).get(key, []) if current is not None else []
        if any(same(item) for item in listed):
            raise conflict(f"Network {name!r} has that {key[:-1] if key != 'acl' else 'rule'} "
                           "already: remove it first")
        return with_spec_changes(current, name, {key: [*listed, entry]})

    await write_network(c, name, change, field=("spec",))
    return entry


async def remove_reservation(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "net")
    try:
        mac = normal_mac(request.match_info["mac"])
    except ValidationError as e:
        raise ValidationError({"mac": e.messages}) from None
    await _remove(c, name, "reservations", lambda r: r["mac"] == mac, what=f"reservation {mac}")
    return json_response({"network": name, "mac": mac, "deleted": True})


async def remove_rule(request: web.Request) -> web.Response:
    c = writing(request)
    name, rule = path_name(request, "net"), path_name(request, "rule")
    await _remove(c, name, "acl", lambda r: r["name"] == rule, what=f"rule {rule!r}")
    return json_response({"network": name, "rule": rule, "deleted": True})


async def _remove(c: Ctx, name: str, key: str, match: Callable[[dict[str, Any]], bool], *,
                  what: str) -> None:
    def change(current: Versioned | None) -> Doc | None:
        listed = current.doc.get("spec", {}).get(key, []) if current is not None else []
        kept = [item for item in listed if not match(item)]
        if current is not None and len(kept) == len(listed):
            raise ApiError(404, "not_found", f"Network {name!r} has no {what}")
        return with_spec_changes(current, name, {key: kept})

    await write_network(c, name, change)
