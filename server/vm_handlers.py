"""Handlers of the VM object: list, get, define, modify, replace (PUT), delete, metadata,
rename. Reads come from the cache; writes go to ZooKeeper version-checked, then wait until
the cache shows them (`server.access`). Defines (and creates by PUT) that arrive together
share one transaction (`server.groupcommit`), each keeping its own answer. Registered by
`server.routes`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from schemas.operations import (
    NameFilter,
    VMDeleteQuery,
    VMListQuery,
    VMRenameRequest,
    compile_limit,
    match_names,
)
from schemas.requests import (
    VMDefineRequest,
    VMMetaRequest,
    VMModifyRequest,
    define_request_to_vm,
    meta_patch,
    vm_spec_patch,
)
from schemas.vm import VMSchema
from server.access import (
    Ctx,
    cached_vm,
    commit,
    commit_grouped,
    reading,
    settled_gone,
    settled_vm,
    writing,
    xml_check,
)
from server.affinity import check_rules
from server.audit import note_object
from server.claims import claim_clash
from server.deadline import deadline_left
from server.errors import ApiError, bad_request, conflict, not_found
from server.http import dumps, json_response, load_body, load_query, path_name, raw_json
from server.objects import (
    XmlCheck,
    check_node_in_limits,
    check_node_known,
    patch_vm,
    replace_vm_checked,
    strip_read_only,
)
from server.views import vm_meta, vm_object
from store import attachments, macs, txn, vms
from store.client import Versioned
from store.errors import AlreadyExists, Conflict, NotFound, StoreError
from store.model import VM, read_vm
from store.objects import new_object

DELETE_RETRIES = 5  # a VM whose node keeps writing its status is read again, this often
# One instance each: building a schema costs more than a load.
_DELETE_QUERY = VMDeleteQuery()
_VM_DEFINE_REQUEST = VMDefineRequest()
_VM_LIST_QUERY = VMListQuery()
_VM_META_REQUEST = VMMetaRequest()
_VM_MODIFY_REQUEST = VMModifyRequest()
_VM_RENAME_REQUEST = VMRenameRequest()
_VM_SCHEMA = VMSchema()



def complete(rec: VM) -> bool:
    """All the znodes of a new VM are in the cache."""
    return rec.placement is not None and rec.status is not None


# --- reads ------------------------------------------------------------------------------------

def _matches(rec: VM, query: dict[str, Any]) -> bool:
    node = query["node"]
    if node is not None and node not in (rec.home, rec.status_node):
        return False
    return query["state"] is None or rec.state == query["state"]


async def _names_matching(request: web.Request, c: Ctx, pattern: NameFilter) -> set[str]:
    """The names of the cache's VMs that `pattern` finds, matched in a thread (never on
    the event loop) that stops at the request's deadline. Names that appear meanwhile are
    matched too, so the caller lists from the cache as it is now (at its watermark)."""
    left = deadline_left(request)
    until = None if left is None else time.monotonic() + left
    decided: dict[str, bool] = {}
    while True:
        names = c.cache.vm_names()
        new = [name for name in names if name not in decided]
        if not new:
            return {name for name in names if decided[name]}
        found = await asyncio.to_thread(match_names, pattern, new, until=until)
        decided.update(zip(new, found, strict=True))


async def list_vms(request: web.Request) -> web.Response:
    c = reading(request)
    query = load_query(request, _VM_LIST_QUERY)
    named = None
    if query["limit"]:
        named = await _names_matching(request, c, compile_limit(query["limit"]))
        c.cache.require_synced()  # still, after the wait
    parts: list[bytes] = []  # from here on, no await: one state of the cache
    for rec in c.cache.all_vms():
        if named is not None and rec.name not in named:
            continue
        if not _matches(rec, query):
            continue
        parts.append(c.cache.vm_fragment(rec) if not query["xml"]
                     else dumps(vm_object(rec, xml=True)).encode())
    head = b'{"items":['
    tail = f'],"count":{len(parts)},"resourceVersion":"{c.cache.watermark}"}}'.encode()
    return raw_json(head + b",".join(parts) + tail)


async def get_vm(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(vm_object(cached_vm(c, path_name(request, "vm"))))


async def get_meta(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(vm_meta(cached_vm(c, path_name(request, "vm"))))


# --- define, modify, replace -------------------------------------------------------------------

async def define_vm(request: web.Request) -> web.Response:
    c = writing(request)
    vm = new_object(define_request_to_vm(await load_body(request, _VM_DEFINE_REQUEST)))
    check_node_in_limits(vm["spec"])
    check_node_known(vm["spec"], c.cache.has_node)
    name = vm["metadata"]["name"]
    check_rules(c, name, vm["spec"].get("node"), verb="define")
    vm["spec"]["xml"] = xml_check(request).admit(vm["spec"]["xml"], vm=name)
    note_object(request, f"vm/{name}")
    try:
        await commit_grouped(c, vms.define_ops(c.store.paths, vm))
    except (AlreadyExists, NotFound) as e:
        raise claim_clash(c, e, field=("xml",)) or conflict(f"VM {name!r} exists already") \
            from None
    rec = await settled_vm(c, name, complete)
    return json_response(vm_object(rec), status=201)


async def _patch(c: Ctx, name: str, patch: dict[str, Any], *,
                 check: XmlCheck | None = None) -> VM:
    """Merge `patch` into the VM's spec (read-modify-write, version-checked, retried); a
    patch of the XML is checked by `check` against the XML it replaces."""
    try:
        result = await asyncio.to_thread(macs.update_vm, c.store, name,
                                         lambda doc: patch_vm(doc, patch, xml_check=check))
    except (AlreadyExists, NotFound) as e:
        raise claim_clash(c, e, field=("xml",)) or (
            not_found("VM", name) if isinstance(e, NotFound) else e) from None
    return await settled_vm(c, name, lambda rec: rec.mzxid >= result.mzxid)


async def modify_vm(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    data = await load_body(request, _VM_MODIFY_REQUEST)
    rec = await _patch(c, name, vm_spec_patch(data, vm_name=name), check=xml_check(request))
    return json_response(vm_object(rec))


async def modify_meta(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    data = await load_body(request, _VM_META_REQUEST)
    rec = await _patch(c, name, meta_patch(data))
    return json_response(vm_meta(rec))


def _resource_version(metadata: dict[str, Any]) -> int | None:
    value = metadata.get("resourceVersion")
    if value is None:
        return None
    if not value.isdigit():
        raise ValidationError({"metadata": {"resourceVersion": [
            "Not a resourceVersion: give the one a GET answered (digits)."]}})
    return int(value)


async def replace(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    vm = await load_body(request, _VM_SCHEMA, prepare=strip_read_only)
    if vm["metadata"]["name"] != name:
        raise bad_request(f"metadata.name {vm['metadata']['name']!r} differs from the VM "
                          f"{name!r} of the path; use rename to change a name",
                          metadata={"name": ["Differs from the name in the path."]})
    check_node_in_limits(vm["spec"])
    check_node_known(vm["spec"], c.cache.has_node)
    expect, check = _resource_version(vm["metadata"]), xml_check(request)
    try:
        result = await asyncio.to_thread(macs.update_vm, c.store, name,
                                         lambda doc: replace_vm_checked(doc, vm, check),
                                         expect_mzxid=expect)
    except AlreadyExists as e:
        raise claim_clash(c, e, field=("spec", "xml")) or e from None
    except NotFound as e:
        clash = claim_clash(c, e, field=("spec", "xml"))
        if clash is not None:
            raise clash from None
        if expect is not None:
            raise conflict(f"VM {name!r} no longer exists (resourceVersion {expect})") from None
        xml = check.admit(vm["spec"]["xml"], vm=name, field=("spec", "xml"))
        return await _create_by_put(c, {**vm, "spec": {**vm["spec"], "xml": xml}})
    rec = await settled_vm(c, name, lambda r: r.mzxid >= result.mzxid)
    return json_response(vm_object(rec))


async def _create_by_put(c: Ctx, vm: dict[str, Any]) -> web.Response:
    name = vm["metadata"]["name"]
    try:
        await commit_grouped(c, vms.define_ops(c.store.paths, new_object(vm)))
    except (AlreadyExists, NotFound) as e:
        raise claim_clash(c, e, field=("spec", "xml")) or conflict(
            f"VM {name!r} was created meanwhile; GET it and retry") from None
    rec = await settled_vm(c, name, complete)
    return json_response(vm_object(rec), status=201)


# --- delete, rename ----------------------------------------------------------------------------

def _refuse_delete(tree: dict[str, Versioned], c: Ctx, name: str) -> None:
    vm = read_vm(name, tree.get, c.store.paths)
    state = vm.state or "stopped"
    if vm.owner is not None or vm.up:
        node = vm.owner_node
        where = f" on {node}" if node else ""
        raise ApiError(409, "not_stopped", f"VM {name!r} is {state}{where}; stop it first, "
                       "or delete with force=true", details={"state": state, "owner": node})


async def delete_vm(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    query = load_query(request, _DELETE_QUERY)
    for _attempt in range(DELETE_RETRIES):
        if await _delete_once(c, name, force=query["force"], volumes=query["delete_volumes"]):
            await settled_gone(c, "VM", name)
            return json_response({"name": name, "deleted": True})
    raise conflict(f"VM {name!r} kept changing while it was being deleted; retry")


async def _delete_once(c: Ctx, name: str, *, force: bool, volumes: bool) -> bool:
    """One read-decide-delete round; False when a znode changed meanwhile (its node wrote
    the status, say): the caller reads again and decides again."""
    try:
        tree = await asyncio.to_thread(txn.read_subtree, c.store, c.store.paths.vm(name))
    except NotFound:
        raise not_found("VM", name) from None
    if not force:
        _refuse_delete(tree, c, name)
    xml = tree[c.store.paths.vm(name)].doc.get("spec", {}).get("xml")
    releases = [*await asyncio.to_thread(macs.release_ops, c.store, name, xml),
                *await asyncio.to_thread(attachments.release_ops, c.store, name, xml)]
    if volumes:
        releases += await asyncio.to_thread(attachments.deletion_ops, c.store, name, xml)
    try:
        await commit(c.store, [*txn.delete_subtree_ops(tree), *releases])
    except Conflict:
        return False
    except (NotFound, AlreadyExists) as e:
        raise conflict(f"VM {name!r} changed while it was being deleted; retry ({e})") from None
    return True


async def rename(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    new = (await load_body(request, _VM_RENAME_REQUEST))["new_name"]
    if new == name:
        raise bad_request("new_name is the VM's current name", new_name=["Same as the name."])
    try:
        await asyncio.to_thread(vms.rename_vm, c.store, name, new)
    except NotFound:
        raise not_found("VM", name) from None
    except AlreadyExists:
        raise conflict(f"VM {new!r} exists already") from None
    except StoreError as e:
        if type(e) is not StoreError:
            raise
        raise ApiError(413, "too_large", str(e)) from None
    except ValidationError as e:  # the stored XML, written before today's checks
        raise ApiError(409, "invalid_stored_xml", f"VM {name!r} cannot be renamed: its "
                       "stored domain XML is refused; replace it (modify xml), then rename",
                       details={"xml": e.messages}) from None
    await settled_gone(c, "VM", name)
    rec = await settled_vm(c, new, complete)
    return json_response(vm_object(rec))
