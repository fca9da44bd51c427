"""The blocking live-migration verbs of the libvirt adapter: whether the driver can, the
migration itself (peer to peer, with a timeout; with `copy_disks`, those disks' data too:
NON_SHARED_DISK over libvirt's NBD channel, the target volumes precreated by the target's
libvirtd in its pool of the same name), the progress of a running one, and the migration
jobs libvirt reports.

Each function takes the `Connection` and runs in a worker thread of
`reconciler.libvirt.adapter.LibvirtHypervisor` (but `live_migration_supported`, read on
the loop: it asks libvirt once per connection).
"""

from __future__ import annotations

import threading
from contextlib import suppress

import libvirt
from defusedxml import ElementTree

from reconciler.libvirt.connection import Connection, libvirt_call
from reconciler.libvirt.interface import HypervisorError, MigrationProgress, MigrationStats

_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
          | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)


def live_migration_supported(c: Connection) -> bool:
    """True when the driver advertises live migration (QEMU); the test driver has none."""
    if c.live_migration is None:
        with libvirt_call(f"cannot read capabilities of {c.uri}"):
            caps = ElementTree.fromstring(c.get().getCapabilities())
        c.live_migration = caps.find("host/migration_features/live") is not None
    return c.live_migration


def migrate_live(c: Connection, name: str, *, dest_uri: str, migrate_uri: str | None = None,
                 max_downtime_ms: int | None = None, timeout_s: float | None = None,
                 copy_disks: tuple[str, ...] = (), shared_storage: bool = False) -> None:
    """Peer to peer; the definition moves with the domain. `migrate_uri` picks the data
    channel, `max_downtime_ms` the final pause allowed, `timeout_s` aborts a migration that
    has not finished by then, `copy_disks` (target devices) are copied with it.
    `shared_storage`: every other disk is a volume of a pool the operator declared shared
    (mounted alike on every node): libvirt's own guess, which knows NFS, CephFS, GlusterFS
    and a few more by their filesystem type and calls anything else unsafe, is waived
    (VIR_MIGRATE_UNSAFE), as Herd's fence recovery trusts the same declaration."""
    if not live_migration_supported(c):
        driver = str(c.get().getType()).lower()
        raise HypervisorError(f"live migration is not supported by the {driver} driver "
                              f"(domain {name!r})", code=libvirt.VIR_ERR_NO_SUPPORT)
    dom = c.lookup(name, "migrate")
    what = f"cannot migrate {name!r} to {dest_uri}"
    if max_downtime_ms is not None:
        with libvirt_call(what):
            dom.migrateSetMaxDowntime(max_downtime_ms)
    params: dict[str, str | list[str]] = {}
    if migrate_uri is not None:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = migrate_uri
    flags = _FLAGS
    if copy_disks:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = list(copy_disks)
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
    if shared_storage:
        flags |= libvirt.VIR_MIGRATE_UNSAFE
    _migrate(dom, dest_uri, params=params, flags=flags, timeout_s=timeout_s, what=what)


def migration_progress(c: Connection, name: str) -> MigrationProgress | None:
    """How far the domain's running outgoing migration got (None when none runs)."""
    dom = c.find(name)
    if dom is None:
        return None
    try:
        stats = dom.jobStats()
    except libvirt.libvirtError:
        return None
    if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
        return None
    return MigrationProgress(disk_done=int(stats.get("disk_processed", 0)),
                             disk_total=int(stats.get("disk_total", 0)),
                             memory_done=int(stats.get("memory_processed", 0)),
                             memory_total=int(stats.get("memory_total", 0)))


def migrating_out(c: Connection, name: str) -> bool:
    """True while an outgoing migration job of the domain runs here (one this daemon
    started before a restart, or someone else's)."""
    dom = c.find(name)
    if dom is None:
        return False
    try:
        stats = dom.jobStats()
    except libvirt.libvirtError as err:
        # OPERATION_UNSUPPORTED: QEMU's answer on the destination of an incoming migration
        # ("migration statistics are available only on the source host"): none goes out.
        if err.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_SUPPORT,
                                    libvirt.VIR_ERR_OPERATION_INVALID,
                                    libvirt.VIR_ERR_OPERATION_UNSUPPORTED):
            return False
        raise HypervisorError(f"cannot read the job of {name!r}: "
                              f"{err.get_error_message()}", code=err.get_error_code()) from err
    return bool(stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
                and stats.get("operation") == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)


def completed_migration(c: Connection, name: str) -> MigrationStats | None:
    """The statistics of the last migration that brought the domain here (libvirt keeps
    the completed job's on the destination too), or None when there are none."""
    dom = c.find(name)
    if dom is None:
        return None
    try:
        stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return None
    if stats.get("operation") not in (libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN,
                                      libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT):
        return None
    return MigrationStats(elapsed_ms=int(stats.get("time_elapsed", 0)),
                          downtime_ms=int(stats.get("downtime", 0)),
                          transferred_bytes=int(stats.get("data_processed", 0)))


def _migrate(dom: libvirt.virDomain, dest_uri: str, *, params: dict[str, str | list[str]],
             flags: int, timeout_s: float | None, what: str) -> None:
    """migrateToURI3, aborted by a timer after timeout_s (HypervisorError "aborted")."""
    expired = threading.Event()

    def abort() -> None:
        expired.set()
        with suppress(libvirt.libvirtError):
            dom.abortJob()

    timer = None if timeout_s is None else threading.Timer(timeout_s, abort)
    if timer is not None:
        timer.start()
    try:
        with libvirt_call(what):
            dom.migrateToURI3(dest_uri, params, flags)
    except HypervisorError as err:
        if expired.is_set():
            raise HypervisorError(f"{what}: aborted after {timeout_s} s",
                                  code=libvirt.VIR_ERR_OPERATION_ABORTED) from err
        raise
    finally:
        if timer is not None:
            timer.cancel()
