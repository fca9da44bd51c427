"""herd-node's hypervisor: what the daemon asks of it, and libvirt's answer.

Import the protocol and its values from here (`from reconciler.libvirt import Hypervisor,
RunState, HypervisorError`); importing this package loads no libvirt. The modules:

- `interface`: the async `Hypervisor` protocol and its value types (pure);
- `adapter`: `LibvirtHypervisor`, the real one: each blocking libvirt call in a worker thread;
- `connection`, `domains`, `migration`, `stats`: the blocking libvirt work under the adapter;
- `events`: libvirt's event loop on asyncio (`bind_event_loop`, `settle_events`).

Used by `reconciler.daemon` and `reconciler.vm.reconcile`; the in-memory fake for unit tests
is `tests.support.fakehypervisor`.
"""

from reconciler.libvirt.interface import (
    DisconnectCallback,
    DiskStats,
    DomainInfo,
    DomainStats,
    EventCallback,
    EventKind,
    Hypervisor,
    HypervisorError,
    InterfaceStats,
    MigrationProgress,
    MigrationStats,
    NodeInfo,
    Usage,
)
from vocabulary import RunState

__all__ = [
    "DisconnectCallback",
    "DiskStats",
    "DomainInfo",
    "DomainStats",
    "EventCallback",
    "EventKind",
    "Hypervisor",
    "HypervisorError",
    "InterfaceStats",
    "MigrationProgress",
    "MigrationStats",
    "NodeInfo",
    "RunState",
    "Usage",
]
