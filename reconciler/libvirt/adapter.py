"""`LibvirtHypervisor`: the `Hypervisor` of herd-node on libvirt, one connection per node.

`reconciler.daemon` makes one (unless a test or benchmark hands one in) and shares it with
`reconciler.vm.reconcile`; both await its verbs on the daemon's loop. Each blocking libvirt
call runs in a worker thread (`asyncio.to_thread`) here, so no caller wraps it: the
blocking work lives in `reconciler.libvirt.connection` (the connection, its liveness and
event registration), `.domains` (domain verbs, node usage), `.stats` (every domain's
figures in one call) and `.migration`.

Lifecycle events come through libvirtaio on the daemon's loop (`reconciler.libvirt.events`):
`await hv.start_events(callback)` delivers (domain name, `EventKind`, libvirt detail) on the
loop thread; the callback must only enqueue. Call `bind_event_loop()` on the loop before
`open()` where events are wanted from a remote driver (QEMU): the connection adds its socket
watch when it opens. After closing such a connection, `await settle_events()` before the
loop ends.
"""

from __future__ import annotations

import asyncio

from reconciler.libvirt import domains, migration, stats
from reconciler.libvirt.connection import Connection, Subscription
from reconciler.libvirt.events import bind_event_loop, settle_events
from reconciler.libvirt.interface import (
    DisconnectCallback,
    DomainInfo,
    DomainStats,
    EventCallback,
    HypervisorError,
    MigrationProgress,
    MigrationStats,
    NodeInfo,
    Usage,
)


