"""The imperative verbs of a VM: `POST /vm/{vm}/state` (start, shutdown, stop, restart,
disable) and `POST /vm/{vm}/node` (migrate, move, unmigrate), with their GET views.

State verbs patch the spec (version-checked read-modify-write; every change bumps
`metadata.generation`): start → running; shutdown → stopped, graceful; stop → stopped,
force; restart → `restartRequest` + 1 and running; disable → disabled, graceful.
Node verbs write the placement in one transaction with a version check of the VM object
and of the placement read (retried on a race): migrate remembers `lastNode` (409 when the
VM is migrated already, unless `force`, which keeps the first `lastNode`), move forgets
it, unmigrate returns to it. A graceful shutdown in progress is aborted by a node verb
(a new target like any other): the VM is wanted running again, in the same transaction.
Explicit targets are checked with `store.placement.refusal` (400 naming the reason);
without one the VM's selector picks (409 when none is valid).
With `wait`, the answer comes when the status shows the result (followed through the
cache's watch), 409 as soon as it cannot come (the VM failed since the request, or its
spec no longer asks for it), or 504 with the current state after `timeout`.
Registered by `server.routes`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from schemas.operations import VMNodeRequest, VMStateRequest
from server.access import Ctx, cached_vm, commit, fresh_vm, reading, settled_vm, writing
from server.affinity import check_rules, cluster_rules, placed
from server.deadline import extend_deadline, wait_limit
from server.errors import ApiError, conflict, not_found
from server.http import json_response, load_body, path_name
from server.objects import patch_vm
from server.views import vm_placement, vm_state
from store import txn
from store.codec import Doc
from store.errors import Conflict, NotFound
from store.model import VM
from store.placement import (
    NodeView,
    VMNeeds,
    carries_storage,
    effective_selector,
    refusal,
    select,
    with_storage,
)
from store.volumes import local_volume
from vocabulary import DesiredState, VMState

# One instance each: building a schema costs more than a load.
_VM_NODE_REQUEST = VMNodeRequest()
_VM_STATE_REQUEST = VMStateRequest()

NODE_RETRIES = 5


def _verb_patch(verb: str, rec: VM) -> Callable[[Doc], Doc | None]:
    """The spec change of a state verb, as a modifier of the stored VM."""
    fixed = {"start": {"state": "running"},
             "shutdown": {"state": "stopped", "stopMode": "graceful"},
             "stop": {"state": "stopped", "stopMode": "force"},
             "disable": {"state": "disabled", "stopMode": "graceful"}}
    observed = rec.observed_restart

    def modify(doc: Doc) -> Doc | None:
        if verb != "restart":
            return patch_vm(doc, fixed[verb])
        current = int(doc.get("spec", {}).get("restartRequest", 0))
        return patch_vm(doc, {"state": "running", "restartRequest": max(current, observed) + 1})
    return modify


def _reached(verb: str, restart_request: int) -> Callable[[VM], bool]:
    target = {"start": "running", "restart": "running", "shutdown": "stopped",
              "stop": "stopped", "disable": "disabled"}[verb]

    def done(rec: VM) -> bool:
        if rec.state != target:
            return False
        return verb != "restart" or rec.observed_restart >= restart_request
    return done


def unreachable(rec: VM, *, generation: int, want: DesiredState | None) -> str | None:
    """Why the VM cannot get where a request of spec `generation` sent it (None: it may):
    its node failed it since (say, libvirt refused the XML), or the spec no longer asks for
    `want` (a newer request, or the cluster stopped it for want of a node)."""
    if rec.state == VMState.FAILED and rec.observed_generation >= generation:
        return f"it failed: {rec.status_doc.get('reason') or 'no reason given'}"
    if want is not None and rec.generation > generation and rec.want != want:
        why = rec.placement_doc.get("reason")
        return f"its spec now asks for {rec.want}" + (f" ({why})" if why else "")
    return None


async def _await_vm(c: Ctx, name: str, *, done: Callable[[VM], bool], generation: int,
                    want: DesiredState | None, timeout: float | None) -> VM:
    """The VM once `done`; 404 if it goes away; 409 as soon as it cannot get there (with
    the reason); 504 with its state after `timeout`."""
    def check() -> VM | None:
        rec = c.cache.vm(name)
        if rec is None:
            raise not_found("VM", name)
        if done(rec):
            return rec
        why = unreachable(rec, generation=generation, want=want)
        if why is not None:
            raise ApiError(409, "unreachable", f"VM {name!r} cannot get there: {why}",
                           details=vm_state(rec))
        return None

    limit = wait_limit(c.config, timeout)
    rec = await c.cache.wait_for(("VM", name), check, timeout=limit)
    if rec is not None:
        return rec
    now = cached_vm(c, name)
    raise ApiError(504, "timeout", f"VM {name!r} did not get there in {limit:g} s; "
                   f"it is {now.state or 'unknown'}", details=vm_state(now))


async def get_state(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(vm_state(cached_vm(c, path_name(request, "vm"))))


async def set_state(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    data = await load_body(request, _VM_STATE_REQUEST)
    rec = cached_vm(c, name)
    try:
        result = await asyncio.to_thread(c.store.update, c.store.paths.vm(name),
                                         _verb_patch(data["state"], rec))
    except NotFound:
        raise not_found("VM", name) from None
    rec = await settled_vm(c, name, lambda r: r.mzxid >= result.mzxid)
    if data["wait"]:
        extend_deadline(request, wait_limit(c.config, data["timeout"]))
        written = VM(name, result)
        rec = await _await_vm(c, name, done=_reached(data["state"], written.restart_request),
                              generation=written.generation, want=written.want,
                              timeout=data["timeout"])
    return json_response(vm_state(rec))


# --- placement ----------------------------------------------------------------------------------

async def get_node(request: web.Request) -> web.Response:
    c = reading(request)
    return json_response(vm_placement(cached_vm(c, path_name(request, "vm"))))


def _views(c: Ctx) -> dict[str, NodeView]:
    return {n.name: n.view for n in c.cache.all_nodes()}


def needs_of(c: Ctx, rec: VM) -> VMNeeds:
    """The VM's needs with the nodes its volumes on local pools tie it to."""
    informers = c.cache.docs.informers
    return with_storage(rec.needs, rec.xml, lambda key: local_volume(
        key, volume=informers["Volume"].get, pool=informers["Pool"].get, paths=c.store.paths))


