"""Placement: which node a VM may run on, and which one its selector picks.

Pure functions over snapshots of the nodes (no I/O), shared by the primary's controllers
(scheduler, flush, fence recovery, ready) and the API server (explicit migrate/move
targets), which is why they live in `store` and not in the daemon.

- Candidates: nodes alive, daemonState `run`, domainState `ready`, inside the VM's
  `limits` (empty = all), with every network the VM names up (node status `networks`),
  the node of its volumes on local pools when it has any (`pins_of`) — unless it moves
  live with its storage (`carrying`: it runs on that node and its migration copies the
  volumes), when the target's pools must have room for them (node status `pools`),
  not excluded (e.g. the node it is leaving), and where it fits:
  its memory <= the node's free memory, or, for the `memprov` selector, <= the memory not
  yet provisioned to VMs.
- Selectors: `mem` most free memory, `memprov` most unprovisioned memory, `load` lowest
  load, `vcpus` fewest allocated vCPUs, `vms` fewest VMs; `none` = the cluster default.
  Ties break by node name.
- Affinity rules (`store.affinity`, issue #17): a strict rule removes the nodes that
  would break it (the reason names the rule); among the rest, nodes that break fewer soft
  rules come first, then the selector decides.
- `Planner` places many VMs in one pass and counts what it already placed against each
  node, so a flush or recovery spreads instead of piling onto the first best node, and
  keeps `where` (the node of every VM placed to run) for the rules.
- `account` (exact accounting, issue #17): the nodes' figures as the primary's own cache
  knows them — VMs, vCPUs and provisioned memory from the placements and specs, free
  memory less what VMs placed there but not yet running will take, and never more than
  the node's memory less the VMs placed to run — instead of figures a node published up
  to half a second ago.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.domaindisks import volume_keys
from store.affinity import Rule, by_vm, rules_of, soft_breaks, strict_refusal
from vocabulary import Selector

# The selectors that pick a node by themselves (`none` defers to the cluster default).
SELECTORS = tuple(s.value for s in Selector if s is not Selector.NONE)


@dataclass(frozen=True)
class NodeView:
    """What placement needs to know of one node (from its status znode and `alive`)."""

    name: str
    alive: bool
    daemon_state: str
    domain_state: str
    mem_total: int = 0
    mem_free: int = 0
    mem_prov: int = 0
    vcpu_alloc: int = 0
    load: float = 0.0
    vms: int = 0
    networks: frozenset[str] = frozenset()  # the networks up on the node
    pool_free: Mapping[str, int] = field(default_factory=dict)  # usable pools: bytes free
    live_migration: bool = False  # its libvirt driver can migrate live
    reachable: bool = False  # it publishes the URI of its libvirtd (other nodes copy from it)

    @classmethod
    def from_status(cls, name: str, status: Mapping[str, Any], *, alive: bool) -> NodeView:
        r = status.get("resources", {})
        return cls(name=name, alive=alive, daemon_state=str(status.get("daemonState", "")),
                   domain_state=str(status.get("domainState", "")),
                   mem_total=int(r.get("memTotal", 0)), mem_free=int(r.get("memFree", 0)),
                   mem_prov=int(r.get("memProv", 0)), vcpu_alloc=int(r.get("vcpuAlloc", 0)),
                   load=float(r.get("load", 0.0)), vms=int(r.get("vms", 0)),
                   networks=frozenset(name for name, net in (status.get("networks") or {})
                                      .items() if isinstance(net, Mapping) and net.get("up")),
                   pool_free=_pool_free(status), live_migration=bool(status.get("liveMigration")),
                   reachable=bool(status.get("migrationUri")))

    @property
    def usable(self) -> bool:
        return self.alive and self.daemon_state == "run" and self.domain_state == "ready"

    def with_vm(self, memory_mib: int, vcpus: int, *,
                carry: Sequence[tuple[str, int]] = ()) -> NodeView:
        """This node as it will be once the VM runs on it (for batch accounting), with the
        volumes it brings along (`carry`: pool, bytes)."""
        free = dict(self.pool_free)
        for pool, size in carry:
            free[pool] = free.get(pool, 0) - size
        return replace(self, mem_free=self.mem_free - memory_mib,
                       mem_prov=self.mem_prov + memory_mib, vcpu_alloc=self.vcpu_alloc + vcpus,
                       vms=self.vms + 1, pool_free=free)


def _pool_free(status: Mapping[str, Any]) -> dict[str, int]:
    pools = status.get("pools") or {}
    return {name: int(p.get("available", 0)) for name, p in pools.items()
            if isinstance(p, Mapping) and p.get("usable")}


@dataclass(frozen=True)
class VMNeeds:
    """What placement needs to know of one VM (from its spec)."""

    name: str
    memory_mib: int
    vcpus: int
    limits: tuple[str, ...] = ()
    selector: str = "none"
    networks: tuple[str, ...] = ()  # the networks its NICs name
    pins: tuple[str, ...] = ()  # the nodes of its volumes on local pools (`pins_of`)
    carry: tuple[tuple[str, int], ...] = ()  # (pool, bytes) of those, per pool


def default_selector(default: str) -> str:
    """The cluster's selector (`mem` when it names none that picks a node)."""
    return default if default in SELECTORS else "mem"


