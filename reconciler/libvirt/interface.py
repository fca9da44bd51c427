"""What herd-node asks of a hypervisor: the `Hypervisor` protocol and the values it speaks.

The reconciler (`reconciler.vm.reconcile`) and the daemon (`reconciler.daemon`) hold a
`Hypervisor` and await its verbs on the daemon's asyncio loop; the verbs never block the
loop. The real one is `reconciler.libvirt.adapter.LibvirtHypervisor` (libvirt, each call in
a worker thread); unit tests use `tests.support.fakehypervisor.FakeHypervisor` (in memory).
Both answer alike where `tests/support/hvcontract.py` says so.

Every failure comes out as `HypervisorError` (libvirt's error code in `.code`, the domain
in the message). Verbs are idempotent where the reconciler needs it: starting a running
domain, shutting down or destroying a domain that is off or absent, undefining an absent
one are no-ops. Pure: this module imports no libvirt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from vocabulary import RunState


class EventKind(StrEnum):
    """libvirt's lifecycle event types (`VIR_DOMAIN_EVENT_*`)."""

    DEFINED = "defined"
    UNDEFINED = "undefined"
    STARTED = "started"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    STOPPED = "stopped"
    SHUTDOWN = "shutdown"
    PMSUSPENDED = "pmsuspended"
    CRASHED = "crashed"


DEFINED_UPDATED = 1  # VIR_DOMAIN_EVENT_DEFINED_UPDATED: an existing definition replaced


# callback(domain name, kind, libvirt's detail) and on_disconnect(libvirt's close reason):
# called on the loop that started the events; they must only enqueue.
EventCallback = Callable[[str, EventKind, int], None]
DisconnectCallback = Callable[[int], None]


@dataclass(frozen=True)
class DomainInfo:
    """One domain as the hypervisor has it now. `domain_id` is None unless it runs."""

    name: str
    uuid: str
    state: RunState
    domain_id: int | None
    memory_mib: int  # maximum memory (what the domain is provisioned with)
    vcpus: int
    persistent: bool
    migrating_in: bool = False  # paused because a migration into this host is under way


@dataclass(frozen=True)
class NodeInfo:
    """The hypervisor's resources. `load` is the 1-minute load average of this host for a
    local URI (`qemu:///system`), 0.0 for the test driver and for a remote host (libvirt
    reports no load average)."""

    mem_total_mib: int
    mem_free_mib: int
    cpus: int
    load: float


@dataclass(frozen=True)
class Usage:
    """The node, and the count, memory and vCPUs of its running domains."""

    node: NodeInfo
    running: int
    memory_mib: int
    vcpus: int


@dataclass(frozen=True)
class MigrationStats:
    """What libvirt measured of a completed migration."""

    elapsed_ms: int  # from the start of the job to its end
    downtime_ms: int  # the guest's final pause
    transferred_bytes: int


@dataclass(frozen=True)
class MigrationProgress:
    """How far a running live migration got (bytes): its disks' copy and the memory."""

    disk_done: int
    disk_total: int
    memory_done: int
    memory_total: int


@dataclass(frozen=True)
class DiskStats:
    """One disk's I/O since the domain started (libvirt's `block.<n>.*`)."""

    name: str  # the target device, e.g. vda
    read_bytes: int = 0
    write_bytes: int = 0
    read_requests: int = 0
    write_requests: int = 0


@dataclass(frozen=True)
class InterfaceStats:
    """One interface's traffic since the domain started (libvirt's `net.<n>.*`)."""

    name: str  # the host-side device, e.g. vnet0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    tx_packets: int = 0


@dataclass(frozen=True)
class DomainStats:
    """One domain's figures from one bulk stats call (`all_domain_stats`). A figure libvirt
    did not report (a domain that is off, a driver without it) is None or absent."""

    name: str
    state: RunState
    cpu_seconds: float | None = None
    balloon_current_bytes: int | None = None
    balloon_maximum_bytes: int | None = None
    balloon_rss_bytes: int | None = None
    disks: tuple[DiskStats, ...] = ()
    interfaces: tuple[InterfaceStats, ...] = ()


# libvirt's error codes that retrying cannot mend: the domain XML or the configuration it
# asks for is refused as such (VIR_ERR_NO_SUPPORT, VIR_ERR_XML_ERROR, VIR_ERR_XML_DETAIL,
# VIR_ERR_CONFIG_UNSUPPORTED, VIR_ERR_OPERATION_UNSUPPORTED, VIR_ERR_XML_INVALID_SCHEMA;
# numbers, so that this module loads no libvirt).
PERMANENT_CODES = frozenset({3, 27, 35, 67, 84, 92})


