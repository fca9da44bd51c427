"""The pure decisions of the node shutdown policy (`reconciler.node.shutdown`, which does
the I/O): whether systemd is shutting the host down, whether a node going down with
`migrate` flushes itself, the version-checked transactions of that flush and of the
node's return (its mark: `status.shutdownFlush`, the spec generation its flush wrote),
when a VM that left is out of the node's hands, and which guests `stop` shuts down.
No I/O; unit-tested in tests/unit/test_node_shutdown.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.libvirt import DomainInfo
from store import nodestatus, txn
from store.client import Versioned
from store.model import VM, Node
from store.objects import generation, node_patch
from store.paths import Paths
from store.placement import NodeView
from vocabulary import (
    UP_RUN_STATES,
    DesiredDomainState,
    DesiredState,
    DomainState,
    ShutdownPolicy,
    VMState,
)

SHUTDOWN_TARGETS = frozenset({"shutdown.target", "reboot.target", "poweroff.target",
                              "halt.target", "kexec.target"})


def shutdown_queued(jobs: str) -> bool:
    """Whether systemd's jobs (`systemctl --full --no-legend list-jobs`: JOB UNIT TYPE
    STATE lines) have the host's shutdown or reboot queued."""
    for line in jobs.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and fields[1] in SHUTDOWN_TARGETS:
            return True
    return False


def policy_of(value: Any) -> ShutdownPolicy:
    """The cluster's `shutdownPolicy` (the default, migrate, when absent or unknown)."""
    try:
        return ShutdownPolicy(value)
    except ValueError:
        return ShutdownPolicy.MIGRATE


@dataclass(frozen=True)
class FlushDecision:
    """Whether the node writes its own flush (`write`), waits for it (`wait`), and why."""

    write: bool
    wait: bool
    why: str


def flush_decision(node: Node, others: Iterable[NodeView], primary: str | None) -> FlushDecision:
    """What a node going down with policy `migrate` does about its VMs."""
    if node.want == DesiredDomainState.FLUSHED and node.domain_state == DomainState.FLUSHED:
        return FlushDecision(False, False, "it is flushed already")
    if primary is None:
        return FlushDecision(False, False, "there is no primary coordinator to flush it")
    if not any(view.usable for view in others if view.name != node.name):
        return FlushDecision(False, False, "no other node is ready to take its VMs")
    if node.want == DesiredDomainState.FLUSHED:
        return FlushDecision(False, True, "its flush is under way")
    return FlushDecision(True, True, "it flushes itself")


def flush_ops(paths: Paths, name: str, node: Versioned, status: Versioned) -> list[txn.Op]:
    """The node's own flush for a shutdown: spec `flushed` and the status mark naming the
    spec generation written, version-checked; none when the spec is flushed already."""
    flushed = node_patch(node.doc, {"domainState": DesiredDomainState.FLUSHED.value})
    if flushed is None:
        return []
    marked = nodestatus.with_shutdown_flush(status.doc, generation(flushed))
    return [txn.Set(paths.node(name), flushed, node.version),
            txn.Set(paths.node_status(name), marked, status.version)]


def resume_ops(paths: Paths, name: str, node: Versioned, status: Versioned) -> list[txn.Op]:
    """Back after a shutdown: the mark goes; the spec is set `ready` again if the node
    flushed itself and nobody changed its spec since (its generation is the mark's)."""
    mark = status.doc.get("shutdownFlush")
    if mark is None:
        return []
    ops: list[txn.Op] = [txn.Set(paths.node_status(name),
                                 nodestatus.with_shutdown_flush(status.doc, None),
                                 status.version)]
    spec = node.doc.get("spec") or {}
    if spec.get("domainState") == DesiredDomainState.FLUSHED and generation(node.doc) == mark:
        ready = node_patch(node.doc, {"domainState": DesiredDomainState.READY.value})
        if ready is not None:
            ops.insert(0, txn.Set(paths.node(name), ready, node.version))
    return ops


def moved(vm: VM, node: str) -> bool:
    """Whether a VM placed on `node` as its flush began is out of the node's hands: it runs
    on the node it moved to (a target may need the source until then: it copies a stopped
    VM's volumes on a local pool from it), or it is not to run (stopped for lack of a
    target, deleted), or waits for a node."""
    if vm.want != DesiredState.RUNNING or vm.home is None:
        return True
    return vm.home != node and vm.state == VMState.RUNNING and vm.status_node == vm.home


def guests_to_stop(domains: Mapping[str, DomainInfo], timeouts: Mapping[str, float | None],
                   default: float) -> dict[str, float]:
    """The guests `stop` shuts down, with their seconds until forced off: the domains up
    here that Herd manages (`timeouts` has them, with their own shutdownTimeout or None
    for the cluster's), but a guest still migrating in."""
    return {name: timeouts[name] or default for name, info in sorted(domains.items())
            if name in timeouts and info.state in UP_RUN_STATES and not info.migrating_in}
