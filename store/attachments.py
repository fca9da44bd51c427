"""Which VM a volume is attached to (issue #15): `<root>/volumes/<pool>/<vol>/attachment`
= `{vm}`, created, moved and deleted in the same transaction as the VM document whose
domain XML names the volume (`<disk type='volume'>`), as the MAC registry (`store.macs`)
is for NICs. A volume another VM holds makes that transaction fail (`AlreadyExists` on
the attachment's path: `clash_of`); a volume that does not exist fails it too (`NotFound`,
the create has no parent). A `<shareable/>` disk claims nothing: several VMs may use it.

`claim_ops` (pure, in `store.vms.define_ops`), `change_ops`, `release_ops` and `move_ops`
(which read the current attachments) as in `store.macs`. Blocking. Used by `store.vms`,
`store.macs.update_vm`, `server.vm_handlers` and `server.apply`.
"""

from __future__ import annotations

from marshmallow import ValidationError

from schemas.domaindisks import volume_disks
from store import txn
from store.client import Store, Versioned
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


def claim_ops(paths: Paths, vm: str, xml: object) -> list[txn.Op]:
    return [txn.Create(paths.volume_attachment(p, v), {"vm": vm})
            for p, v in sorted(_claimed(xml))]


def _own(store: Store, vm: str, keys: set[tuple[str, str]]) -> dict[str, Versioned]:
    found = store.get_many(store.paths.volume_attachment(p, v) for p, v in sorted(keys))
    return {path: x for path, x in found.items() if x.doc.get("vm") == vm}


def change_ops(store: Store, vm: str, old: object, new: object) -> list[txn.Op]:
    before, after = _claimed(old), _claimed(new)
    ops: list[txn.Op] = [txn.Create(store.paths.volume_attachment(p, v), {"vm": vm})
                         for p, v in sorted(after - before)]
    own = _own(store, vm, before - after)
    return ops + [txn.Delete(path, x.version) for path, x in sorted(own.items())]


def release_ops(store: Store, vm: str, xml: object) -> list[txn.Op]:
    own = _own(store, vm, _claimed(xml))
    return [txn.Delete(path, x.version) for path, x in sorted(own.items())]


def move_ops(store: Store, old: str, new: str, xml: object) -> list[txn.Op]:
    own = _own(store, old, _claimed(xml))
    return [txn.Set(path, {"vm": new}, x.version) for path, x in sorted(own.items())]
