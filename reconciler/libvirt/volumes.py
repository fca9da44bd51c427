"""The blocking libvirt storage-volume verbs behind `reconciler.storage.nodevolumes`: find,
create (empty, or a copy of another volume of the pool), delete. Each takes the node's
`Connection` and runs in a worker thread; every libvirt failure comes out as
`HypervisorError`. qcow2 images need `qemu-img` on the host (Debian's qemu-utils).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

import libvirt

from reconciler.libvirt.connection import Connection, libvirt_call


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
    return (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{size}</capacity>"
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


def delete(c: Connection, pool: str, name: str) -> None:
    """Delete the volume and its data; absent: nothing to do."""
    with libvirt_call(f"cannot delete volume {pool}/{name} on {c.uri}"):
        vol = _lookup(c, pool, name)
        if vol is not None:
            vol.delete(0)
