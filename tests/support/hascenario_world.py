"""What an HA scenario looks at: the cluster read in one go (`World`), the check of each
expectation kind against it, and the wait until one holds, by ZooKeeper watches.

`read_world` reads the scenario's VMs and nodes as `store.model` snapshots (one pipelined
read), the event log, the primary and the fence agent's record. `CHECKS[kind](value,
world)` says what does not hold yet (None: it holds). `wait_for` re-reads and re-checks
on every change of the znodes the expectation depends on (`DEPENDS`), until it holds or
its time is up; then it raises `NotMet` with what was still wrong and the world as last
seen (`describe`). Called by `tests.support.hascenario`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import election, events
from store.client import Store
from store.model import VM, Node, node_paths, read_node, read_vm
from store.watches import watch_children, watch_doc

VM_ZNODES = 3  # spec, placement, status: what a VM expectation looks at (not `owner`)


@dataclass(frozen=True)
class World:
    vms: dict[str, VM]
    nodes: dict[str, Node]
    events: list[dict[str, Any]]
    primary: str | None
    fenced: list[str]  # the nodes the fence agent confirmed off, in order


def read_world(store: Store, vms: list[str], nodes: list[str], fence_log: Path) -> World:
    """The scenario's VMs and nodes, the event log, the primary, the fence record (blocking)."""
    p = store.paths
    paths = [q for v in vms for q in p.vm_znodes(v)[:VM_ZNODES]]
    paths += [q for n in nodes for q in node_paths(p, n)]
    found = store.get_many(paths)
    return World(vms={v: read_vm(v, found.get, p) for v in vms},
                 nodes={n: read_node(n, found.get, p) for n in nodes},
                 events=events.recent(store, limit=events.KEEP), primary=election.primary(store),
                 fenced=fence_log.read_text().split() if fence_log.exists() else [])


class NotMet(AssertionError):
    """An expectation did not hold in time: what was wrong, and the world last seen."""


# --- the checks: None when the expectation holds, else what does not -------------------------

def _vm_fields(vm: VM) -> dict[str, Any]:
    """A VM as an `expect` entry names its fields."""
    return {"node": vm.status_node, "state": vm.state, "want": vm.want.value,
            "placed": vm.home, "lastNode": vm.last_node,
            "autorestartPending": vm.autorestart_pending, "home": vm.restart_home}


def check_vms(value: dict[str, dict[str, Any]], world: World) -> str | None:
    for name, want in value.items():
        seen = _vm_fields(world.vms[name])
        for key, expected in want.items():
            if seen[key] != expected:
                return f"VM {name}: {key} is {seen[key]!r}, expected {expected!r}"
    return None


def _node_fields(node: Node) -> dict[str, Any]:
    published = node.status_doc.get("resources") or {}
    return {"domainState": node.domain_state, "daemonState": node.daemon_state,
            "want": node.want.value if node.want else None, "alive": node.alive,
            "memFree": published.get("memFree"), "vms": published.get("vms")}


def check_nodes(value: dict[str, dict[str, Any]], world: World) -> str | None:
    for name, want in value.items():
        seen = _node_fields(world.nodes[name])
        for key, expected in want.items():
            if seen[key] != expected:
                return f"node {name}: {key} is {seen[key]!r}, expected {expected!r}"
    return None


def _running(names: list[str], world: World) -> tuple[dict[str, str], str | None]:
    """The nodes the VMs run on, or what is wrong: one of them is not running."""
    where = {}
    for name in names:
        vm = world.vms[name]
        if vm.state != "running" or vm.status_node is None or vm.status_node != vm.home:
            return {}, f"VM {name} is not running where it is placed ({vm.state} on " \
                       f"{vm.status_node}, placed on {vm.home})"
        where[name] = vm.status_node
    return where, None


def check_apart(value: list[str], world: World) -> str | None:
    where, wrong = _running(value, world)
    if wrong is None and len(set(where.values())) != len(where):
        wrong = f"not apart: {where}"
    return wrong


def check_together(value: list[str], world: World) -> str | None:
    where, wrong = _running(value, world)
    if wrong is None and len(set(where.values())) != 1:
        wrong = f"not together: {where}"
    return wrong


def check_count(value: dict[str, int], world: World) -> str | None:
    """The scenario's VMs running where they are placed, counted per node."""
    counts = {n: 0 for n in world.nodes}
    for vm in world.vms.values():
        if vm.state == "running" and vm.status_node is not None and vm.status_node == vm.home:
            counts[vm.status_node] += 1
    wrong = [n for n, want in value.items() if counts[n] != want]
    return None if not wrong else f"VMs running per node: {counts}, expected {value}"


def _matches(event: dict[str, Any], want: dict[str, str]) -> bool:
    """`message` is a substring of the event's; the other fields are equal."""
    return all(v in str(event.get(k, "")) if k == "message" else event.get(k) == v
               for k, v in want.items())


