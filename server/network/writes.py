"""The one way the API writes a network's document (issue #14): read every network (one
pipelined read, with the parent's version), build the new document from the current one,
check it (the schema, the rules between networks, nft on new firewall rules), commit it
with the parent's version check (`store.networks`), and on a concurrent write of any
network read and check again (a few attempts, then 409). Then wait until this server's
cache shows the write (read your writes).

`change(current)` answers the new document (None: nothing to write) or raises an
`ApiError` / `ValidationError`; it must not do I/O. Called by `server.network.handlers`
and `server.network.parts`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError

from schemas.network import NetworkSpecSchema, network_conflicts
from server.access import SETTLE_TIMEOUT, Ctx
from server.errors import conflict, not_found
from server.network.nftcheck import rule_errors
from store import networks
from store.client import Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict

ATTEMPTS = 5
Change = Callable[[Versioned | None], Doc | None]
_SPEC = NetworkSpecSchema()


async def write_network(c: Ctx, name: str, change: Change, *,
                        field: tuple[str, ...] = ("spec",)) -> Versioned:
    """Write network `name` as `change` says (see the module doc); answers it as cached."""
    for _attempt in range(ATTEMPTS):
        seen = await asyncio.to_thread(networks.read_all, c.store)
        current = seen.docs.get(name)
        doc = change(current)
        if doc is None:
            if current is None:
                raise not_found("Network", name)
            return current
        await _check(name, doc, seen, current, field=field)
        ops = (networks.create_ops(c.store, name, doc) if current is None
               else networks.replace_ops(c.store, name, doc, version=current.version))
        try:
            await asyncio.to_thread(networks.commit_change, c.store, seen, ops)
        except Conflict:
            continue  # another network was written meanwhile: read and check again
        except AlreadyExists:
            raise conflict(f"Network {name!r} exists already") from None
        return await settled(c, name, after=current.mzxid if current is not None else 0)
    raise conflict(f"Network {name!r}: other network writes kept interfering; retry")


async def _check(name: str, doc: Doc, seen: networks.NetworkSet, current: Versioned | None,
                 *, field: tuple[str, ...]) -> None:
    spec = doc["spec"]
    try:
        _SPEC.load(spec)
    except ValidationError as e:
        raise ValidationError(_nest(field, e.messages)) from None
    clashes = network_conflicts(name, spec, seen.specs())
    if clashes:
        raise ValidationError(_nest(field, clashes))
    old = {r["rule"] for r in (current.doc.get("spec", {}).get("acl", []) if current else [])}
    fresh = [(i, r["rule"]) for i, r in enumerate(spec.get("acl", [])) if r["rule"] not in old]
    found = await rule_errors([rule for _i, rule in fresh])
    if found:
        raise ValidationError(_nest(field, {"acl": {
            str(fresh[i][0]): {"rule": messages} for i, messages in found.items()}}))


def _nest(field: tuple[str, ...], messages: Any) -> dict[str, Any]:
    for key in reversed(field):
        messages = {key: messages}
    return dict(messages)


async def settled(c: Ctx, name: str, *, after: int) -> Versioned:
    """The network once this server's cache has a version written after zxid `after`
    (or as read after the settle timeout)."""
    def check() -> Versioned | None:
        found = c.cache.network(name)
        return found if found is not None and found.mzxid > after else None

    found = await c.cache.wait_for(("Network", name), check, timeout=SETTLE_TIMEOUT)
    if found is None:
        found = await asyncio.to_thread(c.store.get, c.store.paths.network(name))
    return found


def cached_network(c: Ctx, name: str) -> Versioned:
    found = c.cache.network(name)
    if found is None:
        raise not_found("Network", name)
    return found

