"""The typed model of a VM and a node: snapshots of one object's znodes, read one way.

`VM` holds the four znodes of `/vms/<name>` (the object, `placement`, `status`, `owner`)
and `Node` those of `/nodes/<name>` (the object, `status`, whether `alive` exists), each
as read together from the same source. Their properties are the one reading of the raw
documents (defaults included): callers ask `vm.want`, `vm.home`, `vm.needs`,
`node.domain_state`, never `.doc.get(...)`. The documents themselves are still at hand
(`spec_doc`, `placement_doc`, `status_doc`) for the writers, which build new ones with
`store.objects` / `store.nodestatus`, and for the API, which shows them as they are.

`read_vm` / `read_node` are the codec: they build a snapshot from any getter of
versioned documents by path, so the same code reads an `Informer`'s cache
(`informer.get`) and a pipelined ZooKeeper read (`store.get_many(...)`'s `found.get`);
`vm_paths` / `node_paths` list what to read. Snapshots are frozen and never copy the
documents: they are shared with the cache and must not be mutated.

Pure (no I/O). Used by the primary's controllers (`reconciler.cluster.controllers`) and by
the API server (`server.cache`, `server.access`, `server.views`, the handlers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from marshmallow import ValidationError

from schemas.common import API_VERSION
from schemas.domainnics import networks_named
from schemas.domainxml import domain_resources
from store.client import Versioned
from store.codec import Doc
from store.objects import generation
from store.paths import Paths
from store.placement import NodeView, VMNeeds
from vocabulary import (
    UP_STATES,
    DesiredDomainState,
    DesiredState,
    FenceMode,
    MigrationMethod,
    Selector,
    StopMode,
)

Getter = Callable[[str], Versioned | None]
"""Reads one znode by path: the document with its stat, or None when it does not exist."""

E = TypeVar("E", bound=StrEnum)


class Missing(LookupError):
    """A znode the caller needs is not in the snapshot (say, a VM deleted meanwhile)."""


def _dict(value: Any) -> Doc:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _member(enum: type[E], value: Any, default: E) -> E:
    """`value` as a member of `enum`; `default` when absent or not one of its words."""
    try:
        return enum(value)
    except ValueError:
        return default


@dataclass(frozen=True)
class _Object:
    """What a VM and a Node share: a name and the object's own znode (`spec`)."""

    KIND: ClassVar[str] = "object"

    name: str
    spec: Versioned | None

    @property
    def exists(self) -> bool:
        return self.spec is not None

    @property
    def spec_znode(self) -> Versioned:
        """The object's own znode; `Missing` when the object does not exist."""
        if self.spec is None:
            raise Missing(f"{self.KIND} {self.name!r} is not there")
        return self.spec

    @property
    def mzxid(self) -> int:
        """The object's mzxid (its API `resourceVersion`); 0 when it does not exist."""
        return self.spec.mzxid if self.spec is not None else 0

    @property
    def api_version(self) -> str:
        return str(self.spec.doc.get("apiVersion", API_VERSION)) if self.spec else API_VERSION

    @property
    def generation(self) -> int:
        return generation(self.spec.doc) if self.spec is not None else 1

    @property
    def spec_doc(self) -> Doc:
        """The object's `spec` (the user's desired state; {} when none)."""
        return _dict(self.spec.doc.get("spec")) if self.spec is not None else {}


@dataclass(frozen=True)
class Moving:
    """`status.migration`: a move the source node records while it moves the VM."""

    source: str | None
    target: str | None
    method: MigrationMethod | None  # live or shutdown
    started: float
    call_ms: int | None  # the source's libvirt call, start to return (live, once returned)
    handed_over: bool  # the live migration call returned: the guest runs on the target
    live_failed: bool  # the live migration failed; moved by shutdown and start instead

    @classmethod
    def of(cls, doc: Any) -> Moving | None:
        if not isinstance(doc, dict):
            return None
        call_ms = doc.get("callMs")
        return cls(source=_str(doc.get("source")), target=_str(doc.get("target")),
                   method=_member(MigrationMethod, doc.get("method"), MigrationMethod.SHUTDOWN)
                   if doc.get("method") is not None else None,
                   started=float(doc.get("started", 0.0)),
                   call_ms=int(call_ms) if isinstance(call_ms, int) else None,
                   handed_over=bool(doc.get("handedOver")),
                   live_failed=bool(doc.get("liveFailed")))