class LibvirtHypervisor:
    """One libvirt connection and the verbs the reconciler needs (see `Hypervisor`)."""

    def __init__(self, uri: str) -> None:
        self.connection = Connection(uri)  # the blocking side (tests call it on the loop)

    @property
    def uri(self) -> str:
        return self.connection.uri

    @property
    def connected(self) -> bool:
        """Open, and libvirt has not reported the connection closed (EOF, keepalive)."""
        return self.connection.connected

    @property
    def live_migration_supported(self) -> bool:
        """True when the driver advertises live migration (QEMU); the test driver has none.
        Asks libvirt once per connection (on the calling thread), then remembers."""
        return migration.live_migration_supported(self.connection)

    # -- connection --

    async def open(self) -> None:
        """Connect (no-op when open); with events started, register them on the new
        connection. Bind the event loop before, if events are wanted."""
        await asyncio.to_thread(self.connection.open)

    async def close(self) -> None:
        """Close the connection (no-op when closed). Started events stay wanted: `open()`
        registers them again; `stop_events()` ends them."""
        await asyncio.to_thread(self.connection.close)

    async def reconnect(self) -> None:
        """Close and open again (events too, if started), e.g. after `on_disconnect`; retry
        it while it raises."""
        await asyncio.to_thread(self.connection.reconnect)

    # -- domains --

    async def list_domains(self) -> dict[str, DomainInfo]:
        """Every domain, running or only defined, by name."""
        return await asyncio.to_thread(domains.list_domains, self.connection)

    async def domain(self, name: str) -> DomainInfo | None:
        """The named domain, or None when libvirt has no such domain."""
        return await asyncio.to_thread(domains.domain, self.connection, name)

    async def define(self, xml: str) -> DomainInfo:
        """Create or update the persistent definition (a running domain gets it on next
        boot); an update without <uuid> keeps the existing domain's UUID."""
        return await asyncio.to_thread(domains.define, self.connection, xml)

    async def start(self, name: str) -> None:
        """Boot a defined domain; a running (or paused) one is left as it is."""
        await asyncio.to_thread(domains.start, self.connection, name)

    async def shutdown(self, name: str) -> None:
        """Ask the guest to power off (ACPI); it may ignore it. Off or absent: no-op."""
        await asyncio.to_thread(domains.shutdown, self.connection, name)

    async def destroy(self, name: str) -> None:
        """Power off now. Off or absent: no-op."""
        await asyncio.to_thread(domains.destroy, self.connection, name)

    async def undefine(self, name: str) -> None:
        """Remove the persistent definition with its managed save, snapshot and checkpoint
        metadata and NVRAM. A running domain goes on as a transient one. Absent: no-op."""
        await asyncio.to_thread(domains.undefine, self.connection, name)

    async def domain_xml(self, name: str, *, inactive: bool = False) -> str:
        """The live XML of a running domain, else (or with inactive) the persistent one."""
        return await asyncio.to_thread(domains.domain_xml, self.connection, name,
                                       inactive=inactive)

    # -- node --

    async def node_info(self) -> NodeInfo:
        """Total and free memory, CPUs and load. Free memory is the host's free + buffers +
        cache; the test driver reports none, so there it is total minus running domains."""
        return (await self.usage()).node

    async def usage(self) -> Usage:
        """The node and what its running domains take (one listing of the active domains)."""
        return await asyncio.to_thread(domains.usage, self.connection)

    async def all_domain_stats(self) -> list[DomainStats]:
        """Every domain's figures from one getAllDomainStats call (in a worker thread)."""
        return await asyncio.to_thread(stats.all_domain_stats, self.connection)

    # -- migration --

    async def migrate_live(self, name: str, dest_uri: str, *, migrate_uri: str | None = None,
                           max_downtime_ms: int | None = None, timeout_s: float | None = None,
                           copy_disks: tuple[str, ...] = (),
                           shared_storage: bool = False) -> None:
        """Live-migrate to the libvirtd at dest_uri (peer to peer; the definition moves with
        it). `migrate_uri` picks the data channel, `max_downtime_ms` the final pause allowed,
        `timeout_s` aborts a migration that has not finished by then, `copy_disks` (target
        devices) are copied along, `shared_storage` waives libvirt's guess whether the other
        disks are shared (see `migration.migrate_live`)."""
        await asyncio.to_thread(migration.migrate_live, self.connection, name,
                                dest_uri=dest_uri, migrate_uri=migrate_uri,
                                max_downtime_ms=max_downtime_ms, timeout_s=timeout_s,
                                copy_disks=copy_disks, shared_storage=shared_storage)

    async def migration_progress(self, name: str) -> MigrationProgress | None:
        """How far the domain's running outgoing migration got (None when none runs)."""
        return await asyncio.to_thread(migration.migration_progress, self.connection, name)

    async def migrating_out(self, name: str) -> bool:
        """True while an outgoing migration job of the domain runs here (one this daemon
        started before a restart, or someone else's)."""
        return await asyncio.to_thread(migration.migrating_out, self.connection, name)

    async def completed_migration(self, name: str) -> MigrationStats | None:
        """The statistics of the last migration that brought the domain here (libvirt keeps
        the completed job's on the destination too), or None when there are none."""
        return await asyncio.to_thread(migration.completed_migration, self.connection, name)

    # -- events --

    async def start_events(self, callback: EventCallback, *,
                           on_disconnect: DisconnectCallback | None = None) -> None:
        """Deliver lifecycle events to callback(name, kind, detail) on the running loop, and
        connection loss to on_disconnect(reason). Both must only enqueue."""
        loop = asyncio.get_running_loop()
        c = self.connection
        if c.events is not None:
            raise HypervisorError(f"events of {c.uri} are already started "
                                  "(stop_events() ends them)")
        bind_event_loop(loop)
        c.check_event_capable(loop)
        events = c.events = Subscription(callback=callback, on_disconnect=on_disconnect,
                                         loop=loop)
        try:
            await asyncio.to_thread(c.register_events, events)
        except BaseException:
            await self.stop_events()
            raise

    async def stop_events(self) -> None:
        """Deregister the callback and wait until libvirtaio's leftover tasks have ended."""
        c = self.connection
        events, c.events = c.events, None
        conn = c.raw
        if events is not None and conn is not None and events.callback_id is not None:
            await asyncio.to_thread(Connection.deregister_events, conn, events)
        await settle_events()
