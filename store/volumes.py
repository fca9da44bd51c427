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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from schemas.domaindisks import VolumeDisk, plain_disks, volume_disks
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
    leftovers: tuple[str, ...] = ()  # nodes that still hold an old copy (moved live)

    @property
    def key(self) -> str:
        return f"{self.pool}/{self.name}"


def read_volume(pool: str, name: str, doc: Mapping[str, Any]) -> Volume:
    spec = doc.get("spec", {})
    source = spec.get("source") or {}
    return Volume(pool=pool, name=name, generation=generation(doc), size=int(spec["size"]),
                  format=str(spec.get("format", "qcow2")), node=spec.get("node"),
                  source=source.get("volume"), deleting=bool(doc.get("deletion")),
                  leftovers=tuple(doc.get("leftovers", ())))


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
    found = local_volume(key, volume=volume, pool=pool, paths=paths)
    return found[0] if found is not None else None


def local_volume(key: str, *, volume: Getter, pool: Getter,
                 paths: Paths) -> tuple[str, int] | None:
    """(node, size in bytes) of a volume (`pool/name`) on a local pool; None for a shared
    or rbd pool's, or an unknown one's."""
    pool_name, _, name = key.partition("/")
    found_pool = pool(paths.pool(pool_name))
    if found_pool is None or found_pool.doc.get("spec", {}).get("type") != "local":
        return None
    found = volume(paths.volume(pool_name, name))
    spec = found.doc.get("spec", {}) if found is not None else {}
    node = spec.get("node")
    return (node, int(spec.get("size", 0))) if isinstance(node, str) else None


def local_disks(store: Store, xml: object, *,
                node: str) -> list[tuple[VolumeDisk, Versioned]]:
    """The disks of `xml` whose volumes live on `node`'s local pools, each with its volume
    document as read now (for a live migration that copies them, and its hand-over)."""
    return [(d, found) for d, found in _on_local_pools(store, xml)
            if found.doc.get("spec", {}).get("node") == node]


def away_disks(store: Store, xml: object, *,
               node: str) -> list[tuple[VolumeDisk, Versioned]]:
    """The disks of `xml` whose volumes live on local pools of nodes other than `node`,
    each with its volume document as read now (to copy them here before a start)."""
    return [(d, found) for d, found in _on_local_pools(store, xml)
            if (home := found.doc.get("spec", {}).get("node")) is not None and home != node]


def _on_local_pools(store: Store, xml: object) -> list[tuple[VolumeDisk, Versioned]]:
    disks = _disks(xml)
    return _local_volumes(store, disks, _pool_kinds(store, disks))


def _pool_kinds(store: Store, disks: Collection[VolumeDisk]) -> dict[str, str | None]:
    """The type of each pool the disks name (None: no such pool), in one read."""
    if not disks:
        return {}
    pools = store.get_many({store.paths.pool(d.pool) for d in disks})
    return {d.pool: (found.doc.get("spec", {}).get("type") if (found := pools.get(
        store.paths.pool(d.pool))) is not None else None) for d in disks}


def _local_volumes(store: Store, disks: Collection[VolumeDisk],
                   kinds: Mapping[str, str | None]) -> list[tuple[VolumeDisk, Versioned]]:
    local = [d for d in disks if kinds.get(d.pool) == "local"]
    if not local:
        return []
    docs = store.get_many(store.paths.volume(d.pool, d.volume) for d in local)
    return [(d, found) for d in local
            if (found := docs.get(store.paths.volume(d.pool, d.volume))) is not None]


@dataclass(frozen=True)
class MigrationDisks:
    """What a live migration from `node` does with the VM's disks."""

    copied: tuple[str, ...]  # target devices of the volumes on the node's local pools
    shared: bool  # every other writable disk is a volume of a `shared` (or `rbd`) pool


def migration_disks(store: Store, xml: object, *, node: str) -> MigrationDisks:
    """The disks a live migration from `node` copies along, and whether all the others
    are volumes of pools declared `shared` (or `rbd`, at least one `shared`): it may then
    trust the declaration over libvirt's guess of the filesystem. Two reads at most."""
    disks = _disks(xml)
    kinds = _pool_kinds(store, disks)
    copied = tuple(d.target for d, found in _local_volumes(store, disks, kinds)
                   if found.doc.get("spec", {}).get("node") == node)
    rest = {kinds.get(d.pool) for d in disks if d.target not in copied}
    plain = plain_disks(xml) if isinstance(xml, str) else 0
    return MigrationDisks(copied, bool(rest) and not plain and "shared" in rest
                          and rest <= {"shared", "rbd"})


def handover_ops(store: Store, xml: object, *, source: str, target: str) -> list[txn.Op]:
    """The volume documents' side of a live migration's hand-over (in the VM's status
    transaction): each volume copied from `source` now lives on `target`, version-checked."""
    return [txn.Set(store.paths.volume(d.pool, d.volume),
                    moved_doc(found.doc, source=source, target=target), found.version)
            for d, found in local_disks(store, xml, node=source)]


def _disks(xml: object) -> tuple[VolumeDisk, ...]:
    if not isinstance(xml, str):
        return ()
    try:
        return volume_disks(xml)
    except ValidationError:
        return ()


def moved_doc(doc: Doc, *, source: str, target: str) -> Doc:
    """The volume document after its VM moved it from `source` to `target` (live, or
    copied before a start): the new node, and `source` among the `leftovers` (nodes
    holding an old copy to delete once the VM runs on `target`)."""
    leftovers = sorted({*doc.get("leftovers", ()), source} - {target})
    return {**doc, "spec": {**doc.get("spec", {}), "node": target}, "leftovers": leftovers}


def without_leftover(doc: Doc, node: str) -> Doc | None:
    """The document with `node`'s old copy gone (None when it was not listed)."""
    leftovers = list(doc.get("leftovers", ()))
    if node not in leftovers:
        return None
    rest = [n for n in leftovers if n != node]
    new = {k: v for k, v in doc.items() if k != "leftovers"}
    return {**new, "leftovers": rest} if rest else new
