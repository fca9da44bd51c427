"""A storage pool on one node (issue #15): what libvirt should have (`PoolSpec`), what it
has (`LibvirtPool`), and ONE step between them (`plan_pool`), as a table of rules that
tests enumerate; `plan_removal` removes the libvirt pools Herd made for pools the
cluster no longer has (told apart by their UUID, derived from the name: `pool_uuid`).

- local: a `dir` pool; libvirt builds (makes) its directory when it starts it;
- shared: a `dir` pool on a path mounted on every node: never built (a missing directory
  means the share is not mounted here: starting fails, and that is the reason given);
- rbd: an `rbd` pool with the node's cephx key in a libvirt secret (`secret_uuid`); a
  node without the key in its config cannot use the pool and says so.
Removal stops and undefines the libvirt pool; it never deletes data. Pure: imports
nothing of the project but `vocabulary`. Used by `reconciler.storage`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from vocabulary import PoolKind

_POOL_UUIDS = uuid.UUID("2b8f6c3e-7a41-5e9d-b0c2-6f1d3a8e4b57")  # uuid5 namespace


def pool_uuid(name: str) -> str:
    return str(uuid.uuid5(_POOL_UUIDS, f"pool:{name}"))


def secret_uuid(name: str) -> str:
    return str(uuid.uuid5(_POOL_UUIDS, f"secret:{name}"))


class PoolAction(StrEnum):
    DEFINE = "define"
    START = "start"
    AUTOSTART = "autostart"
    UNDEFINE = "undefine"  # stop and undefine (a wrong definition, or a pool gone)
    REFRESH = "refresh"  # done: read capacity and free space
    BLOCKED = "blocked"


@dataclass(frozen=True, kw_only=True)
class PoolSpec:
    """What this node should have for one pool (from the Pool and the node's config)."""

    name: str
    kind: PoolKind
    path: str | None = None
    monitors: tuple[str, ...] = ()
    rbd_pool: str | None = None
    user: str | None = None
    has_key: bool = False  # the node's config holds the cephx key the pool names

    @property
    def libvirt_type(self) -> str:
        return "rbd" if self.kind == PoolKind.RBD else "dir"


@dataclass(frozen=True, kw_only=True)
class LibvirtPool:
    """One storage pool of the node's libvirt."""

    name: str
    uuid: str
    type: str
    path: str | None = None  # dir pools: the target path; rbd: the Ceph pool name
    active: bool = False
    autostart: bool = False

    @property
    def herds(self) -> bool:
        return self.uuid == pool_uuid(self.name)


@dataclass(frozen=True)
class PoolStep:
    action: PoolAction
    pool: str
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.action in (PoolAction.REFRESH, PoolAction.BLOCKED)


def _where(spec: PoolSpec) -> str | None:
    return spec.rbd_pool if spec.kind == PoolKind.RBD else spec.path


Rule = tuple[str, Callable[[PoolSpec, LibvirtPool | None], bool], PoolAction, str]

ROWS: tuple[Rule, ...] = (
    ("no key", lambda s, _o: s.kind == PoolKind.RBD and not s.has_key, PoolAction.BLOCKED,
     "this node's config has no cephx key named by the pool (ceph_secrets)"),
    ("absent", lambda _s, o: o is None, PoolAction.DEFINE, ""),
    ("foreign", lambda _s, o: o is not None and not o.herds, PoolAction.BLOCKED,
     "libvirt has a pool of this name that Herd did not make"),
    ("wrong", lambda s, o: o is not None and (o.type != s.libvirt_type or o.path != _where(s)),
     PoolAction.UNDEFINE, ""),
    ("stopped", lambda _s, o: o is not None and not o.active, PoolAction.START, ""),
    ("no autostart", lambda _s, o: o is not None and not o.autostart, PoolAction.AUTOSTART,
     ""),
    ("up", lambda _s, _o: True, PoolAction.REFRESH, ""),
)


def plan_pool(spec: PoolSpec, observed: LibvirtPool | None) -> PoolStep:
    """The one step toward `spec` from what libvirt has (the first row that holds)."""
    for _label, holds, action, reason in ROWS:
        if holds(spec, observed):
            return PoolStep(action, spec.name, reason)
    raise AssertionError("the last row always holds")


def plan_removal(wanted: Iterable[str], observed: Mapping[str, LibvirtPool]) -> PoolStep | None:
    """The next pool of Herd's to undefine (the cluster no longer has it), or None."""
    keep = set(wanted)
    for name in sorted(observed):
        if observed[name].herds and name not in keep:
            return PoolStep(PoolAction.UNDEFINE, name)
    return None