def effective_selector(vm: VMNeeds, default: str) -> str:
    return vm.selector if vm.selector in SELECTORS else default_selector(default)


def fits(vm: VMNeeds, node: NodeView, selector: str) -> bool:
    room = node.mem_total - node.mem_prov if selector == "memprov" else node.mem_free
    return vm.memory_mib <= room


def refusal(vm: VMNeeds, node: NodeView | None, *, selector: str, name: str = "",
            carrying: bool = False) -> str | None:
    """Why `node` cannot take `vm` (None: it can). The reason names the rule. `carrying`:
    the VM moves from the node of its local volumes, and they go with it."""
    if node is None:
        return f"node {name!r} does not exist"
    if vm.limits and node.name not in vm.limits:
        return f"node {node.name!r} is outside the VM's limits ({', '.join(vm.limits)})"
    if not node.alive or node.daemon_state != "run":
        return f"node {node.name!r} is not running (daemonState {node.daemon_state or 'unknown'})"
    if node.domain_state != "ready":
        return f"node {node.name!r} is not ready (domainState {node.domain_state})"
    why = _storage_refusal(vm, node, carrying=carrying)
    if why is not None:
        return why
    missing = [n for n in vm.networks if n not in node.networks]
    if missing:
        return f"network {missing[0]!r} is not up on node {node.name!r}"
    if not fits(vm, node, selector):
        room = node.mem_total - node.mem_prov if selector == "memprov" else node.mem_free
        return f"VM needs {vm.memory_mib} MiB; node {node.name!r} has {room} MiB"
    return None


def _storage_refusal(vm: VMNeeds, node: NodeView, *, carrying: bool) -> str | None:
    """Pinned by local volumes: only their node, unless they are carried along to a node
    whose pools have room for them."""
    if not vm.pins or (len(set(vm.pins)) == 1 and node.name == vm.pins[0]):
        return None
    if not carrying or len(set(vm.pins)) > 1:
        where = " and ".join(sorted(set(vm.pins)))
        return f"its volumes on local pools live on {where}, not on {node.name!r}"
    for pool, size in vm.carry:
        free = node.pool_free.get(pool)
        if free is None:
            return f"pool {pool!r} of its volumes is not usable on node {node.name!r}"
        if free < size:
            return (f"its volumes need {size} bytes in pool {pool!r}; node {node.name!r} "
                    f"has {free} free")
    return None


def candidates(vm: VMNeeds, nodes: Iterable[NodeView], *, selector: str,
               exclude: Sequence[str] = (), carrying: bool = False) -> list[NodeView]:
    return [n for n in nodes if n.name not in exclude
            and refusal(vm, n, selector=selector, carrying=carrying) is None]


def _key(selector: str, node: NodeView) -> tuple[float, str]:
    scores = {"mem": -node.mem_free, "memprov": -(node.mem_total - node.mem_prov),
              "load": node.load, "vcpus": node.vcpu_alloc, "vms": node.vms}
    return (scores[selector], node.name)


def select(vm: VMNeeds, nodes: Iterable[NodeView], *, default: str,
           exclude: Sequence[str] = (), carrying: bool = False,
           rules: Sequence[Rule] = (), where: Mapping[str, str] | None = None) -> str | None:
    """The node `vm`'s selector picks, or None when no node is a valid target. With
    `rules`, the nodes that break a strict one are no target and those breaking fewer
    soft ones come first (`where`: the node of each other VM placed to run)."""
    selector = effective_selector(vm, default)
    found = candidates(vm, nodes, selector=selector, exclude=exclude, carrying=carrying)
    mine, placed = rules_of(vm.name, rules), where or {}
    if mine:
        found = [n for n in found if strict_refusal(vm.name, n.name, mine, placed) is None]
    if not found:
        return None
    return min(found, key=lambda n: (len(soft_breaks(vm.name, n.name, mine, placed)),
                                     _key(selector, n))).name


@dataclass(frozen=True)
class Placed:
    """One VM as exact accounting sees it: placed on `node` (and desired running or not),
    and whether `node`'s published figures include it already (it runs there)."""

    node: str
    memory_mib: int
    vcpus: int
    to_run: bool
    counted: bool


def account(nodes: Iterable[NodeView], placed: Iterable[Placed]) -> list[NodeView]:
    """The nodes with VMs, vCPUs and provisioned memory from the placements, and free
    memory less what VMs placed there to run, not yet running, will take."""
    vms: dict[str, int] = {}
    vcpus: dict[str, int] = {}
    prov: dict[str, int] = {}
    running: dict[str, int] = {}
    pending: dict[str, int] = {}
    for p in placed:
        prov[p.node] = prov.get(p.node, 0) + p.memory_mib
        if p.to_run:
            vms[p.node] = vms.get(p.node, 0) + 1
            vcpus[p.node] = vcpus.get(p.node, 0) + p.vcpus
            running[p.node] = running.get(p.node, 0) + p.memory_mib
            if not p.counted:
                pending[p.node] = pending.get(p.node, 0) + p.memory_mib
    # Free memory is never more than what the VMs placed to run leave of the node: a guest
    # that runs may not show in the host's free memory yet (the node publishes every half
    # second; QEMU takes guest memory as the guest touches it).
    return [replace(n, vms=vms.get(n.name, 0), vcpu_alloc=vcpus.get(n.name, 0),
                    mem_prov=prov.get(n.name, 0),
                    mem_free=min(n.mem_free - pending.get(n.name, 0),
                                 n.mem_total - running.get(n.name, 0))) for n in nodes]


