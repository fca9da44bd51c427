"""Fetch: before a VM starts here, its volumes that live on another node's local pool are
copied here (issue #15), as a kubelet pulls an image before it starts a container.

A VM with local volumes moves live with them (`reconciler.vm.migration`), or, moved while
off or by shutdown, the target copies them when it starts the VM: the actuator's start
(`reconciler.vm.act`) has already claimed the owner znode and said `starting`, so no other
node starts it meanwhile. `DiskFetcher.fetch` reads the VM's volumes on local pools of
other nodes, copies each from the libvirtd of the node that holds it (its `migrationUri`;
`reconciler.libvirt.volcopy`) with status showing the bytes copied
(`status.migration` diskCopied/diskTotal, what `herdctl vm move --wait` draws), then moves
their documents here in ONE version-checked transaction (the old copies listed as
`leftovers`, deleted by their node once the VM runs here: `reconciler.storage.nodevolumes`).
A failure is a `HypervisorError` the actuator records and retries with backoff; the next
attempt starts the copy afresh.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from reconciler.libvirt.connection import Connection
from reconciler.libvirt.interface import HypervisorError
from reconciler.libvirt.volcopy import Progress, pull
from reconciler.vm.migration import libvirt_uri
from reconciler.vm.observe import Observation
from reconciler.vm.record import StatusWriter
from schemas.domaindisks import VolumeDisk
from store import events, txn
from store import vmstatus as status
from store import volumes as vols
from store.client import Versioned
from store.errors import StoreError

log = logging.getLogger(__name__)

REPORT_EVERY = 0.5  # seconds between two progress writes to status


class DiskFetcher:
    """Copies a VM's volumes here from the node that holds them (see the module doc)."""

    def __init__(self, writer: StatusWriter, connection: Connection | None) -> None:
        self.writer, self.connection = writer, connection
        self.store, self.node, self.clock = writer.store, writer.node, writer.clock

    async def fetch(self, obs: Observation) -> None:
        """Copy here the VM's volumes that live on other nodes' local pools (none: return)."""
        away = await asyncio.to_thread(vols.away_disks, self.store, obs.vm.xml,
                                       node=self.node)
        if not away:
            return
        if self.connection is None:
            raise HypervisorError(f"cannot copy the volumes of {obs.name!r} here: this "
                                  "node's hypervisor has no libvirt storage")
        source = _one_source(obs.name, away)
        uri = await libvirt_uri(self.store, source)
        progress, began = Progress(), self.clock()
        reporting = asyncio.create_task(self._report(obs.name, source, progress, began))
        try:
            for disk, found in away:
                await self._pull(uri, disk, found, progress)
        finally:
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
        await asyncio.to_thread(txn.commit_one, self.store, [
            txn.Set(self.store.paths.volume(d.pool, d.volume),
                    vols.moved_doc(found.doc, source=source, target=self.node), found.version)
            for d, found in away])
        await self._record(obs.name, source, progress, began)

    async def _pull(self, uri: str, disk: VolumeDisk, found: Versioned,
                    progress: Progress) -> None:
        assert self.connection is not None  # fetch checked
        fmt = str(found.doc.get("spec", {}).get("format", "qcow2"))
        copy = partial(pull, self.connection, uri, disk.pool, disk.volume, fmt=fmt,
                       progress=progress)
        try:
            await asyncio.to_thread(copy)
        except asyncio.CancelledError:  # the daemon stops: the thread gives up soon
            progress.cancelled.set()
            raise

    async def _report(self, name: str, source: str, progress: Progress,
                      began: float) -> None:
        """Status shows the bytes copied, every REPORT_EVERY seconds while it runs."""
        shown = (-1, -1)
        while True:
            await asyncio.sleep(REPORT_EVERY)
            now = (progress.done, progress.total)
            if now == shown:
                continue
            try:
                await self.writer.update(name, partial(
                    status.disk_copy, source=source, target=self.node, started=began,
                    copied=now))
                shown = now
            except StoreError as e:  # progress is news, not state
                log.debug("%s: no copy progress now: %s", name, e)

    async def _record(self, name: str, source: str, progress: Progress,
                      began: float) -> None:
        took = self.clock() - began
        message = (f"{name}: volumes copied {source} -> {self.node} "
                   f"({progress.done >> 20} MiB in {took:.1f}s)")
        log.info("%s", message)
        try:
            await asyncio.to_thread(events.record, self.store, "volumes-copied", message,
                                    vm=name, source=source, target=self.node,
                                    bytes=progress.done, duration=round(took, 3))
        except StoreError:  # the record is history, not state
            log.exception("%s: cannot record the copy", name)


def _one_source(name: str, away: list[tuple[VolumeDisk, Versioned]]) -> str:
    nodes = sorted({str(found.doc["spec"]["node"]) for _, found in away})
    if len(nodes) > 1:
        raise HypervisorError(f"cannot start {name!r} here: its volumes on local pools "
                              f"live on {' and '.join(nodes)}")
    return nodes[0]
