"""`node flush|ready NAME --wait`: follow the node and its VMs through `GET /watch`.

The watch is opened BEFORE the request (`Client.watch` returns once the server follows
changes), so nothing is missed. `Tracker` is the pure part: it is fed every event, keeps
the newest object of each VM and of the node, decides which VMs the operation concerns
(flush: VMs desired running that are placed or running on the node; ready: VMs whose
`lastNode` is the node, or that wait to autorestart there), reports each change of such a
VM (state, node) as a progress line, and says when it is done: the node's observed
domain state is the one asked for AND every concerned VM has settled (running where it
is placed, or off and not wanted running). Called by `ctl.cmd_node`; the tracker is tested
by tests/unit/test_ctl_progress.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ctl.client import Client
from vocabulary import DESIRED_DOMAIN_STATE, UP_STATES, VMState

TRANSIT = UP_STATES - {VMState.RUNNING.value}  # up, and on its way to somewhere else
OFF = frozenset(s.value for s in VMState) - UP_STATES


def _spec(vm: dict[str, Any]) -> dict[str, Any]:
    return vm.get("spec") or {}


def _placement(vm: dict[str, Any]) -> dict[str, Any]:
    return vm.get("placement") or {}


def _status(vm: dict[str, Any]) -> dict[str, Any]:
    return vm.get("status") or {}


def settled(vm: dict[str, Any]) -> bool:
    """Nothing more will happen to the VM by itself (for this operation)."""
    state, node = _status(vm).get("state"), _status(vm).get("node")
    placed = _placement(vm).get("node")
    if state in TRANSIT:
        return False
    if _spec(vm).get("state") != "running" or state == "failed":
        return state in OFF
    return (state == "running" and node == placed) or (placed is None and state in OFF)


@dataclass
class Tracker:
    """The state of one flush or ready, fed by watch events (see the module docstring)."""

    node: str
    verb: str  # flush | ready
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    concerned: set[str] = field(default_factory=set)
    start: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # (state, node) at first
    shown: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    node_state: str | None = None

    def concerns(self, vm: dict[str, Any]) -> bool:
        placement, status = _placement(vm), _status(vm)
        if self.verb == "flush":
            return _spec(vm).get("state") == "running" and self.node in (
                placement.get("node"), status.get("node"))
        return placement.get("lastNode") == self.node or (
            bool(placement.get("autorestartPending")) and placement.get("home") == self.node)

    def feed(self, event: dict[str, Any]) -> list[str]:
        """Take one event; the progress lines it gives."""
        obj, name = event.get("object") or {}, str(event.get("name"))
        if event.get("kind") == "Node":
            return self._node(name, obj, deleted=event.get("type") == "DELETED")
        if event.get("type") == "DELETED":
            self.vms.pop(name, None)
            self.concerned.discard(name)
            return [f"  vm/{name}: deleted"] if name in self.shown else []
        self.vms[name] = obj
        if name not in self.concerned and self.concerns(obj):
            self.concerned.add(name)
            self.start[name] = (_status(obj).get("state"), _status(obj).get("node"))
        return self._vm_line(name, obj) if name in self.concerned else []

    def _node(self, name: str, obj: dict[str, Any], *, deleted: bool) -> list[str]:
        if name != self.node:
            return []
        new = None if deleted else (obj.get("status") or {}).get("domainState")
        if new == self.node_state:
            return []
        first, self.node_state = self.node_state is None, new
        return [] if first else [f"node/{name}: {new or 'gone'}"]

    def _vm_line(self, name: str, vm: dict[str, Any]) -> list[str]:
        status, placement = _status(vm), _placement(vm)
        key = (status.get("state"), status.get("node"), placement.get("node"))
        if self.shown.get(name) == key:
            return []
        self.shown[name] = key
        state, node, placed = key
        where = f" on {node}" if node else ""
        going = f" → {placed}" if placed and placed != node and state != "stopped" else ""
        return [f"  vm/{name}: {state or 'unknown'}{where}{going}"]

    @property
    def done(self) -> bool:
        return self.node_state == DESIRED_DOMAIN_STATE[self.verb] and all(
            settled(self.vms[n]) for n in self.concerned if n in self.vms)

    def summary(self) -> dict[str, Any]:
        """What became of each concerned VM: moved, started, stopped, or stayed put."""
        out: dict[str, Any] = {"node": self.node, "state": self.node_state, "moved": [],
                               "started": [], "stopped": [], "stayed": []}
        for name in sorted(self.concerned):
            vm = self.vms.get(name, {})
            state, node = _status(vm).get("state"), _status(vm).get("node")
            was_state, was_node = self.start.get(name, (None, None))
            if state != "running":
                out["stopped"].append({"name": name, "state": state,
                                       "reason": _placement(vm).get("reason", "")})
            elif was_state != "running":
                out["started"].append({"name": name, "node": node})
            elif node != was_node:
                out["moved"].append({"name": name, "from": was_node, "to": node})
            else:
                out["stayed"].append({"name": name, "node": node})
        return out


class WaitTimeout(Exception):
    """The operation did not finish in time; the message says how far it got."""


def follow(client: Client, *, node: str, verb: str, timeout: float,
           request: Callable[[], Any], say: Callable[[str], None]) -> dict[str, Any]:
    """Open the watch, send `request()`, then print progress until done (or timeout)."""
    tracker = Tracker(node, verb)
    deadline = time.monotonic() + timeout
    stream = client.watch(timeout=timeout)
    request()
    say(f"node/{node}: {verb} requested; following the cluster (up to {timeout:g}s)")
    version: str | None = None
    while True:
        for event in stream:
            version = event.get("resourceVersion", version)
            for line in tracker.feed(event):
                say(line)
            if tracker.done:
                return tracker.summary()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # The server ended the stream early (it cuts off a watcher that fell behind):
        # resume from the last event seen; events carry whole objects, so one seen twice
        # changes nothing.
        stream = client.watch(timeout=remaining, resourceVersion=version)
    raise WaitTimeout(f"node {node} is {tracker.node_state or 'unknown'} after {timeout:g}s; "
                      f"{sum(not settled(tracker.vms[n]) for n in tracker.concerned)} VM(s) "
                      "still moving")
