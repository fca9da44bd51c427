"""Volumes in ZooKeeper (issue #15): `<root>/volumes/<pool>/<name>` holds a Volume's
document (written by herd-api), its `status` child the node's account of it (`pending`,
`ready` with path and allocation, `failed` with the reason, `deleting`), both created in
one transaction. A volume lives in its pool's folder, made and removed with the pool, so
a pool with volumes cannot be removed.

Deletion has two phases, as Kubernetes' finalizers: the API marks the document
(`deletion`: when it was asked), the node that holds the volume deletes the image from
libvirt and then the znodes (version-checked). Blocking. Used by `server.storage` and
`reconciler.storage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from store import txn
from store.client import Store, Versioned
from store.codec import Doc
from store.objects import generation
from store.paths import Paths

PENDING, READY, FAILED = "pending", "ready", "failed"


@dataclass(frozen=True)
class Volume:
    pool: str
    name: str
    generation: int
    size: int
    format: str
    node: str | None
    source: str | None  # a volume of the same pool to copy
    deleting: bool

    @property
    def key(self) -> str:
        return f"{self.pool}/{self.name}"


def read_volume(pool: str, name: str, doc: Mapping[str, Any]) -> Volume:
    spec = doc.get("spec", {})
    source = spec.get("source") or {}
    return Volume(pool=pool, name=name, generation=generation(doc), size=int(spec["size"]),
                  format=str(spec.get("format", "qcow2")), node=spec.get("node"),
                  source=source.get("volume"), deleting=bool(doc.get("deletion")))


def create_ops(store: Store, pool: str, name: str, doc: Doc) -> list[txn.Op]:
    return [txn.Create(store.paths.volume(pool, name), doc),
            txn.Create(store.paths.volume_status(pool, name),
                       {"state": PENDING, "reason": "created", "since": time.time()})]


def mark_deleted(doc: Doc) -> Doc | None:
    """The document asked to be deleted (None when it is already)."""
    return None if doc.get("deletion") else {**doc, "deletion": {"requested": time.time()}}


def status_doc(state: str, *, reason: str = "", node: str | None = None,
               path: str | None = None, allocation: int = 0, capacity: int = 0) -> Doc:
    return {"state": state, "reason": reason[:256], "node": node, "path": path,
            "allocation": allocation, "capacity": capacity, "since": time.time()}


Getter = Callable[[str], Versioned | None]


def home_of(key: str, *, volume: Getter, pool: Getter, paths: Paths) -> str | None:
    """The node a volume (`pool/name`) lives on when its pool is local (None: a shared or
    rbd pool's, an unknown one's); `volume` and `pool` read documents by path."""
    pool_name, _, name = key.partition("/")
    found_pool = pool(paths.pool(pool_name))
    if found_pool is None or found_pool.doc.get("spec", {}).get("type") != "local":
        return None
    found = volume(paths.volume(pool_name, name))
    node = found.doc.get("spec", {}).get("node") if found is not None else None
    return node if isinstance(node, str) else None