def check_event(value: str | dict[str, str], world: World) -> str | None:
    want = {"kind": value} if isinstance(value, str) else value
    if any(_matches(event, want) for event in world.events):
        return None
    return f"no event {want} in the log"


def check_fenced(value: list[str], world: World) -> str | None:
    """Exactly these nodes were fenced, in this order: the agent confirmed each and the
    primary recorded it (`expect-node` looks at their status)."""
    recorded = [e.get("node") for e in world.events if e.get("kind") == "fenced"]
    if recorded != value or world.fenced != value:
        return f"fenced (events) {recorded}, (fence agent) {world.fenced}; expected {value}"
    return None


def check_reason(value: dict[str, str], world: World) -> str | None:
    for name, part in value.items():
        reason = str(world.vms[name].placement_doc.get("reason", ""))
        if part not in reason:
            return f"VM {name}: placement reason {reason!r} does not contain {part!r}"
    return None


def check_primary(value: str, world: World) -> str | None:
    return None if world.primary == value else f"the primary is {world.primary}, not {value}"


Check = Callable[[Any, World], "str | None"]
CHECKS: dict[str, Check] = {
    "expect": check_vms, "expect-node": check_nodes, "expect-apart": check_apart,
    "expect-together": check_together, "expect-count": check_count,
    "expect-event": check_event, "expect-fenced": check_fenced,
    "expect-placement-reason": check_reason, "expect-primary": check_primary}


# --- waiting by watches ------------------------------------------------------------------

def depends(store: Store, kind: str, value: Any, vms: list[str]) -> tuple[list[str], list[str]]:
    """The documents and the folders (children) an expectation looks at."""
    p = store.paths
    if kind in ("expect", "expect-placement-reason"):
        return [q for v in value for q in p.vm_znodes(v)[:VM_ZNODES]], []
    if kind in ("expect-apart", "expect-together", "expect-count"):
        names = vms if kind == "expect-count" else value
        return [q for v in names for q in p.vm_znodes(v)[:VM_ZNODES]], []
    if kind == "expect-node":
        return [q for n in value for q in node_paths(p, n)], []
    if kind == "expect-primary":
        return [], [p.election]
    return [], [p.events]  # expect-event, expect-fenced (the agent runs before the event)


class Watching:
    """Sets `changed` (on the loop) whenever a watched znode or folder changes."""

    def __init__(self, store: Store, changed: asyncio.Event) -> None:
        self.store, self.changed = store, changed
        self.loop = asyncio.get_running_loop()
        self.stopped = threading.Event()
        self.stops: list[Callable[[], None]] = []

    def _poke(self) -> bool:
        """Tell the waiter (from kazoo's thread); False once it no longer listens."""
        if self.stopped.is_set():
            return False
        try:
            self.loop.call_soon_threadsafe(self.changed.set)
        except RuntimeError:  # the loop closed meanwhile (the test is over)
            return False
        return True

    def _on_children(self, _children: list[str]) -> None:
        self._poke()

    def watch(self, docs: list[str], folders: list[str]) -> None:
        for path in docs:  # each doc watch ends at its first change after `stop`
            watch_doc(self.store, path, lambda _doc: self._poke())
        for path in folders:
            self.stops.append(watch_children(self.store, path, self._on_children))

    def stop(self) -> None:
        self.stopped.set()
        for stop in self.stops:
            stop()


async def wait_for(check: Callable[[World], str | None], read: Callable[[], World],
                   watching: Watching, timeout: float) -> World:
    """The first world in which `check` finds nothing wrong, re-read on every change;
    `NotMet` with the last problem and world after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            watching.changed.clear()
            world = await asyncio.to_thread(read)
            problem = check(world)
            if problem is None:
                return world
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotMet(f"{problem}\n{describe(world)}")
            try:
                await asyncio.wait_for(watching.changed.wait(), left)
            except TimeoutError:
                pass  # one last look, then the failure
    finally:
        watching.stop()


def describe(world: World) -> str:
    """The world for a failure message: nodes, VMs, the last events."""
    lines = [f"the cluster: primary {world.primary}; fenced {world.fenced}"]
    for name, node in world.nodes.items():
        f = _node_fields(node)
        lines.append(f"  node {name}: spec {f['want']}, status {f['daemonState']}/"
                     f"{f['domainState']}, {'alive' if f['alive'] else 'not alive'}, "
                     f"published memFree {f['memFree']} vms {f['vms']}")
    for name, vm in world.vms.items():
        f = _vm_fields(vm)
        lines.append(f"  vm {name}: want {f['want']}, {f['state']} on {f['node']}; placed "
                     f"{f['placed']} (lastNode {f['lastNode']}, pending "
                     f"{f['autorestartPending']}, home {f['home']}): "
                     f"{vm.placement_doc.get('reason', '')!r}")
    lines.append("  last events:")
    lines += [f"    {e.get('kind')}: {e.get('message')}" for e in world.events[-12:]]
    return "\n".join(lines)
