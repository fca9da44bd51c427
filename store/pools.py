"""Storage pools in ZooKeeper (issue #15): `<root>/pools/<name>`, a Pool's document, and
the typed `Pool` the node daemons and the API work with.

Writes are serialized through `<root>/pools` (`store.siblings`): a pool's path is checked
against the others in the same version-checked write. Blocking (callers use threads).
Used by `server.storage` and `reconciler.storage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store import txn
from store.client import Store
from store.codec import Doc
from store.objects import generation
from store.siblings import Siblings, read_siblings
from vocabulary import PoolKind


@dataclass(frozen=True)
class Rbd:
    monitors: tuple[str, ...]
    pool: str
    user: str
    secret: str  # the name of the cephx key in each node's config


@dataclass(frozen=True)
class Pool:
    name: str
    kind: PoolKind
    generation: int
    path: str | None = None
    rbd: Rbd | None = None


def read_pool(name: str, doc: Mapping[str, Any]) -> Pool:
    spec = doc.get("spec", {})
    rbd = spec.get("rbd")
    return Pool(name=name, kind=PoolKind(spec["type"]), generation=generation(doc),
                path=spec.get("path"),
                rbd=Rbd(tuple(rbd["monitors"]), rbd["pool"], rbd["user"], rbd["secret"])
                if rbd else None)


def read_all(store: Store) -> Siblings:
    return read_siblings(store, store.paths.pools)


def create_ops(store: Store, name: str, doc: Doc) -> list[txn.Op]:
    """The pool and its folder of volumes (`<root>/volumes/<pool>`)."""
    return [txn.Create(store.paths.pool(name), doc),
            txn.Create(store.paths.volume_pool(name), {})]


def delete_ops(store: Store, name: str, *, version: int) -> list[txn.Op]:
    """The pool and its (empty) folder of volumes: a pool that still has volumes is
    refused (`Refused`: the folder has children)."""
    return [txn.Delete(store.paths.volume_pool(name)),
            txn.Delete(store.paths.pool(name), version)]
