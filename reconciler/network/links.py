"""`Links`: the node's links as herd-node sees and changes them, through `ip` and `bridge`.

`observe()` runs `ip -j -d addr show` and `bridge -j fdb show` and parses them into a
`statemachine.netplan.LinkObservation` (the only place their JSON is read); `apply(step)`
carries out one link step of `plan_network` / `plan_removal` (`commands(step)` says which
argv lists: never a shell). With `namespace`, every command runs in that network namespace
(`ip -n NS`, `bridge -n NS`): the dev cluster's QEMU hosts live in namespaces.

A failing command raises `LinkError` with the command and a short stderr. A link Herd
creates is marked in the same `apply` (`ip link set NAME alias herd:<network>`); should the
marking fail, the new link is deleted again. Called by `reconciler.network.netreconcile`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Sequence
from contextlib import suppress
from ipaddress import ip_address
from typing import Any

from statemachine.netplan import (
    ALIAS_PREFIX,
    VXLAN_PORT,
    Link,
    LinkObservation,
    NetAction,
    NetStep,
)

ZERO_MAC = "00:00:00:00:00:00"
STDERR_BRIEF = 200  # characters of a command's stderr kept in an error
CREATES = frozenset({NetAction.CREATE_VXLAN, NetAction.CREATE_VLAN, NetAction.CREATE_BRIDGE})

Argv = tuple[str, ...]


class LinkError(Exception):
    """An `ip` / `bridge` command failed (or timed out): the command and its stderr, short."""

    def __init__(self, argv: Sequence[str], stderr: str, *, returncode: int) -> None:
        self.argv: Argv = tuple(argv)
        self.returncode = returncode
        text = " ".join(stderr.split())
        self.stderr = text if len(text) <= STDERR_BRIEF else text[:STDERR_BRIEF] + "..."
        super().__init__(f"{' '.join(self.argv)}: {self.stderr or f'exit status {returncode}'}")

    @property
    def unsupported(self) -> bool:
        """The kernel lacks the link type (no VXLAN or 802.1Q VLAN support)."""
        return "Unknown device type" in self.stderr


class Links:
    """The links of one node (or of one network namespace of it)."""

    def __init__(self, namespace: str | None = None, *, timeout: float = 10.0) -> None:
        self.namespace = namespace
        self.timeout = timeout

    async def observe(self) -> LinkObservation:
        """Every link with its details and addresses, and each VXLAN's flood list."""
        links = parse_links(await self._json(("ip", "-d", "addr", "show")))
        flood = parse_flood(await self._json(("bridge", "fdb", "show")))
        return LinkObservation(links=links, flood=flood)

    async def apply(self, step: NetStep) -> None:
        """Carry out one link step (raises LinkError; libvirt steps are not for here)."""
        argvs = commands(step)
        await self.run(argvs[0])
        if step.action not in CREATES:
            return
        try:
            await self.run(argvs[1])
        except BaseException:
            with suppress(LinkError):
                await self.run(("ip", "link", "del", step.device))
            raise

    async def run(self, argv: Argv) -> str:
        """Run one `ip` / `bridge` command (in the namespace); its stdout. In a worker
        thread with a deadline: a cancelled caller leaves the command to end by itself
        (asyncio's child watchers lost exits when a command was killed on cancellation,
        and the daemon's shutdown then waited for ever)."""
        full = self._in_namespace(argv)
        try:
            done = await asyncio.to_thread(
                subprocess.run, full, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise LinkError(full, f"timed out after {self.timeout:g}s", returncode=-1) from None
        except OSError as err:
            raise LinkError(full, str(err), returncode=-1) from None
        if done.returncode != 0:
            raise LinkError(full, done.stderr.decode(errors="replace"),
                            returncode=done.returncode)
        return done.stdout.decode(errors="replace")

    async def _json(self, argv: Argv) -> list[dict[str, Any]]:
        tool, *rest = argv
        text = await self.run((tool, "-j", *rest))
        try:
            doc = json.loads(text or "[]")
        except ValueError as err:
            raise LinkError((tool, "-j", *rest), f"unreadable JSON: {err}", returncode=0) from err
        return [entry for entry in doc if isinstance(entry, dict)]

    def _in_namespace(self, argv: Argv) -> Argv:
        if self.namespace is None:
            return argv
        return (argv[0], "-n", self.namespace, *argv[1:])


# --- the commands of a step -----------------------------------------------------------------

def commands(step: NetStep) -> list[Argv]:
    """The argv lists (without namespace) that carry out a link step, in order."""
    dev, action = step.device, step.action
    if action in CREATES:
        return [_create(step), ("ip", "link", "set", dev, "alias", ALIAS_PREFIX + step.network)]
    simple: dict[NetAction, Argv] = {
        NetAction.CLAIM: ("ip", "link", "set", dev, "alias", ALIAS_PREFIX + step.network),
        NetAction.DELETE: ("ip", "link", "del", dev),
        NetAction.ENSLAVE: ("ip", "link", "set", dev, "master", step.master or ""),
        NetAction.SET_MTU: ("ip", "link", "set", dev, "mtu", str(step.mtu)),
        NetAction.SET_UP: ("ip", "link", "set", dev, "up"),
        NetAction.ADD_PEER: ("bridge", "fdb", "append", ZERO_MAC, "dev", dev,
                             "dst", step.peer or ""),
        NetAction.REMOVE_PEER: ("bridge", "fdb", "del", ZERO_MAC, "dev", dev,
                                "dst", step.peer or ""),
    }
    if action not in simple:
        raise ValueError(f"{action} is not a link step")
    return [simple[action]]


def _create(step: NetStep) -> Argv:
    mtu: Argv = ("mtu", str(step.mtu)) if step.mtu is not None else ()
    head: Argv = ("ip", "link", "add", step.device, *mtu)
    if step.action == NetAction.CREATE_BRIDGE:
        return (*head, "type", "bridge")
    if step.action == NetAction.CREATE_VLAN:
        return ("ip", "link", "add", "link", step.parent or "", step.device, *mtu,
                "type", "vlan", "id", str(step.vid))
    dev: Argv = ("dev", step.parent) if step.parent else ()
    # learning: unicast goes to the one node that has the MAC once a frame from it was seen
    # (the all-zeros entries flood broadcast and unknown unicast); docs/networks-node.md
    return (*head, "type", "vxlan", "id", str(step.vid), "dstport", str(VXLAN_PORT),
            "local", step.local or "", *dev, "learning")


# --- parsing what the node reports ----------------------------------------------------------

def parse_links(doc: list[dict[str, Any]]) -> dict[str, Link]:
    """`ip -j -d addr show` -> links by name."""
    links = (_link(entry) for entry in doc if isinstance(entry.get("ifname"), str))
    return {link.name: link for link in links}


def _link(entry: dict[str, Any]) -> Link:
    info = entry.get("linkinfo") or {}
    data = info.get("info_data") or {}
    kind = str(info.get("info_kind") or "")
    parent = data.get("link") if kind == "vxlan" else entry.get("link") if kind == "vlan" else None
    local = data.get("local") or data.get("local6")
    return Link(
        name=entry["ifname"], kind=kind, alias=str(entry.get("ifalias") or ""),
        mtu=int(entry.get("mtu") or 0), up="UP" in (entry.get("flags") or ()),
        master=entry.get("master"), parent=parent,
        vid=data.get("id") if kind in ("vxlan", "vlan") else None,
        local=str(local) if kind == "vxlan" and local else None,
        port=data.get("port") if kind == "vxlan" else None,
        learning=data.get("learning") if kind == "vxlan" else None,
        addresses=tuple(str(a["local"]) for a in entry.get("addr_info") or ()
                        if isinstance(a, dict) and "local" in a))


def parse_flood(doc: list[dict[str, Any]]) -> dict[str, frozenset[str]]:
    """`bridge -j fdb show` -> each device's all-zeros entries' destinations (canonical)."""
    flood: dict[str, set[str]] = {}
    for entry in doc:
        if entry.get("mac") == ZERO_MAC and "dst" in entry and "ifname" in entry:
            flood.setdefault(str(entry["ifname"]), set()).add(_canonical(str(entry["dst"])))
    return {name: frozenset(dsts) for name, dsts in flood.items()}


def _canonical(address: str) -> str:
    try:
        return ip_address(address).compressed
    except ValueError:
        return address