def _target(c: Ctx, rec: VM, data: dict[str, Any]) -> str:
    """The node the action moves the VM to (400/409 when there is none)."""
    needs, views, last = needs_of(c, rec), _views(c), rec.last_node
    running = rec.status_node if rec.state == VMState.RUNNING else None
    carrying = carries_storage(needs, running_on=running, method=rec.migration_method.value,
                               source=views.get(needs.pins[0]) if needs.pins else None)
    if data["action"] == "migrate" and last and not data["force"]:
        raise conflict(f"VM {rec.name!r} is migrated already (from {last}); unmigrate it "
                       "first, or force")
    default = str(c.cache.setting("selector", "mem"))
    if data["action"] == "unmigrate":
        if not last:
            raise conflict(f"VM {rec.name!r} is not migrated: it has no last node to return to")
        why = refusal(needs, views.get(last), selector=effective_selector(needs, default),
                      name=last, carrying=carrying)
        if why is not None:
            raise conflict(f"VM {rec.name!r} cannot return to {last}: {why}")
        check_rules(c, rec.name, last, verb="return")
        return str(last)
    node = data["node"]
    current = sorted(n for n in (rec.home, rec.status_node) if n)
    if node is None:
        found = select(needs, views.values(), default=default, exclude=current,
                       carrying=carrying, rules=cluster_rules(c), where=placed(c))
        if found is None:
            raise conflict(f"no valid target for VM {rec.name!r} (limits, readiness, memory, "
                           "affinity rules)")
        return found
    if node == rec.home:
        raise conflict(f"VM {rec.name!r} is placed on {node} already")
    why = refusal(needs, views.get(node), selector=effective_selector(needs, default),
                  name=node, carrying=carrying)
    if why is not None:
        raise ApiError(400, "invalid_target", why, details={"node": [why]})
    check_rules(c, rec.name, node, verb=data["action"])
    return str(node)


def _new_placement(rec: VM, data: dict[str, Any], target: str) -> Doc:
    placement = rec.placement_doc
    action, last = data["action"], rec.last_node
    base: Doc = {"node": None, "lastNode": None, "reason": "", "autorestartPending": False,
                 "home": None, **placement}
    if action == "migrate":
        new_last = last if (data["force"] and last) else rec.home
        return {**base, "node": target, "lastNode": new_last, "reason": f"migrated to {target}"}
    reason = f"moved to {target}" if action == "move" else f"returned to {target}"
    return {**base, "node": target, "lastNode": None, "reason": reason}


async def _place(c: Ctx, name: str, data: dict[str, Any]) -> tuple[bool, Doc]:
    """Plan and write the placement; retried when the VM changes in between. Says whether
    the VM is wanted running (as it was, or again: the move aborted a shutdown)."""
    p = c.store.paths
    for _attempt in range(NODE_RETRIES):
        rec = await asyncio.to_thread(fresh_vm, c.store, name)
        if rec is None:
            raise not_found("VM", name)
        target = _target(c, rec, data)
        new = _new_placement(rec, data, target)
        write: txn.Op = (txn.Set(p.vm_placement(name), new, rec.placement.version)
                         if rec.placement is not None else txn.Create(p.vm_placement(name), new))
        spec = _spec_op(c, rec)
        try:
            await commit(c.store, [spec, write])
        except (Conflict, NotFound):
            continue
        return isinstance(spec, txn.Set) or rec.want == DesiredState.RUNNING, new
    raise conflict(f"VM {name!r} kept changing; retry")


def _spec_op(c: Ctx, rec: VM) -> txn.Op:
    """The spec as read (checked), or, while a graceful shutdown is in progress, wanted
    running again: a move is a new target and aborts the shutdown like any other (the
    guest moves and keeps running), in one transaction with the placement."""
    path = c.store.paths.vm(rec.name)
    spec = rec.spec_znode
    if rec.state == VMState.SHUTTING_DOWN and rec.want != DesiredState.RUNNING:
        running = patch_vm(spec.doc, {"state": "running"})
        if running is not None:
            return txn.Set(path, running, spec.version)
    return txn.Check(path, spec.version)


async def set_node(request: web.Request) -> web.Response:
    c = writing(request)
    name = path_name(request, "vm")
    data = await load_body(request, _VM_NODE_REQUEST)
    running, placement = await _place(c, name, data)
    rec = await settled_vm(c, name, lambda r: r.placement_doc == placement)
    if data["wait"] and running:
        extend_deadline(request, wait_limit(c.config, data["timeout"]))
        target = placement["node"]
        rec = await _await_vm(c, name, done=lambda r: r.state == VMState.RUNNING
                              and r.status_node == target, generation=rec.generation,
                              want=DesiredState.RUNNING, timeout=data["timeout"])
    return json_response(vm_placement(rec))
