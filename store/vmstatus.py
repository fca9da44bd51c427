"""The one builder of a VM's status document (`/vms/<name>/status`), pure.

Every writer of a VM's status builds the new document here, from the one it read:
- the node that runs (or last ran) the VM, after each reconcile step (`after_step`), on a
  libvirt failure (`failed`), after its live migration call (`migrated_out`,
  `live_failed`), and when it finds a guest that status places here gone (`off_here`) —
  `reconciler.vm.record.StatusWriter`, version-checked, in one transaction with its owner
  znode change; and, as its host shuts down with `config.shutdownPolicy: stop`, after it
  shut the guest down (`shut_down_here`, `reconciler.node.shutdown`: a version-checked
  update; the owner znode goes with the node's session);
- the primary coordinator, for the VMs of a node that stopped answering (`unknown`) and,
  once that node is fenced, for the ones left there (`fenced_off`) —
  `reconciler.cluster.controllers`, version-checked against its cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from statemachine import Action, Step
from store.codec import Doc
from vocabulary import VMState


def xml_hash(xml: str) -> str:
    return hashlib.sha256(xml.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class StepFacts:
    """What a node knows when it writes status after one step."""

    node: str  # this node
    up: bool  # the guest runs here after the step
    spec_xml: str
    generation: int  # the spec's metadata.generation
    placed_on: str | None  # placement.node
    moved_to: str | None  # the target, right after this node migrated the guest away live
    now: float


def after_step(old: Doc, step: Step, facts: StepFacts) -> Doc:
    """The node's status after `step`: state, node, deadline, restart count, migration."""
    keeps = facts.up or step.state == VMState.MIGRATING  # the guest moves, as it was
    run_hash = (xml_hash(facts.spec_xml) if step.action == Action.START
                else old.get("runningXmlHash") if keeps else None)
    new = {**old, "state": str(step.state),
           "node": facts.node if facts.up else facts.moved_to,
           "reason": step.reason, "shutdownDeadline": step.shutdown_deadline,
           "observedRestart": step.observed_restart, "runningXmlHash": run_hash,
           "observedGeneration": facts.generation}
    if old.get("state") != new["state"]:
        new["since"] = facts.now
    new.pop("failedGeneration", None)  # a step is taken: the spec changed since
    new["migration"] = _migration(old, step, facts)
    new["conditions"] = _restart_condition(old.get("conditions", []), run_hash,
                                           facts.spec_xml, facts.now)
    return new


def _migration(old: Doc, step: Step, facts: StepFacts) -> Doc | None:
    """Source, target and method while this node moves the VM out; None otherwise."""
    target = facts.placed_on
    if step.state != VMState.MIGRATING or not target or target == facts.node:
        return None
    method = "live" if step.action == Action.MIGRATE_LIVE else "shutdown"
    previous = old.get("migration") or {}
    if previous.get("target") == target and previous.get("source") == facts.node:
        return {**previous, "method": previous.get("method", method)}
    return {"source": facts.node, "target": target, "method": method, "started": facts.now}


def _restart_condition(conditions: list[Doc], run_hash: str | None, spec_xml: str,
                       now: float) -> list[Doc]:
    """`RestartRequired` is True while the running domain was started from other XML."""
    others = [c for c in conditions if c.get("type") != "RestartRequired"]
    if run_hash is None or run_hash == xml_hash(spec_xml):
        return others
    old = next((c for c in conditions if c.get("type") == "RestartRequired"), None)
    since = old["lastTransitionTime"] if old else now
    return [*others, {"type": "RestartRequired", "status": "True", "reason": "XMLChanged",
                      "message": "the domain XML changed; it applies at the next start",
                      "lastTransitionTime": since}]


def migrated_out(old: Doc, *, call_ms: int) -> Doc:
    """The source's live migration call returned: the guest runs on the target now (the
    source hands it over once libvirt no longer lists it here)."""
    return {**old, "migration": {**(old.get("migration") or {}), "handedOver": True,
                                 "callMs": call_ms}}


def migration_progress(old: Doc, *, disk: tuple[int, int], memory: tuple[int, int]) -> Doc:
    """How far the running live migration got: (done, total) bytes of the disks copied
    along and of the memory."""
    moving = old.get("migration")
    if not moving:
        return old
    return {**old, "migration": {**moving, "diskCopied": disk[0], "diskTotal": disk[1],
                                 "memoryCopied": memory[0], "memoryTotal": memory[1]}}


def disk_copy(old: Doc, *, source: str, target: str, started: float,
              copied: tuple[int, int]) -> Doc:
    """The target copies the VM's local volumes from `source` before it starts it (moved
    while off, or by shutdown): (done, total) bytes, shown as the move's disk progress."""
    return {**old, "migration": {"source": source, "target": target, "method": "shutdown",
                                 "started": started, "diskCopied": copied[0],
                                 "diskTotal": copied[1]}}


def live_failed(old: Doc, *, reason: str) -> Doc:
    """A live migration of method `any` failed: the next steps move the VM by shutdown."""
    return {**old, "reason": reason[:256],
            "migration": {**(old.get("migration") or {}), "liveFailed": True}}


def failed(old: Doc, *, reason: str, now: float, for_good: int | None = None) -> Doc:
    """A libvirt failure of the node's step (`since` kept while it stays failed). A
    permanent one names the spec generation it failed for (`failedGeneration`: the node
    tries again only once the spec changes)."""
    new = {**old, "state": "failed", "reason": reason[:256],
           "since": old.get("since", 0.0) if old.get("state") == "failed" else now}
    if for_good is not None:
        new["failedGeneration"] = for_good
    return new


def off_here(old: Doc, *, node: str, now: float) -> Doc:
    """Status placed the VM on `node`, where it is gone and nobody owns it (the guest went
    with a restart): off, so that the node it is placed on may start it."""
    return {**old, "state": "stopped", "node": None, "since": now,
            "reason": f"not running on {node}", "shutdownDeadline": None, "migration": None}


def shut_down_here(old: Doc, *, node: str, now: float, forced: bool) -> Doc:
    """`node` shut the guest down as its host shuts down (`config.shutdownPolicy: stop`):
    off, still placed there; it starts again when that node is back."""
    how = "forced off" if forced else "shut down"
    return {**old, "state": "stopped", "node": None, "since": now,
            "reason": f"{how} with node {node} (shutdownPolicy stop)",
            "shutdownDeadline": None, "migration": None, "runningXmlHash": None}


def unknown(old: Doc, *, node: str, now: float) -> Doc:
    """The primary's word on a VM of a node that stopped answering (before its fence)."""
    return {**old, "state": "unknown", "reason": f"node {node} is not responding",
            "since": now}


def fenced_off(old: Doc, *, node: str, now: float) -> Doc:
    """The primary's word on a VM left on a fenced node: off (the fence confirmed it)."""
    return {**old, "state": "stopped", "node": None, "since": now,
            "reason": f"{node} was fenced", "shutdownDeadline": None}
