"""`POST /apply`: a list of VMs, Nodes, Networks, Pools, Volumes and Rules applied in ONE
ZooKeeper transaction.

Planning reads every object's current znode from ZooKeeper (pipelined) and decides per
object: `created` (a VM gets its placement and status znodes too), `configured` (a set
carrying the version read) or `unchanged` (nothing written). A `metadata.resourceVersion`
in an object must still be current (else 409). Every VM's new or changed XML must pass
the domain XML policy (`server.objects.XmlCheck`; 422 naming the object and the element).
Networks follow the rules of `POST /network` (`server.network.applynet`): checked against
every other network and by nft, with the parent's version check in the transaction.
Pools and Volumes follow their handlers' rules (`server.storage.applystorage`: a volume
is placed like a new one, and its size may only grow, as a resize). A Volume is named
`<pool>/<name>` in the results. A Rule (issue #17) is created, or replaced whole (spec and
labels as given), as a Network.
The commit is all-or-nothing: any object changed or created meanwhile fails the whole
transaction (409) and nothing is written; a
list too large for one transaction is refused (413) rather than split. `dry_run` answers
the plan with each object's changes (path, old, new) and writes nothing.
Registered by `server.routes`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from schemas.operations import ApplyRequest
from schemas.xmlpolicy import XmlPolicy
from server.access import SETTLE_TIMEOUT, Ctx, commit, writing, xml_check
from server.audit import note_object
from server.claims import claim_clash
from server.errors import ApiError, conflict
from server.http import json_response, read_json, validated
from server.network import applynet
from server.objects import XmlCheck, check_node_in_limits, check_node_known, strip_read_only
from server.storage import applystorage as storage
from store import attachments, macs, networks, pools, txn, vms, volumes
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, NotFound
from store.objects import new_object, replace_node, replace_vm, replace_whole

# One instance each: building a schema costs more than a load.
_APPLY_REQUEST = ApplyRequest()
DEFAULT_XML_CHECK = XmlCheck(XmlPolicy(), exceptions_allowed=False)


@dataclass
class Plan:
    ops: list[txn.Op] = field(default_factory=list)
    results: list[Doc] = field(default_factory=list)
    written: dict[tuple[str, str], Doc] = field(default_factory=dict)


def changes(old: Any, new: Any, prefix: str = "") -> list[Doc]:
    """The differences of two documents as (dotted path, old, new), nested mappings walked."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Doc] = []
        for key in sorted(set(old) | set(new)):
            out += changes(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [{"path": prefix.rstrip("."), "old": old, "new": new}]


def _path(store: Store, obj: Doc) -> str:
    name = obj["metadata"]["name"]
    if obj["kind"] == "Volume":
        return store.paths.volume(obj["spec"]["pool"], name)
    return {"VM": store.paths.vm, "Node": store.paths.node, "Network": store.paths.network,
            "Pool": store.paths.pool, "Rule": store.paths.rule}[obj["kind"]](name)


def _creation(store: Store, obj: Doc, doc: Doc) -> list[txn.Op]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind == "VM":
        return vms.define_ops(store.paths, doc)
    if kind == "Network":
        return networks.create_ops(store, name, doc)
    if kind == "Pool":
        return pools.create_ops(store, name, doc)
    if kind == "Volume":
        return volumes.create_ops(store, obj["spec"]["pool"], name, doc)
    return [txn.Create(_path(store, obj), doc)]


def _replaced(seen: storage.StorageView, current: Versioned, obj: Doc, *, raw: Doc,
              index: int) -> Doc | None:
    kind = obj["kind"]
    if kind == "VM":
        return replace_vm(current.doc, obj)
    if kind in ("Network", "Rule"):
        return replace_whole(current.doc, obj)
    if kind == "Pool":
        return storage.replaced_pool(current.doc, obj, index)
    if kind == "Volume":
        return storage.replaced_volume(seen, current.doc, obj, index)
    return replace_node(current.doc, obj, raw)


def _check_version(obj: Doc, current: Versioned | None, index: int) -> None:
    given = obj["metadata"].get("resourceVersion")
    if given is None:
        return
    if not given.isdigit():
        raise ValidationError({"objects": {index: {"metadata": {"resourceVersion": [
            "Not a resourceVersion: give the one a GET answered (digits)."]}}}})
    if current is None or current.mzxid != int(given):
        now = "absent" if current is None else str(current.mzxid)
        raise conflict(f"{obj['kind']} {obj['metadata']['name']!r} is at resourceVersion "
                       f"{now}, not {given}", index=index)


def _check_xml(check: XmlCheck, obj: Doc, current: Versioned | None, index: int) -> None:
    """A VM's new or changed XML must pass the domain XML policy and the network rules
    (422 naming the object); the XML is then stored with its NICs' MACs fixed."""
    if obj["kind"] == "VM":
        old = current.doc.get("spec", {}).get("xml") if current is not None else None
        obj["spec"]["xml"] = check.admit(obj["spec"]["xml"], vm=obj["metadata"]["name"],
                                         old=old, field=("objects", index, "spec", "xml"))


def _plan_one(store: Store, plan: Plan, *, obj: Doc, raw: Doc, current: Versioned | None,
              seen: storage.StorageView, index: int) -> None:
    key, path = (obj["kind"], storage.key_of(obj)), _path(store, obj)
    result: Doc = {"kind": key[0], "name": key[1]}
    if current is None:
        if key[0] == "Volume":
            storage.check_new_volume(seen, obj, index)
        doc = new_object(obj)
        plan.ops += _creation(store, obj, doc)
        plan.written[key] = doc
        plan.results.append({**result, "action": "created", "changes": []})
        return
    new = _replaced(seen, current, obj, raw=raw, index=index)
    if new is None:
        plan.results.append({**result, "action": "unchanged", "changes": []})
        return
    plan.ops.append(txn.Set(path, new, current.version))
    if key[0] == "VM":  # its NICs' MACs move with the XML (store.macs)
        old_xml, new_xml = current.doc.get("spec", {}).get("xml"), new["spec"].get("xml")
        plan.ops += [*macs.change_ops(store, key[1], old_xml, new_xml),
                     *attachments.change_ops(store, key[1], old_xml, new_xml)]
    plan.written[key] = new
    plan.results.append({**result, "action": "configured", "changes": changes(current.doc, new)})


def plan_apply(store: Store, objects: list[Doc], raw: list[Doc],
               check: XmlCheck = DEFAULT_XML_CHECK, *,
               seen: storage.StorageView | None = None) -> Plan:
    """Read the objects' current state and plan the transaction (every VM's new or
    changed XML checked by `check`, by default the default policy; its node one the
    cluster has or the same apply defines; Pools and Volumes against `seen`, the cache's
    storage read on the loop). Blocking."""
    nodes = {o["metadata"]["name"] for o in objects if o["kind"] == "Node"}
    nodes |= set(store.children(store.paths.nodes))
    for index, obj in enumerate(objects):
        if obj["kind"] == "VM":
            try:
                check_node_in_limits(obj["spec"])
                check_node_known(obj["spec"], nodes.__contains__)
            except ApiError as e:
                raise ValidationError({"objects": {index: {"spec": e.details}}}) from None
    nets = applynet.prepare(store, objects)
    pool_apply = storage.prepare_pools(store, objects)
    if check.nics is not None:  # VMs may name the networks this list makes
        check = replace(check, nics=replace(check.nics, network_exists=nets.names.__contains__))
    current = store.get_many([_path(store, o) for o in objects])
    plan = Plan()
    for index, (obj, given) in enumerate(zip(objects, raw, strict=True)):
        found = current.get(_path(store, obj))
        _check_version(obj, found, index)
        _check_xml(check, obj, found, index)
        _plan_one(store, plan, obj=obj, raw=given, current=found,
                  seen=seen or storage.StorageView(), index=index)
    if any(r["kind"] == "Network" and r["action"] != "unchanged" for r in plan.results):
        plan.ops[:0] = nets.bump(store)
    if any(r["kind"] == "Pool" and r["action"] != "unchanged" for r in plan.results):
        plan.ops[:0] = pool_apply.bump(store)
    return plan


async def _settle(c: Ctx, written: dict[tuple[str, str], Doc]) -> dict[tuple[str, str], str]:
    """Wait until the cache shows every written object; their resourceVersions."""
    versions: dict[tuple[str, str], str] = {}
    for (kind, name), doc in written.items():
        def check(kind: str = kind, name: str = name, doc: Doc = doc) -> str | None:
            if kind in ("Network", "Rule", *storage.KINDS):
                found = c.cache.docs.get(kind, name)
                return str(found.mzxid) if found is not None and found.doc == doc else None
            rec = c.cache.vm(name) if kind == "VM" else c.cache.node(name)
            return str(rec.mzxid) if rec is not None and rec.spec_znode.doc == doc else None
        found = await c.cache.wait_for((kind, name), check, timeout=SETTLE_TIMEOUT)
        if found is not None:
            versions[(kind, name)] = found
    return versions


async def apply(request: web.Request) -> web.Response:
    c = writing(request)
    raw = await read_json(request)
    if isinstance(raw, dict) and isinstance(raw.get("objects"), list):
        raw = {**raw, "objects": [strip_read_only(o) for o in raw["objects"]]}
    data = validated(_APPLY_REQUEST, raw)
    await applynet.check_rules(data["objects"])
    seen = storage.view(c, data["objects"])
    plan = await asyncio.to_thread(partial(plan_apply, seen=seen), c.store, data["objects"],
                                   raw["objects"], xml_check(request))
    note_object(request, " ".join(f"{str(r['kind']).lower()}/{r['name']}"
                                  for r in plan.results))
    if data["dry_run"]:
        return json_response({"dry_run": True, "results": plan.results})
    try:
        await commit(c.store, plan.ops)
    except (AlreadyExists, NotFound) as e:
        clash = claim_clash(c, e, field=("objects",))
        if clash is not None:
            raise clash from None
        raise conflict(f"an object changed while being applied; nothing was written ({e})") \
            from None
    except Conflict as e:
        raise conflict(f"an object changed while being applied; nothing was written ({e})") \
            from None
    versions = await _settle(c, plan.written)
    results = [{**r, "resourceVersion": versions.get((r["kind"], r["name"]))}
               for r in plan.results]
    return json_response({"dry_run": False, "results": results})
