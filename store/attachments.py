"""Which VM a volume is attached to (issue #15): `<root>/volumes/<pool>/<vol>/attachment`
= `{vm}`, created, moved and deleted in the same transaction as the VM document whose
domain XML names the volume (`<disk type='volume'>`), as the MAC registry (`store.macs`)
is for NICs. A volume another VM holds makes that transaction fail (`AlreadyExists` on
the attachment's path: `clash_of`); a volume that does not exist fails it too (`NotFound`,
the create has no parent). A `<shareable/>` disk claims nothing: several VMs may use it.

`claim_ops` (pure, in `store.vms.define_ops`), `change_ops`, `release_ops` and `move_ops`
(which read the current attachments) as in `store.macs`; the claims are
`store.registry`'s. Blocking. Used by `store.vms`,
`store.macs.update_vm`, `server.vm_handlers` and `server.apply`.
"""

from __future__ import annotations

from marshmallow import ValidationError

from schemas.domaindisks import volume_disks
from store import registry, txn, volumes
from store.client import Store
from store.errors import AlreadyExists, NotFound, StoreError
from store.paths import Paths


def _claimed(xml: object) -> set[tuple[str, str]]:
    """(pool, volume) of every disk of `xml` that holds its volume alone."""
    if not isinstance(xml, str) or "volume" not in xml:
        return set()
    try:
        return {(d.pool, d.volume) for d in volume_disks(xml) if not d.shareable}
    except ValidationError:
        return set()


def clash_of(paths: Paths, error: StoreError) -> str | None:
    """`pool/volume` when `error` is about a volume attachment, else None."""
    text, prefix = str(error), paths.volumes + "/"
    if isinstance(error, AlreadyExists | NotFound) and text.startswith(prefix) \
            and text.endswith("/attachment"):
        return text[len(prefix):-len("/attachment")]
    return None


def _paths(paths: Paths, xml: object) -> set[str]:
    return {paths.volume_attachment(p, v) for p, v in _claimed(xml)}


def claim_ops(paths: Paths, vm: str, xml: object) -> list[txn.Op]:
    return registry.claim_ops(_paths(paths, xml), vm)


def change_ops(store: Store, vm: str, old: object, new: object) -> list[txn.Op]:
    return registry.change_ops(store, vm, _paths(store.paths, old), _paths(store.paths, new))


def release_ops(store: Store, vm: str, xml: object) -> list[txn.Op]:
    return registry.release_ops(store, vm, _paths(store.paths, xml))


def move_ops(store: Store, old: str, new: str, xml: object) -> list[txn.Op]:
    return registry.move_ops(store, old, new, _paths(store.paths, xml))


def deletion_ops(store: Store, vm: str, xml: object) -> list[txn.Op]:
    """Marks for deletion (`store.volumes`) of the volumes `vm` holds alone, each set with
    the version read (for `vm remove --delete-volumes`, in the VM's own transaction)."""
    claimed = sorted(_claimed(xml))
    found = store.get_many(store.paths.volume_attachment(p, v) for p, v in claimed)
    held = [(p, v) for p, v in claimed
            if (x := found.get(store.paths.volume_attachment(p, v))) is not None
            and x.doc.get("vm") == vm]
    docs = store.get_many(store.paths.volume(p, v) for p, v in held)
    return [txn.Set(path, marked, x.version) for path, x in sorted(docs.items())
            if (marked := volumes.mark_deleted(x.doc)) is not None]
