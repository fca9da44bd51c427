"""Claims a VM makes in its own transaction (issues #14, #15): znodes `{vm}` that only
one VM may hold at a time — a NIC's MAC (`store.macs`), a volume's attachment
(`store.attachments`). A claim is a create (it fails when another VM holds it); a VM's
claims move with its XML (creates of the new ones, version-checked deletes of its old
ones), its rename (version-checked sets) and its removal (deletes). These functions take
the claims' paths; the callers say which paths an XML claims. Blocking where they read.
"""

from __future__ import annotations

from collections.abc import Iterable

from store import txn
from store.client import Store, Versioned


def claim_ops(paths: Iterable[str], vm: str) -> list[txn.Op]:
    return [txn.Create(path, {"vm": vm}) for path in sorted(paths)]


def _own(store: Store, vm: str, paths: Iterable[str]) -> dict[str, Versioned]:
    found = store.get_many(sorted(paths))
    return {path: x for path, x in found.items() if x.doc.get("vm") == vm}


def change_ops(store: Store, vm: str, before: set[str], after: set[str]) -> list[txn.Op]:
    own = _own(store, vm, before - after)
    return [*claim_ops(after - before, vm),
            *(txn.Delete(path, x.version) for path, x in sorted(own.items()))]


def release_ops(store: Store, vm: str, paths: set[str]) -> list[txn.Op]:
    return [txn.Delete(path, x.version) for path, x in sorted(_own(store, vm, paths).items())]


def move_ops(store: Store, old: str, new: str, paths: set[str]) -> list[txn.Op]:
    return [txn.Set(path, {"vm": new}, x.version)
            for path, x in sorted(_own(store, old, paths).items())]
