"""What the API answers: VM and Node objects and their smaller views, built from the cache.

A `VMRecord` / `NodeRecord` gathers one object's znodes as the cache holds them; the
functions here turn records into JSON-ready dicts without copying the cached documents
(which must never be mutated: they are shared with the cache). Every object carries
`metadata.resourceVersion`, the mzxid of its main znode as a string (what PUT checks).
Called by the handlers, `server.cache` (list entries and watch events) and tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.common import API_VERSION
from store.client import Versioned
from store.codec import Doc
from vocabulary import UP_STATES


@dataclass(frozen=True)
class VMRecord:
    name: str
    spec: Versioned
    placement: Versioned | None
    status: Versioned | None
    owner: Versioned | None

    @property
    def spec_doc(self) -> Doc:
        spec = self.spec.doc.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def meta(self) -> Doc:
        meta = self.spec_doc.get("meta")
        return meta if isinstance(meta, dict) else {}

    @property
    def placement_doc(self) -> Doc:
        return self.placement.doc if self.placement else {}

    @property
    def status_doc(self) -> Doc:
        return self.status.doc if self.status else {}

    @property
    def owner_node(self) -> str | None:
        node = self.owner.doc.get("node") if self.owner else None
        return node if isinstance(node, str) else None

    @property
    def state(self) -> str | None:
        state = self.status_doc.get("state")
        return state if isinstance(state, str) else None

    @property
    def generation(self) -> int:
        return int(self.spec.doc.get("metadata", {}).get("generation", 1))


@dataclass(frozen=True)
class NodeRecord:
    name: str
    spec: Versioned
    status: Versioned | None
    alive: bool

    @property
    def status_doc(self) -> Doc:
        return self.status.doc if self.status else {}


def timestamp(ctime_ms: int) -> str:
    return datetime.fromtimestamp(ctime_ms / 1000, UTC).isoformat()


def _metadata(v: Versioned) -> Doc:
    return {**v.doc.get("metadata", {}), "resourceVersion": str(v.mzxid),
            "creationTimestamp": timestamp(int(v.stat.ctime))}


def vm_object(rec: VMRecord, *, xml: bool = True) -> Doc:
    """The whole VM: apiVersion, kind, metadata, spec, placement, status and owner."""
    spec = rec.spec_doc if xml else {k: v for k, v in rec.spec_doc.items() if k != "xml"}
    return {"apiVersion": rec.spec.doc.get("apiVersion", API_VERSION), "kind": "VM",
            "metadata": _metadata(rec.spec), "spec": spec,
            "placement": rec.placement.doc if rec.placement else None,
            "status": rec.status.doc if rec.status else None, "owner": rec.owner_node}


def vm_meta(rec: VMRecord) -> Doc:
    """GET/POST /vm/{vm}/meta: the metadata in the request's own (snake_case) terms."""
    meta = rec.meta
    return {"name": rec.name, "limits": meta.get("limits", []),
            "selector": meta.get("selector", "none"),
            "autorestart": meta.get("autorestart", False),
            "migration_method": meta.get("migrationMethod", "any"),
            "migration_max_downtime": meta.get("migrationMaxDowntime"),
            "shutdown_timeout": rec.spec_doc.get("shutdownTimeout"),
            "resourceVersion": str(rec.spec.mzxid)}


def vm_state(rec: VMRecord) -> Doc:
    """GET/POST /vm/{vm}/state: desired against observed."""
    spec, status = rec.spec_doc, rec.status_doc
    return {"name": rec.name, "desired": spec.get("state", "stopped"),
            "stopMode": spec.get("stopMode", "graceful"),
            "restartRequest": spec.get("restartRequest", 0), "generation": rec.generation,
            "state": rec.state, "reason": status.get("reason", ""),
            "since": status.get("since"), "node": status.get("node"),
            "observedRestart": status.get("observedRestart", 0),
            "observedGeneration": status.get("observedGeneration", 0),
            "resourceVersion": str(rec.spec.mzxid)}


def vm_placement(rec: VMRecord) -> Doc:
    """GET/POST /vm/{vm}/node: where the VM should run, where it runs, and why."""
    placement, status = rec.placement_doc, rec.status_doc
    running = rec.owner_node or (status.get("node") if rec.state in UP_STATES else None)
    return {"name": rec.name, "node": placement.get("node"),
            "lastNode": placement.get("lastNode"), "reason": placement.get("reason", ""),
            "autorestartPending": placement.get("autorestartPending", False),
            "home": placement.get("home"), "runningOn": running, "state": rec.state,
            "migration": status.get("migration")}


def node_object(rec: NodeRecord, *, primary: str | None) -> Doc:
    """The whole Node: metadata, spec, status (with resources), alive, primary."""
    return {"apiVersion": rec.spec.doc.get("apiVersion", API_VERSION), "kind": "Node",
            "metadata": _metadata(rec.spec), "spec": rec.spec.doc.get("spec", {}),
            "status": rec.status.doc if rec.status else None, "alive": rec.alive,
            "primary": primary == rec.name}


def node_domain_state(rec: NodeRecord) -> Doc:
    status = rec.status_doc
    return {"name": rec.name, "desired": rec.spec.doc.get("spec", {}).get("domainState"),
            "state": status.get("domainState"), "daemonState": status.get("daemonState"),
            "alive": rec.alive}


def summary(vms: Iterable[VMRecord], nodes: Iterable[NodeRecord], *,
            primary: str | None) -> Doc:
    """GET /status: the primary, nodes by state, VMs by state."""
    node_list, vm_list = list(nodes), list(vms)
    return {
        "primary": primary,
        "nodes": {"total": len(node_list), "alive": sum(n.alive for n in node_list),
                  "daemonState": dict(Counter(str(n.status_doc.get("daemonState", "unknown"))
                                              for n in node_list)),
                  "domainState": dict(Counter(str(n.status_doc.get("domainState", "unknown"))
                                              for n in node_list))},
        "vms": {"total": len(vm_list),
                "state": dict(Counter(v.state or "unknown" for v in vm_list)),
                "desired": dict(Counter(str(v.spec_doc.get("state", "stopped"))
                                        for v in vm_list))},
    }
