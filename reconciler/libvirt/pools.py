"""The blocking libvirt storage-pool verbs behind `reconciler.storage.nodepools`.

Each function takes the node's `Connection` and runs in a worker thread. Herd's pools
carry a UUID derived from their name (`statemachine.poolplan.pool_uuid`), which is how
they are told from the operator's. A local pool is built (its directory made) as it is
started; a shared one never is. An rbd pool authenticates with a libvirt secret holding
the node's cephx key (from the node's config, never from ZooKeeper). Removal stops and
undefines, never deletes. Every libvirt failure comes out as `HypervisorError`.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import libvirt
from defusedxml import ElementTree

from reconciler.libvirt.connection import Connection, libvirt_call
from statemachine.poolplan import LibvirtPool, PoolSpec, pool_uuid, secret_uuid
from vocabulary import PoolKind


def pool_xml(spec: PoolSpec) -> str:
    """The definition of Herd's libvirt pool for `spec`."""
    head = (f"<pool type='{spec.libvirt_type}'><name>{escape(spec.name)}</name>"
            f"<uuid>{pool_uuid(spec.name)}</uuid>")
    if spec.kind != PoolKind.RBD:
        return f"{head}<target><path>{escape(spec.path or '')}</path></target></pool>"
    hosts = "".join(_host(m) for m in spec.monitors)
    return (f"{head}<source>{hosts}<name>{escape(spec.rbd_pool or '')}</name>"
            f"<auth type='ceph' username={quoteattr(spec.user or '')}>"
            f"<secret uuid='{secret_uuid(spec.name)}'/></auth></source></pool>")


def _host(monitor: str) -> str:
    name, _, port = monitor.rpartition(":") if monitor.count(":") == 1 else (monitor, "", "")
    attrs = f"name={quoteattr(name)}" + (f" port={quoteattr(port)}" if port else "")
    return f"<host {attrs}/>"


def list_pools(c: Connection) -> dict[str, LibvirtPool]:
    with libvirt_call(f"cannot list storage pools on {c.uri}"):
        return {p.name(): _describe(p) for p in c.get().listAllStoragePools()}


def _describe(pool: libvirt.virStoragePool) -> LibvirtPool:
    root = ElementTree.fromstring(pool.XMLDesc(0))
    path = root.findtext("target/path") if root.get("type") == "dir" else \
        root.findtext("source/name")
    return LibvirtPool(name=str(pool.name()), uuid=str(pool.UUIDString()),
                       type=str(root.get("type")), path=path, active=bool(pool.isActive()),
                       autostart=bool(pool.autostart()))


def define(c: Connection, spec: PoolSpec, *, key: str | None) -> None:
    """Define the pool (and, for rbd, the secret holding the node's cephx key)."""
    with libvirt_call(f"cannot define storage pool {spec.name!r} on {c.uri}"):
        if spec.kind == PoolKind.RBD and key is not None:
            secret = c.get().secretDefineXML(
                f"<secret ephemeral='no' private='yes'><uuid>{secret_uuid(spec.name)}</uuid>"
                f"<usage type='ceph'><name>herd-{escape(spec.name)}</name></usage></secret>")
            secret.setValue(key.encode())
        c.get().storagePoolDefineXML(pool_xml(spec), 0)


def start(c: Connection, spec: PoolSpec) -> None:
    """Start the pool (a local one is built first: its directory made if missing)."""
    with libvirt_call(f"cannot start storage pool {spec.name!r} on {c.uri}"):
        pool = c.get().storagePoolLookupByName(spec.name)
        if pool.isActive():
            return
        if spec.kind == PoolKind.LOCAL:
            pool.build(0)
        pool.create(0)


def autostart(c: Connection, name: str) -> None:
    with libvirt_call(f"cannot set autostart of storage pool {name!r} on {c.uri}"):
        c.get().storagePoolLookupByName(name).setAutostart(1)


def usage(c: Connection, name: str) -> tuple[int, int, int]:
    """(capacity, allocation, available) in bytes, after a refresh."""
    with libvirt_call(f"cannot read storage pool {name!r} on {c.uri}"):
        pool = c.get().storagePoolLookupByName(name)
        pool.refresh(0)
        _state, capacity, allocation, available = pool.info()
        return int(capacity), int(allocation), int(available)


def undefine(c: Connection, name: str) -> None:
    """Stop the pool if active and remove its definition (its data stays)."""
    with libvirt_call(f"cannot remove storage pool {name!r} on {c.uri}"):
        try:
            pool = c.get().storagePoolLookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                return
            raise
        if pool.isActive():
            pool.destroy()
        if pool.isPersistent():
            pool.undefine()
