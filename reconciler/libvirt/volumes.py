"""The blocking libvirt storage-volume verbs behind `reconciler.storage.nodevolumes`: find,
create (empty, or a full copy of another volume of the pool: virStorageVolCreateXMLFrom,
which for a directory pool runs `qemu-img convert` into the new volume's own format),
delete, and growing (`reconciler.storage.resize`): offline (virStorageVolResize) or
through the running domain whose disk names the volume (virDomainBlockResize). Each takes
the node's `Connection` and runs in a worker thread; every libvirt failure comes out as
`HypervisorError`. qcow2 images need `qemu-img` on the host (Debian's qemu-utils).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

import libvirt
from defusedxml import ElementTree

from reconciler.libvirt.connection import Connection, libvirt_call
from reconciler.libvirt.interface import HypervisorError


@dataclass(frozen=True)
class VolumeInfo:
    path: str
    capacity: int
    allocation: int


def _lookup(c: Connection, pool: str, name: str) -> libvirt.virStorageVol | None:
    try:
        return c.get().storagePoolLookupByName(pool).storageVolLookupByName(name)
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def find(c: Connection, pool: str, name: str) -> VolumeInfo | None:
    with libvirt_call(f"cannot look at volume {pool}/{name} on {c.uri}"):
        vol = _lookup(c, pool, name)
        if vol is None:
            return None
        _kind, capacity, allocation = vol.info()
        return VolumeInfo(str(vol.path()), int(capacity), int(allocation))


def volume_xml(name: str, *, size: int, fmt: str) -> str:
    """A thin volume: allocation 0 (libvirt would otherwise preallocate a raw image
    whole); blocks are taken as the guest writes, as on Proxmox's directory storage."""
    return (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
            f"<allocation unit='bytes'>0</allocation>"
            f"<target><format type='{escape(fmt)}'/></target></volume>")


def create(c: Connection, pool: str, name: str, *, size: int, fmt: str,
           source: str | None = None) -> None:
    """Make the volume (a copy of `source`, a volume of the same pool, when given)."""
    with libvirt_call(f"cannot create volume {pool}/{name} on {c.uri}"):
        lv_pool = c.get().storagePoolLookupByName(pool)
        xml = volume_xml(name, size=size, fmt=fmt)
        if source is None:
            lv_pool.createXML(xml, 0)
        else:
            lv_pool.createXMLFrom(xml, lv_pool.storageVolLookupByName(source), 0)


def see(c: Connection, pool: str, name: str) -> None:
    """Make libvirt here list a volume another host made in a shared pool (a refresh of
    the pool when it does not yet); HypervisorError while the volume is not there."""
    with libvirt_call(f"cannot look at volume {pool}/{name} on {c.uri}"):
        if _lookup(c, pool, name) is not None:
            return
        c.get().storagePoolLookupByName(pool).refresh(0)
        seen = _lookup(c, pool, name) is not None
    if not seen:
        raise HypervisorError(f"volume {pool}/{name} is not in the pool on {c.uri} yet")


def delete(c: Connection, pool: str, name: str) -> None:
    """Delete the volume and its data; absent: nothing to do."""
    with libvirt_call(f"cannot delete volume {pool}/{name} on {c.uri}"):
        vol = _lookup(c, pool, name)
        if vol is not None:
            vol.delete(0)


def resize(c: Connection, pool: str, name: str, *, size: int) -> None:
    """Grow the volume's image to `size` bytes, offline (no guest may have it open)."""
    with libvirt_call(f"cannot resize volume {pool}/{name} on {c.uri}"):
        c.get().storagePoolLookupByName(pool).storageVolLookupByName(name).resize(size, 0)


def running_disk(c: Connection, vm: str, pool: str, name: str) -> str | None:
    """The target (`vda`) of the disk naming volume `pool/name` in domain `vm` when that
    domain runs here; None when it does not run here or has no such disk."""
    with libvirt_call(f"cannot look at the disks of {vm!r} on {c.uri}"):
        dom = c.find(vm)
        if dom is None or not dom.isActive():
            return None
        devices = ElementTree.fromstring(dom.XMLDesc(0)).find("devices")
    for disk in devices.findall("disk") if devices is not None else []:
        source, target = disk.find("source"), disk.find("target")
        if disk.get("type") == "volume" and source is not None and target is not None \
                and (source.get("pool"), source.get("volume")) == (pool, name):
            return target.get("dev")
    return None


def block_resize(c: Connection, vm: str, target: str, *, size: int) -> None:
    """Grow the disk `target` of the running domain `vm` to `size` bytes (the guest sees
    the new size at once)."""
    with libvirt_call(f"cannot resize disk {target} of {vm!r} on {c.uri}"):
        dom = c.lookup(vm, "resize a disk of")
        dom.blockResize(target, size, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
