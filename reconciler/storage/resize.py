"""Growing a volume on its node (issue #15): `NodeVolumes` calls `grow` when the image's
capacity is below the volume's `spec.size` (the API only lets it go up).

- The VM holding the volume (its attachment) runs here: online, through that domain's
  disk naming the volume (virDomainBlockResize: the guest sees the new size at once);
- the VM is up (by its status) but not running here — starting, migrating, or running
  on another node of a shared pool: not now (a transient error: looked at again later),
  since resizing an image a QEMU has open elsewhere would go unseen or corrupt it;
- else (no VM, or a VM that is not up): offline (virStorageVolResize).
A refusal libvirt calls permanent (a driver without resize) comes out as the
`HypervisorError` it is, and `NodeVolumes` records it as `failed`, once per generation.
"""

from __future__ import annotations

import asyncio
import logging

from reconciler.libvirt import volumes as lv
from reconciler.libvirt.connection import Connection
from reconciler.libvirt.interface import HypervisorError
from store.client import Store
from store.errors import NotFound
from store.volumes import Volume
from vocabulary.vm import UP_STATES

log = logging.getLogger(__name__)


def _up_where(store: Store, vm: str) -> str | None:
    """The node VM `vm` is up on by its status (`?` when it says none), None when down."""
    try:
        status = store.get(store.paths.vm_status(vm)).doc
    except NotFound:
        return None
    return str(status.get("node") or "?") if status.get("state") in UP_STATES else None


async def grow(c: Connection, store: Store, vol: Volume, *, node: str,
               vm: str | None) -> lv.VolumeInfo | None:
    """Grow `vol`'s image to its `size` (see the module doc); its info afterwards."""
    target = await asyncio.to_thread(lv.running_disk, c, vm, vol.pool, vol.name) \
        if vm is not None else None
    if vm is not None and target is not None:
        await asyncio.to_thread(lv.block_resize, c, vm, target, size=vol.size)
        log.info("volume %s grown to %d bytes online (%s of %s)", vol.key, vol.size,
                 target, vm)
    else:
        where = await asyncio.to_thread(_up_where, store, vm) if vm is not None else None
        if where is not None:
            raise HypervisorError(f"volume {vol.key} grows later: VM {vm} is up on {where} "
                                  f"but does not run here ({node})")
        await asyncio.to_thread(lv.resize, c, vol.pool, vol.name, size=vol.size)
        log.info("volume %s grown to %d bytes offline", vol.key, vol.size)
    return await asyncio.to_thread(lv.find, c, vol.pool, vol.name)
