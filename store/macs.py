"""The cluster's MAC addresses (issue #14): `<root>/macs/<mac>` = `{vm}`, one znode per
NIC address, created, moved and deleted in the same transaction as the VM document whose
domain XML has that NIC. A MAC another VM holds makes that transaction fail
(`AlreadyExists` on the MAC's path: `is_mac_clash`), so two VMs never get one address,
however concurrent their writes (the API's cache check only says it earlier and better).

- `claim_ops(paths, name, xml)`: the creates of a new VM's MACs (in `store.vms.define_ops`);
- `change_ops(store, name, old, new)`: an XML change: creates of the added MACs, deletes
  of the removed ones (only the VM's own entries, version-checked; reads them);
- `release_ops` (delete a VM) and `move_ops` (rename it), which read too;
- `update_vm(store, name, modify)`: `Store.update` of a VM's document with its MAC (and
  volume attachment: `store.attachments`) changes in the same transaction, retried on a
  version conflict.
The claims themselves are `store.registry`'s (shared with volume attachments). VMs stored
before the registry have no entries: their MACs are guarded by the cache check alone.
Blocking. Used by `store.vms`, `server.vm_handlers` and `server.apply`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from marshmallow import ValidationError

from schemas.domainnics import macs_of
from store import attachments, registry, txn
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, StoreError
from store.paths import Paths


def _macs(xml: object) -> set[str]:
    if not isinstance(xml, str) or "<interface" not in xml:
        return set()
    try:
        return set(macs_of(xml))
    except ValidationError:
        return set()


def is_mac_clash(paths: Paths, error: StoreError) -> str | None:
    """The MAC when `error` is a create of a MAC another VM holds, else None."""
    prefix = paths.macs + "/"
    text = str(error)
    return text[len(prefix):] if isinstance(error, AlreadyExists) and \
        text.startswith(prefix) else None


def _paths(paths: Paths, xml: object) -> set[str]:
    return {paths.mac(mac) for mac in _macs(xml)}


def claim_ops(paths: Paths, name: str, xml: object) -> list[txn.Op]:
    return registry.claim_ops(_paths(paths, xml), name)


def change_ops(store: Store, name: str, old: object, new: object) -> list[txn.Op]:
    return registry.change_ops(store, name, _paths(store.paths, old), _paths(store.paths, new))


def release_ops(store: Store, name: str, xml: object) -> list[txn.Op]:
    return registry.release_ops(store, name, _paths(store.paths, xml))


def move_ops(store: Store, old: str, new: str, xml: object) -> list[txn.Op]:
    return registry.move_ops(store, old, new, _paths(store.paths, xml))


def update_vm(store: Store, name: str, modify: Callable[[Doc], Doc | None], *,
              expect_mzxid: int | None = None, attempts: int = 10) -> Versioned:
    """`Store.update` of VM `name`'s document, its MAC registry changed in the same
    transaction; nothing written when `modify` answers None or the same document."""
    path = store.paths.vm(name)
    for _attempt in range(attempts):
        current = store.get(path)
        if expect_mzxid is not None and current.mzxid != expect_mzxid:
            raise Conflict(f"{path} is at resourceVersion {current.mzxid}, not {expect_mzxid}")
        new = modify(copy.deepcopy(current.doc))
        if new is None or new == current.doc:
            return current
        old_xml, new_xml = (d.get("spec", {}).get("xml") for d in (current.doc, new))
        ops = [*change_ops(store, name, old_xml, new_xml),
               *attachments.change_ops(store, name, old_xml, new_xml)] \
            if old_xml != new_xml else []
        try:
            txn.commit(store, [txn.Set(path, new, current.version), *ops])
        except Conflict:
            if expect_mzxid is not None:
                raise
            continue
        return store.get(path)
    raise Conflict(f"{path}: still conflicting after {attempts} attempts")