class Planner:
    """Places VMs one after another, counting each placement against its node and
    recording it in `where` (for the affinity rules of the VMs placed after it)."""

    def __init__(self, nodes: Iterable[NodeView], *, default: str,
                 rules: Sequence[Rule] = (), where: Mapping[str, str] | None = None) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.default = default
        self.rules = tuple(rules)
        self.mine = by_vm(self.rules)  # each VM's rules: a placement looks at its own only
        self.where: dict[str, str] = dict(where or {})

    def place(self, vm: VMNeeds, *, exclude: Sequence[str] = (),
              carrying: bool = False) -> str | None:
        target = select(vm, self.nodes.values(), default=self.default, exclude=exclude,
                        carrying=carrying, rules=self.mine.get(vm.name, ()), where=self.where)
        if target is not None:
            self.nodes[target] = self.nodes[target].with_vm(
                vm.memory_mib, vm.vcpus, carry=vm.carry if carrying else ())
            self.where[vm.name] = target
        return target

    def unplace(self, names: Iterable[str]) -> None:
        """Forget where these VMs are (a batch moves them all: the first to move must not
        be held to the old node of the next)."""
        for name in names:
            self.where.pop(name, None)

    def broken_soft(self, vm: str) -> list[str]:
        """The soft rules `vm`'s placement breaks (for its placement reason)."""
        node = self.where.get(vm)
        mine = self.mine.get(vm, [])
        return [] if node is None else [r.describe(vm, node, self.where)
                                        for r in soft_breaks(vm, node, mine, self.where)]

    def why_not(self, vm: VMNeeds, *, exclude: Sequence[str] = ()) -> str | None:
        """The strict rule that stopped every node that would take `vm` (None: no rule;
        limits, readiness or room did)."""
        mine = self.mine.get(vm.name, [])
        for node in self._candidates(vm, exclude):
            why = strict_refusal(vm.name, node.name, mine, self.where)
            if why is not None:
                return why
        return None

    def _candidates(self, vm: VMNeeds, exclude: Sequence[str]) -> list[NodeView]:
        return candidates(vm, self.nodes.values(), selector=effective_selector(vm, self.default),
                          exclude=exclude)

    def most_constrained_first(self, vms: Iterable[VMNeeds], *,
                               exclude: Sequence[str] = ()) -> list[VMNeeds]:
        """`vms` in the order a batch places them: fewest valid nodes first, then by name,
        so that a VM that can go to one node only is not crowded out by one that could go
        anywhere (a `together` partner placed first would decide the node for both)."""
        return sorted(vms, key=lambda v: (len(self._candidates(v, exclude)), v.name))


def pins_of(xml: object, home: Callable[[str], str | None]) -> tuple[str, ...]:
    """The nodes the VM's disks tie it to: `home(pool/volume)` answers the node of a
    volume on a local pool (None: a shared or rbd pool's, reachable from any node)."""
    return tuple(sorted({node for key in sorted(volume_keys(xml))
                         if (node := home(key)) is not None}))


def carries_storage(vm: VMNeeds, *, running_on: str | None, method: str,
                    source: NodeView | None) -> bool:
    """Whether moving `vm` now takes its volumes on local pools along. They live on one
    node, `source`, and either the VM runs there and moves live (method `live` or `any`,
    a driver that migrates live: libvirt copies the disks with the memory), or it is off
    or moves by shutdown and `source` is up and reachable (the target copies the volumes
    from its libvirtd before it starts the VM). Otherwise the volumes pin it."""
    if len(set(vm.pins)) != 1 or source is None or source.name != vm.pins[0]:
        return False
    if running_on == source.name and source.live_migration and method in ("live", "any"):
        return True
    return running_on in (None, source.name) and source.alive and source.reachable


LocalVolume = Callable[[str], "tuple[str, int] | None"]


def with_storage(vm: VMNeeds, xml: object, local: LocalVolume) -> VMNeeds:
    """`vm` with the nodes its volumes on local pools tie it to (`pins`) and what moving
    them takes (`carry`: bytes per pool); `local(pool/volume)` answers (node, bytes) of a
    volume on a local pool, None for any other."""
    nodes: set[str] = set()
    sizes: dict[str, int] = {}
    for key in sorted(volume_keys(xml)):
        found = local(key)
        if found is not None:
            nodes.add(found[0])
            pool = key.partition("/")[0]
            sizes[pool] = sizes.get(pool, 0) + found[1]
    return replace(vm, pins=tuple(sorted(nodes)), carry=tuple(sorted(sizes.items())))
