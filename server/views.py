"""What the API answers: VM, Node and Network objects and smaller views, from the cache.

The functions here turn `store.model` snapshots (`VM`, `Node`: one object's znodes as the
cache holds them) into JSON-ready dicts without copying the cached documents
(which must never be mutated: they are shared with the cache). Every object carries
`metadata.resourceVersion`, the mzxid of its main znode as a string (what PUT checks).
Called by the handlers, `server.cache` (list entries and watch events) and tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime

from schemas.common import API_VERSION
from store.client import Versioned
from store.codec import Doc
from store.model import VM, Node


def timestamp(ctime_ms: int) -> str:
    return datetime.fromtimestamp(ctime_ms / 1000, UTC).isoformat()


def _metadata(v: Versioned) -> Doc:
    return {**v.doc.get("metadata", {}), "resourceVersion": str(v.mzxid),
            "creationTimestamp": timestamp(int(v.stat.ctime))}


def vm_object(rec: VM, *, xml: bool = True) -> Doc:
    """The whole VM: apiVersion, kind, metadata, spec, placement, status and owner."""
    spec = rec.spec_doc if xml else {k: v for k, v in rec.spec_doc.items() if k != "xml"}
    return {"apiVersion": rec.api_version, "kind": "VM",
            "metadata": _metadata(rec.spec_znode), "spec": spec,
            "placement": rec.placement.doc if rec.placement is not None else None,
            "status": rec.status.doc if rec.status is not None else None,
            "owner": rec.owner_node}


def vm_meta(rec: VM) -> Doc:
    """GET/POST /vm/{vm}/meta: the metadata in the request's own (snake_case) terms."""
    meta = rec.meta
    return {"name": rec.name, "limits": list(rec.limits), "selector": rec.selector,
            "autorestart": rec.autorestart,
            "migration_method": meta.get("migrationMethod", "any"),
            "migration_max_downtime": meta.get("migrationMaxDowntime"),
            "shutdown_timeout": rec.spec_doc.get("shutdownTimeout"),
            "max_restart": rec.max_restart, "max_relocate": rec.max_relocate,
            "resourceVersion": str(rec.mzxid)}


def vm_state(rec: VM) -> Doc:
    """GET/POST /vm/{vm}/state: desired against observed."""
    status = rec.status_doc
    return {"name": rec.name, "desired": rec.want.value, "stopMode": rec.stop_mode.value,
            "restartRequest": rec.restart_request, "generation": rec.generation,
            "state": rec.state, "reason": status.get("reason", ""),
            "since": status.get("since"), "node": rec.status_node,
            "observedRestart": rec.observed_restart,
            "observedGeneration": status.get("observedGeneration", 0),
            "resourceVersion": str(rec.mzxid)}


def vm_placement(rec: VM) -> Doc:
    """GET/POST /vm/{vm}/node: where the VM should run, where it runs, and why."""
    return {"name": rec.name, "node": rec.home, "lastNode": rec.last_node,
            "reason": rec.placement_doc.get("reason", ""),
            "autorestartPending": rec.autorestart_pending, "home": rec.restart_home,
            "runningOn": rec.running_on, "state": rec.state,
            "migration": rec.status_doc.get("migration")}


def node_object(rec: Node, *, primary: str | None) -> Doc:
    """The whole Node: metadata, spec, status (with resources), alive, primary."""
    return {"apiVersion": rec.api_version, "kind": "Node",
            "metadata": _metadata(rec.spec_znode), "spec": rec.spec_doc,
            "status": rec.status.doc if rec.status is not None else None, "alive": rec.alive,
            "primary": primary == rec.name}


def doc_object(found: Versioned, kind: str, *, status: Versioned | None = None) -> Doc:
    """A Network, Pool, Volume or Rule: metadata and spec (a Volume: its status too,
    `deletion` once asked, and `leftovers` while nodes it moved away from still hold an
    old copy)."""
    obj = {"apiVersion": found.doc.get("apiVersion", API_VERSION), "kind": kind,
           "metadata": _metadata(found), "spec": found.doc.get("spec", {})}
    if kind == "Volume":
        obj["status"] = status.doc if status is not None else None
        for key in ("deletion", "leftovers"):
            if found.doc.get(key):
                obj[key] = found.doc[key]
    return obj


def network_object(found: Versioned) -> Doc:
    """The whole Network: metadata and spec (with its reservations and firewall rules)."""
    return doc_object(found, "Network")


def node_domain_state(rec: Node) -> Doc:
    return {"name": rec.name, "desired": rec.want.value if rec.want is not None else None,
            "state": rec.domain_state, "daemonState": rec.daemon_state, "alive": rec.alive}


def summary(vms: Iterable[VM], nodes: Iterable[Node], *,
            primary: str | None) -> Doc:
    """GET /status: the primary, nodes by state, VMs by state."""
    node_list, vm_list = list(nodes), list(vms)
    return {
        "primary": primary,
        "nodes": {"total": len(node_list), "alive": sum(n.alive for n in node_list),
                  "daemonState": dict(Counter(n.daemon_state or "unknown" for n in node_list)),
                  "domainState": dict(Counter(n.domain_state or "unknown"
                                              for n in node_list))},
        "vms": {"total": len(vm_list),
                "state": dict(Counter(v.state or "unknown" for v in vm_list)),
                "desired": dict(Counter(v.want.value for v in vm_list))},
    }
