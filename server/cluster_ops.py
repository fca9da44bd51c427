"""`POST /rebalance` and `POST /maintenance` (issue #17): the cluster-wide operations.

Rebalance: the API plans live migrations that even the nodes out by the cluster's
selector (`store.rebalance.plan`, within limits and affinity rules, from the API's cache
with its placements counted exactly, `store.placement.account`), answers the plan and,
unless `dryRun`, writes each move as a placement (version-checked, one VM at a time; a VM
that changed meanwhile is left out and said so). The nodes carry the migrations out with
their migration concurrency, as for `migrate`. Operator.

Maintenance: sets `maintenance` in the cluster config (version-checked): while on, the
primary fences and recovers nothing; turning it off lets it act on what failed meanwhile.
Admin, as every config change. Called through the route table.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from aiohttp import web
from marshmallow import Schema, fields, validate

from schemas.common import Choice, StrictBool
from server.access import Ctx, writing
from server.affinity import cluster_rules, placed
from server.http import json_response, load_body
from server.vm_verbs import needs_of
from store import clusterview, rebalance, txn
from store.codec import Doc
from store.errors import Conflict
from store.placement import account, default_selector
from vocabulary import Selector


class RebalanceRequest(Schema):
    class Meta:
        unknown = "raise"

    dryRun = StrictBool(load_default=False)
    selector = Choice(Selector, exclude=[Selector.NONE], load_default=None)  # else the default
    threshold = fields.Float(load_default=0.0, validate=validate.Range(
        min=0, max=1000, error="must be between 0 and 1000"))
    limit = fields.Integer(load_default=50, strict=True, validate=validate.Range(
        min=1, max=1000, error="must be between 1 and 1000"))


class MaintenanceRequest(Schema):
    class Meta:
        unknown = "raise"

    maintenance = StrictBool(required=True)


class MoveView(Schema):
    vm = fields.String()
    source = fields.String(data_key="from")
    target = fields.String(data_key="to")
    written = fields.Boolean()


class RebalanceAnswer(Schema):
    dryRun = fields.Boolean()
    selector = fields.String()
    before = fields.Float()
    after = fields.Float()
    moves = fields.List(fields.Nested(MoveView))
    skipped = fields.List(fields.String())


class MaintenanceAnswer(Schema):
    maintenance = fields.Boolean()


def plan_of(c: Ctx, data: dict[str, Any]) -> tuple[str, rebalance.Plan]:
    selector = data["selector"] or default_selector(str(c.cache.setting("selector", "mem")))
    vms = list(c.cache.all_vms())
    needs = partial(needs_of, c)
    nodes = account([n.view for n in c.cache.all_nodes()], clusterview.placements(vms, needs))
    return selector, rebalance.plan(nodes, clusterview.movable(vms, needs), selector=selector,
                                    rules=cluster_rules(c), where=placed(c),
                                    threshold=data["threshold"], limit=data["limit"])


async def _write(c: Ctx, move: rebalance.Move) -> bool:
    """The move as a placement, if the VM is still where the plan found it."""
    vm = c.cache.vm(move.vm)
    if vm is None or vm.home != move.source or vm.placement is None:
        return False
    new: Doc = {**vm.placement_doc, "node": move.target,
                "reason": f"rebalanced from {move.source} to {move.target}"}
    op = txn.Set(c.store.paths.vm_placement(move.vm), new, vm.placement.version)
    try:
        await asyncio.to_thread(txn.commit, c.store, [op])
    except Conflict:
        return False
    return True


async def rebalance_cluster(request: web.Request) -> web.Response:
    c = writing(request)
    data = await load_body(request, RebalanceRequest())
    selector, found = plan_of(c, data)
    moves, skipped = [], []
    for move in found.moves:
        written = False if data["dryRun"] else await _write(c, move)
        if not data["dryRun"] and not written:
            skipped.append(f"{move.vm}: changed since the plan was made; left out")
        moves.append({"vm": move.vm, "from": move.source, "to": move.target,
                      "written": written})
    return json_response({"dryRun": data["dryRun"], "selector": selector,
                          "before": found.before, "after": found.after, "moves": moves,
                          "skipped": skipped})


async def set_maintenance(request: web.Request) -> web.Response:
    c = writing(request)
    data = await load_body(request, MaintenanceRequest())

    def modify(doc: Doc) -> Doc:
        return {**doc, "maintenance": data["maintenance"]}

    written = await asyncio.to_thread(c.store.update, c.store.paths.config, modify)
    return json_response({"maintenance": bool(written.doc.get("maintenance"))})
