"""`/rule` and `/rule/{rule}` (issue #17): list, add, show and remove affinity rules.

A rule (`schemas.rules`) keeps VMs `together` on one node or `apart` on different
nodes, strictly or softly; placement honours it (`store.affinity`, read through
`store.rules`). Reads come from the cache. `POST /rule` takes the flat body
`{name, kind, strict, vms}` and creates `<root>/rules/<name>` (409 when it exists); a rule
may name VMs that do not exist yet (they may be defined later): the answer lists them in
`warnings`. A rule checks nothing against the other rules, so its writes are plain: a
create, and a delete of the version just read (retried when it changed meanwhile).
`apply` replaces rules (`server.apply`, version-checked). Reading needs `viewer`,
writing `operator` (`server.routes.ROLES`). Called through the route table.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from marshmallow import Schema, fields

from schemas.rules import RuleCreateRequest, rule_document
from server.access import SETTLE_TIMEOUT, Ctx, commit, reading, settled_gone, writing
from server.audit import note_object
from server.errors import conflict, not_found
from server.http import json_response, load_body, path_name
from server.responses import DocList, DocObject
from server.views import doc_object
from store import txn
from store.client import Store, Versioned
from store.errors import AlreadyExists, Conflict, NotFound
from store.objects import new_object
from vocabulary import Kind

_CREATE = RuleCreateRequest()
RULE = Kind.RULE.value
RuleList, RuleObject = DocList, DocObject  # the route table's names


class RuleCreated(DocObject):
    """The rule as stored, and what it names that does not exist (yet)."""

    warnings = fields.List(fields.String(), required=True)


class RuleDeleted(Schema):
    name = fields.String(required=True)
    deleted = fields.Boolean(required=True)


def cached_rule(c: Ctx, name: str) -> Versioned:
    found = c.cache.docs.get(RULE, name)
    if found is None:
        raise not_found(RULE, name)
    return found


def unknown_vms(c: Ctx, vms: list[str]) -> list[str]:
    """A warning for each VM of `vms` the cluster does not have."""
    return [f"No VM {vm!r} (yet): the rule applies to it once it is defined."
            for vm in vms if c.cache.vm(vm) is None]


async def list_rules(request: web.Request) -> web.Response:
    c = reading(request)
    items = [doc_object(found, RULE) for name in c.cache.docs.names(RULE)
             if (found := c.cache.docs.get(RULE, name)) is not None]
    return json_response({"items": items, "count": len(items)})


async def get_rule(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(doc_object(cached_rule(c, path_name(request, "rule")), RULE))


async def create_rule(request: web.Request) -> web.Response:
    c = writing(request)
    doc = new_object(rule_document(await load_body(request, _CREATE)))
    name = doc["metadata"]["name"]
    note_object(request, f"rule/{name}")
    try:
        await commit(c.store, [txn.Create(c.store.paths.rule(name), doc)])
    except AlreadyExists:
        raise conflict(f"Rule {name!r} exists already") from None
    found = await c.cache.wait_for((RULE, name), lambda: c.cache.docs.get(RULE, name),
                                   timeout=SETTLE_TIMEOUT)
    if found is None:
        found = await asyncio.to_thread(c.store.get, c.store.paths.rule(name))
    return json_response({**doc_object(found, RULE),
                          "warnings": unknown_vms(c, doc["spec"]["vms"])}, status=201)


def delete_stored(store: Store, name: str, *, attempts: int = 5) -> None:
    """Delete the rule with the version read (again when it changed meanwhile); 404
    when there is none. Blocking."""
    path = store.paths.rule(name)
    for _attempt in range(attempts):
        try:
            store.delete(path, version=store.get(path).version)
            return
        except NotFound:
            raise not_found(RULE, name) from None
        except Conflict:
            continue
    raise conflict(f"Rule {name!r} kept changing while being removed; retry")


async def delete_rule(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "rule")
    await asyncio.to_thread(delete_stored, c.store, name)
    await settled_gone(c, RULE, name)
    return json_response({"name": name, "deleted": True})