# --- VM ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VM(_Object):
    """One VM as read: its object (`spec`), `placement`, `status` and `owner` znodes."""

    KIND: ClassVar[str] = "VM"

    placement: Versioned | None = None
    status: Versioned | None = None
    owner: Versioned | None = None

    # the object (`/vms/<name>`)

    @property
    def meta(self) -> Doc:
        return _dict(self.spec_doc.get("meta"))

    @property
    def xml(self) -> str:
        """The libvirt domain XML ("" when none)."""
        return _str(self.spec_doc.get("xml")) or ""

    @property
    def want(self) -> DesiredState:
        """`spec.state` (stopped when absent)."""
        return _member(DesiredState, self.spec_doc.get("state"), DesiredState.STOPPED)

    @property
    def stop_mode(self) -> StopMode:
        return _member(StopMode, self.spec_doc.get("stopMode"), StopMode.GRACEFUL)

    @property
    def restart_request(self) -> int:
        return int(self.spec_doc.get("restartRequest", 0))

    @property
    def limits(self) -> tuple[str, ...]:
        """The nodes the VM may run on (empty: any)."""
        return tuple(self.meta.get("limits") or ())

    @property
    def selector(self) -> str:
        return str(self.meta.get("selector", Selector.NONE.value))

    @property
    def autorestart(self) -> bool:
        return bool(self.meta.get("autorestart", False))

    @property
    def max_restart(self) -> int:
        """Restarts in place after failures (issue #17; `store.restarts`)."""
        return int(self.meta.get("maxRestart", 1))

    @property
    def max_relocate(self) -> int:
        """Other nodes tried once the restarts here are used up (issue #17)."""
        return int(self.meta.get("maxRelocate", 1))

    @property
    def migration_method(self) -> MigrationMethod:
        return _member(MigrationMethod, self.meta.get("migrationMethod"), MigrationMethod.ANY)

    @property
    def shutdown_timeout(self) -> float | None:
        """The VM's own seconds from ACPI shutdown to forced off (None: the cluster's)."""
        value = self.spec_doc.get("shutdownTimeout")
        return float(value) if value else None

    @property
    def needs(self) -> VMNeeds:
        """What placement needs to know of the VM: memory and vCPUs from its domain XML
        (0 MiB and 1 vCPU without one), the networks its NICs name, limits and selector from
        its meta. Parses the
        XML (memoized for small documents by `schemas.domainxml`)."""
        xml = self.xml
        res = domain_resources(xml) if xml else None
        return VMNeeds(self.name, res.memory_mib if res else 0, res.vcpus if res else 1,
                       self.limits, self.selector, _networks(xml) if xml else ())

    # placement (`/vms/<name>/placement`)

    @property
    def placement_znode(self) -> Versioned:
        """The placement znode; `Missing` when it is not there."""
        if self.placement is None:
            raise Missing(f"the placement of VM {self.name!r} is not there")
        return self.placement

    @property
    def placement_doc(self) -> Doc:
        return self.placement.doc if self.placement is not None else {}

    @property
    def home(self) -> str | None:
        """The node the VM is placed on (`placement.node`), or None while unplaced."""
        return _str(self.placement_doc.get("node"))

    @property
    def last_node(self) -> str | None:
        """The node a temporary migration (migrate, flush, recovery) returns it to."""
        return _str(self.placement_doc.get("lastNode"))

    @property
    def autorestart_pending(self) -> bool:
        return bool(self.placement_doc.get("autorestartPending"))

    @property
    def restart_home(self) -> str | None:
        """The node whose return to ready autorestarts the VM (`placement.home`; not the
        node it is placed on, which is `home`)."""
        return _str(self.placement_doc.get("home"))

    # status (`/vms/<name>/status`) and owner (`/vms/<name>/owner`)

    @property
    def status_doc(self) -> Doc:
        return self.status.doc if self.status is not None else {}

    @property
    def state(self) -> str | None:
        """The observed state (a `vocabulary.VMState` word), None when status has none."""
        return _str(self.status_doc.get("state"))

    @property
    def status_node(self) -> str | None:
        """The node the status speaks for (where the VM runs or last ran)."""
        return _str(self.status_doc.get("node"))

    @property
    def migration(self) -> Moving | None:
        """The move status records (`status.migration`), None when there is none."""
        return Moving.of(self.status_doc.get("migration"))

    @property
    def observed_generation(self) -> int:
        """The spec generation the status was last written for."""
        return int(self.status_doc.get("observedGeneration", 0))

    @property
    def failed_generation(self) -> int | None:
        """The spec generation the VM failed for good at (None: no permanent failure)."""
        value = self.status_doc.get("failedGeneration")
        return value if isinstance(value, int) else None

    @property
    def observed_restart(self) -> int:
        return int(self.status_doc.get("observedRestart", 0))

    @property
    def owner_node(self) -> str | None:
        """The node whose session holds the owner znode (the one running the guest)."""
        return _str(self.owner.doc.get("node")) if self.owner is not None else None

    @property
    def up(self) -> bool:
        """The status says the guest may be up on its node."""
        return self.state in UP_STATES

    @property
    def running_on(self) -> str | None:
        """Where the guest runs: its owner, else the status' node while it is up."""
        return self.owner_node or (self.status_node if self.up else None)

    def runs_on(self, node: str) -> bool:
        """The guest may be up on `node`: it owns the VM, or the status says so."""
        return self.owner_node == node or (self.status_node == node and self.up)


