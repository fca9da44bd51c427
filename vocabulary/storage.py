"""The vocabulary of storage (issue #15): a pool's kind. Pure; used by `schemas.storage`,
`statemachine.poolplan`, `store`, `reconciler.storage`, `server` and `ctl`.
"""

from __future__ import annotations

from enum import StrEnum


class PoolKind(StrEnum):
    """`spec.type` of a Pool."""

    LOCAL = "local"  # a directory on each node; a volume lives on one node
    SHARED = "shared"  # a path mounted alike on every node (NFS, CephFS...): volumes everywhere
    RBD = "rbd"  # Ceph RBD through libvirt's rbd pool