class HypervisorError(Exception):
    """A hypervisor call failed; `code` is libvirt's error code (`VIR_ERR_*`) when there
    is one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def permanent(self) -> bool:
        """Retrying the same call with the same input would fail the same way."""
        return self.code in PERMANENT_CODES


class Hypervisor(Protocol):
    """One connection to one node's hypervisor and the verbs the reconciler needs.

    The verbs are coroutines, awaited on the daemon's loop; the properties answer at once.
    """

    @property
    def uri(self) -> str:
        """The hypervisor's URI (libvirt's, e.g. `qemu:///system`)."""
        ...

    @property
    def connected(self) -> bool:
        """Open, and the hypervisor has not reported the connection closed."""
        ...

    @property
    def live_migration_supported(self) -> bool:
        """True when the driver can live-migrate (QEMU); the test driver cannot."""
        ...

    # -- connection --

    async def open(self) -> None:
        """Connect (no-op when open); with events started, register them again."""
        ...

    async def close(self) -> None:
        """Close (no-op when closed). Started events stay wanted: `open()` registers them
        again; `stop_events()` ends them."""
        ...

    async def reconnect(self) -> None:
        """Close and open again (events too, if started); retry it while it raises."""
        ...

    # -- domains --

    async def list_domains(self) -> dict[str, DomainInfo]:
        """Every domain, running or only defined, by name."""
        ...

    async def domain(self, name: str) -> DomainInfo | None:
        """The named domain, or None when there is no such domain."""
        ...

    async def define(self, xml: str) -> DomainInfo:
        """Create or update the persistent definition (a running domain gets it on next
        boot); an update without <uuid> keeps the existing domain's UUID."""
        ...

    async def start(self, name: str) -> None:
        """Boot a defined domain; a running (or paused) one is left as it is. Absent:
        HypervisorError (code VIR_ERR_NO_DOMAIN)."""
        ...

    async def shutdown(self, name: str) -> None:
        """Ask the guest to power off (ACPI); it may ignore it. Off or absent: no-op."""
        ...

    async def destroy(self, name: str) -> None:
        """Power off now. Off or absent: no-op."""
        ...

    async def undefine(self, name: str) -> None:
        """Remove the persistent definition; a running domain goes on as a transient one.
        Absent: no-op."""
        ...

    async def domain_xml(self, name: str, *, inactive: bool = False) -> str:
        """The live XML of a running domain, else (or with inactive) the persistent one."""
        ...

    # -- node --

    async def node_info(self) -> NodeInfo:
        """Total and free memory, CPUs and load."""
        ...

    async def usage(self) -> Usage:
        """The node and what its running domains take."""
        ...

    async def all_domain_stats(self) -> list[DomainStats]:
        """Every domain's state, CPU time, balloon, disk and interface figures, from ONE
        bulk call to the hypervisor (libvirt's getAllDomainStats), not one per domain."""
        ...

    # -- migration --

    async def migrate_live(self, name: str, dest_uri: str, *, migrate_uri: str | None = None,
                           max_downtime_ms: int | None = None, timeout_s: float | None = None,
                           copy_disks: tuple[str, ...] = (),
                           shared_storage: bool = False) -> None:
        """Live-migrate to the hypervisor at dest_uri (the definition moves with it; the
        data of the `copy_disks` too; `shared_storage`: the other disks are on storage Herd
        knows to be shared, whatever libvirt guesses); unsupported: HypervisorError
        (VIR_ERR_NO_SUPPORT)."""
        ...

    async def migration_progress(self, name: str) -> MigrationProgress | None:
        """How far the domain's running outgoing migration got (None when none runs)."""
        ...

    async def migrating_out(self, name: str) -> bool:
        """True while an outgoing migration job of the domain runs here."""
        ...

    async def completed_migration(self, name: str) -> MigrationStats | None:
        """The statistics of the last migration that brought the domain here, if any."""
        ...

    # -- events --

    async def start_events(self, callback: EventCallback, *,
                           on_disconnect: DisconnectCallback | None = None) -> None:
        """Deliver lifecycle events to callback(name, kind, detail) on the running loop, and
        connection loss to on_disconnect(reason). Both must only enqueue. Started twice:
        HypervisorError."""
        ...

    async def stop_events(self) -> None:
        """Stop delivering events (no-op when not started)."""
        ...