# --- Node ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node(_Object):
    """One node as read: its object (`spec`), `status`, and whether `alive` exists."""

    KIND: ClassVar[str] = "node"

    status: Versioned | None = None
    alive: bool = False

    @property
    def want(self) -> DesiredDomainState | None:
        """`spec.domainState` (ready or flushed), None when the spec has none."""
        raw = self.spec_doc.get("domainState")
        return None if raw is None else _member(DesiredDomainState, raw,
                                                DesiredDomainState.FLUSHED)

    @property
    def fence(self) -> FenceMode:
        return _member(FenceMode, self.spec_doc.get("fence"), FenceMode.AUTO)

    @property
    def status_doc(self) -> Doc:
        return self.status.doc if self.status is not None else {}

    @property
    def domain_state(self) -> str | None:
        """The observed domain state (a `vocabulary.DomainState` word), or None."""
        return _str(self.status_doc.get("domainState"))

    @property
    def daemon_state(self) -> str | None:
        """What its daemon last said it is (a `vocabulary.DaemonState` word), or None."""
        return _str(self.status_doc.get("daemonState"))

    @property
    def heartbeat(self) -> float:
        """When the daemon last reported (seconds since the epoch; 0 never)."""
        return float(self.status_doc.get("heartbeat", 0.0))

    @property
    def view(self) -> NodeView:
        """What placement needs to know of the node."""
        return NodeView.from_status(self.name, self.status_doc, alive=self.alive)


# --- codec ---------------------------------------------------------------------------------


def vm_paths(paths: Paths, name: str) -> list[str]:
    """The znodes `read_vm` reads (for one pipelined read)."""
    return list(paths.vm_znodes(name))


def read_vm(name: str, get: Getter, paths: Paths) -> VM:
    """The VM `name` from `get` (a cache's or a multi-read's lookup by path)."""
    spec, placement, status, owner = paths.vm_znodes(name)
    return VM(name, get(spec), get(placement), get(status), get(owner))


def node_paths(paths: Paths, name: str) -> list[str]:
    """The znodes `read_node` reads (for one pipelined read)."""
    return [paths.node(name), paths.node_status(name), paths.node_alive(name)]


def read_node(name: str, get: Getter, paths: Paths) -> Node:
    """The node `name` from `get` (a cache's or a multi-read's lookup by path)."""
    return Node(name, get(paths.node(name)), get(paths.node_status(name)),
                alive=get(paths.node_alive(name)) is not None)


def _networks(xml: str) -> tuple[str, ...]:
    try:
        return networks_named(xml)
    except ValidationError:  # stored before NICs were checked: it names none we know
        return ()
