"""`statemachine.netplan`: the network table of one node, enumerated (no I/O).

Every combination of the states of a network's links (the VXLAN or VLAN, the bridge), its
flood list and its libvirt network is planned: each lands on the first row of `ROWS` its
faults call for, every row is reached, and applying the steps to a simulated node (`apply`,
the kernel's and libvirt's effect of each step) reaches DONE within a bound, or stays
BLOCKED with a reason and without touching anything. The garbage collection removes Herd's
links and libvirt networks only. `NetworkReconciler` runs on the same simulation (a fake
node) for its outcomes: up, blocked, a kernel without VXLAN, a failing command.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from reconciler.libvirt.interface import HypervisorError
from reconciler.network.links import LinkError
from reconciler.network.netreconcile import (
    BLOCKED_LOOK,
    ERROR_LOOK,
    REASON_MAX,
    NetworkReconciler,
)
from statemachine.netplan import (
    ROWS,
    LibvirtNet,
    Link,
    LinkObservation,
    LinkSpec,
    NetAction,
    NetObserved,
    NetStep,
    keep_all_but,
    keep_for,
    libvirt_uuid,
    plan_network,
    plan_removal,
    row,
    status_of,
)
from vocabulary import NetworkKind

LOCAL, B, C = "10.77.0.1", "10.77.0.2", "10.77.0.3"
UNDERLAY = Link(name="u0", kind="veth", mtu=1500, up=True, addresses=(LOCAL,))
ETH = Link(name="eth0", kind="veth", mtu=1500, up=True)
MANAGED = LinkSpec(network="blue", kind=NetworkKind.MANAGED, vni=42, local=LOCAL,
                   peers=(LOCAL, B, C))
VLAN = LinkSpec(network="red", kind=NetworkKind.BRIDGED, vlan=7, device="eth0")
EXISTING = LinkSpec(network="lab", kind=NetworkKind.BRIDGED, bridge="br-lab")
OPS_BRIDGE = Link(name="br-lab", kind="bridge", mtu=1500, up=True)


# --- a simulated node: what each step does to it -------------------------------------------

def apply(seen: NetObserved, step: NetStep) -> NetObserved:
    """The node after `step` (the kernel's and libvirt's effect, as the real ones do it)."""
    links, flood = dict(seen.links.links), {k: set(v) for k, v in seen.links.flood.items()}
    nets, a, dev = dict(seen.nets), step.action, step.device
    alias = f"herd:{step.network}"
    if a in (NetAction.CREATE_VXLAN, NetAction.CREATE_VLAN, NetAction.CREATE_BRIDGE):
        kind = {NetAction.CREATE_VXLAN: "vxlan", NetAction.CREATE_VLAN: "vlan"}.get(a, "bridge")
        vxlan = a == NetAction.CREATE_VXLAN
        links[dev] = Link(name=dev, kind=kind, alias=alias, mtu=step.mtu or 1500,
                          parent=step.parent, vid=step.vid, local=step.local,
                          port=4789 if vxlan else None, learning=True if vxlan else None)
    elif a == NetAction.DELETE:
        del links[dev]
        flood.pop(dev, None)
        links = {n: dataclasses.replace(k, master=None) if k.master == dev else k
                 for n, k in links.items()}
    elif a == NetAction.ADD_PEER:
        flood.setdefault(dev, set()).add(step.peer or "")
    elif a == NetAction.REMOVE_PEER:
        flood[dev].discard(step.peer or "")
    elif a in _LINK_CHANGES:
        links[dev] = dataclasses.replace(links[dev], **_LINK_CHANGES[a](step))
    else:
        nets = _apply_libvirt(nets, step)
    return NetObserved(links=LinkObservation(links=links, flood={
        k: frozenset(v) for k, v in flood.items() if v}), nets=nets)


_LINK_CHANGES: dict[NetAction, Callable[[NetStep], dict[str, Any]]] = {
    NetAction.CLAIM: lambda s: {"alias": f"herd:{s.network}"},
    NetAction.ENSLAVE: lambda s: {"master": s.master},
    NetAction.SET_MTU: lambda s: {"mtu": s.mtu},
    NetAction.SET_UP: lambda s: {"up": True},
}


def _apply_libvirt(nets: dict[str, LibvirtNet], step: NetStep) -> dict[str, LibvirtNet]:
    name, old = step.network, nets.get(step.network)
    if step.action == NetAction.DEFINE_NET:
        nets[name] = LibvirtNet(name=name, uuid=libvirt_uuid(name), bridge=step.device,
                                forward="bridge", active=bool(old and old.active),
                                autostart=bool(old and old.autostart))
    elif step.action == NetAction.START_NET:
        nets[name] = dataclasses.replace(nets[name], active=True)
    elif step.action == NetAction.AUTOSTART_NET:
        nets[name] = dataclasses.replace(nets[name], autostart=True)
    elif step.action == NetAction.UNDEFINE_NET:
        del nets[name]
    else:
        raise AssertionError(f"not a step that changes the node: {step}")
    return nets


def converge(spec: LinkSpec, seen: NetObserved, *, bound: int = 30) -> tuple[NetStep, int]:
    """Plan and apply until DONE or BLOCKED; the final step and the steps it took."""
    for taken in range(bound):
        step = plan_network(spec, seen)
        if step.final:
            return step, taken
        after = apply(seen, step)
        assert after != seen, f"{step.rule}: a step that changes nothing"
        seen = after
    raise AssertionError(f"no convergence in {bound} steps (last {step.rule})")


# --- the states of each part ------------------------------------------------------------------

def good_net(name: str, bridge: str) -> LibvirtNet:
    return LibvirtNet(name=name, uuid=libvirt_uuid(name), bridge=bridge, forward="bridge",
                      active=True, autostart=True)


GOOD_VX = Link(name="hvx42", kind="vxlan", alias="herd:blue", mtu=1450, up=True,
               master="hbr42", vid=42, local=LOCAL, port=4789, learning=True)
GOOD_BR = Link(name="hbr42", kind="bridge", alias="herd:blue", mtu=1450, up=True)
PEERS = frozenset({B, C})


def _r(link: Link, **changes: object) -> Link:
    return dataclasses.replace(link, **changes)  # type: ignore[arg-type]


# name -> (the part's state, the rule it calls for when it is the only fault)
PORT_STATES: dict[str, tuple[Link | None, str]] = {
    "ok": (GOOD_VX, "done"),
    "absent": (None, "port-missing"),
    "operator's": (_r(GOOD_VX, alias="mine"), "port-foreign"),
    "other-network": (_r(GOOD_VX, alias="herd:green"), "port-foreign"),
    "unmarked-veth": (_r(GOOD_VX, alias="", kind="veth"), "port-foreign"),
    "unmarked": (_r(GOOD_VX, alias=""), "port-claim"),
    "wrong-vni": (_r(GOOD_VX, vid=43), "port-wrong"),
    "no-learning": (_r(GOOD_VX, learning=False), "port-wrong"),
    "wrong-local": (_r(GOOD_VX, local="10.77.0.9"), "port-wrong"),
    "loose": (_r(GOOD_VX, master=None), "port-unenslaved"),
    "mtu": (_r(GOOD_VX, mtu=1500), "port-mtu"),
    "down": (_r(GOOD_VX, up=False), "port-down"),
}
BRIDGE_STATES: dict[str, tuple[Link | None, str]] = {
    "ok": (GOOD_BR, "done"),
    "absent": (None, "bridge-missing"),
    "operator's": (_r(GOOD_BR, alias="lab"), "bridge-foreign"),
    "unmarked": (_r(GOOD_BR, alias=""), "bridge-claim"),
    "not-a-bridge": (_r(GOOD_BR, kind="veth"), "bridge-wrong"),
    "mtu": (_r(GOOD_BR, mtu=9000), "bridge-mtu"),
    "down": (_r(GOOD_BR, up=False), "bridge-down"),
}
FLOOD_STATES: dict[str, tuple[frozenset[str], str]] = {
    "ok": (PEERS, "done"),
    "missing": (frozenset({B}), "peer-missing"),
    "stale": (PEERS | {"10.77.0.9"}, "peer-stale"),
    "empty": (frozenset(), "peer-missing"),
}
NET_STATES: dict[str, tuple[LibvirtNet | None, str]] = {
    "ok": (good_net("blue", "hbr42"), "done"),
    "absent": (None, "net-missing"),
    "operator's": (dataclasses.replace(good_net("blue", "hbr42"), uuid="0" * 8), "net-foreign"),
    "wrong-bridge": (good_net("blue", "virbr0"), "net-wrong"),
    "transient": (dataclasses.replace(good_net("blue", "hbr42"), persistent=False),
                  "net-missing"),
    "inactive": (dataclasses.replace(good_net("blue", "hbr42"), active=False), "net-inactive"),
    "no-autostart": (dataclasses.replace(good_net("blue", "hbr42"), autostart=False),
                     "net-autostart"),
}
RULES = [r[0] for r in ROWS]


def managed_node(port: Link | None, bridge: Link | None, flood: frozenset[str],
                 net: LibvirtNet | None, *, underlay: Link = UNDERLAY) -> NetObserved:
    links = {link.name: link for link in (underlay, port, bridge) if link is not None}
    return NetObserved(links=LinkObservation(links=links, flood={"hvx42": flood} if flood
                                             else {}),
                       nets={} if net is None else {net.name: net})


def managed_cases() -> list[tuple[str, NetObserved, str]]:
    """Every combination: (its id, the node, the rule the earliest fault calls for)."""
    cases = []
    for (pn, (p, pr)), (bn, (b, br)), (fn, (f, fr)), (nn, (n, nr)) in itertools.product(
            PORT_STATES.items(), BRIDGE_STATES.items(), FLOOD_STATES.items(),
            NET_STATES.items()):
        expected = min((pr, br, fr, nr), key=RULES.index)
        cases.append((f"{pn}/{bn}/{fn}/{nn}", managed_node(p, b, f, n), expected))
    return cases


CASES = managed_cases()
GOOD = managed_node(GOOD_VX, GOOD_BR, PEERS, NET_STATES["ok"][0])


# --- the managed table ------------------------------------------------------------------------

@pytest.mark.parametrize("part,states", [("port", PORT_STATES), ("bridge", BRIDGE_STATES),
                                          ("flood", FLOOD_STATES), ("net", NET_STATES)])
def test_each_single_fault_calls_for_its_row(part: str,
                                             states: Mapping[str, tuple[Any, str]]) -> None:
    for name, (state, rule) in states.items():
        parts = {"port": GOOD_VX, "bridge": GOOD_BR, "flood": PEERS,
                 "net": NET_STATES["ok"][0], part: state}
        step = plan_network(MANAGED, managed_node(parts["port"], parts["bridge"],
                                                  parts["flood"], parts["net"]))
        assert step.rule == rule, f"{part} {name}"


def test_every_combination_gets_the_earliest_fault_first() -> None:
    wrong = [(case, plan_network(MANAGED, seen).rule, rule) for case, seen, rule in CASES
             if plan_network(MANAGED, seen).rule != rule]
    assert not wrong, wrong[:5]


def test_every_combination_converges_or_stays_blocked_untouched() -> None:
    for case, seen, _ in CASES:
        step, taken = converge(MANAGED, seen)
        if step.action == NetAction.DONE:
            assert step.rule == "done" and taken <= 14, case
            assert converge(MANAGED, seen)[0] == step  # and planning again changes nothing
        else:
            assert taken == 0 and step.reason, case  # blocked at once, nothing touched


def test_converged_node_is_left_alone() -> None:
    step = plan_network(MANAGED, GOOD)
    assert (step.action, step.device) == (NetAction.DONE, "hbr42")
    assert status_of(MANAGED, step).up and status_of(MANAGED, step).bridge == "hbr42"


def test_from_nothing_the_steps_follow_the_table() -> None:
    seen, steps = managed_node(None, None, frozenset(), None), []
    while not (step := plan_network(MANAGED, seen)).final:
        steps.append((step.action, step.device, step.peer))
        seen = apply(seen, step)
    assert steps == [
        (NetAction.CREATE_VXLAN, "hvx42", None), (NetAction.CREATE_BRIDGE, "hbr42", None),
        (NetAction.ENSLAVE, "hvx42", None), (NetAction.SET_UP, "hvx42", None),
        (NetAction.SET_UP, "hbr42", None), (NetAction.ADD_PEER, "hvx42", B),
        (NetAction.ADD_PEER, "hvx42", C), (NetAction.DEFINE_NET, "hbr42", None),
        (NetAction.START_NET, "hbr42", None), (NetAction.AUTOSTART_NET, "hbr42", None)]
    assert seen.links.links["hvx42"].mtu == seen.links.links["hbr42"].mtu == 1450


def test_peers_come_and_go() -> None:
    fewer = dataclasses.replace(MANAGED, peers=(LOCAL, C))
    step = plan_network(fewer, GOOD)
    assert (step.action, step.peer) == (NetAction.REMOVE_PEER, B)
    more = dataclasses.replace(MANAGED, peers=(B, C, "10.77.0.4"))
    assert plan_network(more, GOOD).peer == "10.77.0.4"
    assert converge(fewer, GOOD)[0].action == NetAction.DONE


def test_every_row_is_reached() -> None:
    reached = {plan_network(MANAGED, seen).rule for _, seen, _ in CASES}
    reached |= {row(spec, seen)[0] for spec, seen in BLOCKED_CASES}
    assert set(RULES) - reached == set()


# --- blocked: the reasons -----------------------------------------------------------------

BLOCKED_CASES = [
    (dataclasses.replace(MANAGED, mtu=1500), GOOD),
    (dataclasses.replace(MANAGED, vni=None), GOOD),
    (dataclasses.replace(MANAGED, device="eth9"), GOOD),
    (EXISTING, GOOD),
]


@pytest.mark.parametrize("spec,seen,reason", [
    (dataclasses.replace(MANAGED, mtu=1500), GOOD, "mtu 1500 exceeds underlay u0's 1500 - 50"),
    (dataclasses.replace(MANAGED, mtu=1451), managed_node(None, None, frozenset(), None),
     "mtu 1451 exceeds underlay u0's 1500 - 50"),
    (dataclasses.replace(MANAGED, device="eth9"), GOOD, "device eth9 not found"),
    (dataclasses.replace(MANAGED, local="10.77.0.8"), GOOD,
     "local address 10.77.0.8 is not on this node"),
    (dataclasses.replace(MANAGED, vni=None), GOOD,
     "managed network without a vni or this node's underlay address"),
    (dataclasses.replace(MANAGED, peers=("fd00::2",)), GOOD,
     "peer fd00::2 is not IPv4 like the local address 10.77.0.1"),
    (dataclasses.replace(MANAGED, local="fd00::1", peers=("fd00::2",), mtu=1450), managed_node(
        None, None, frozenset(), None, underlay=_r(UNDERLAY, addresses=("fd00::1",))),
     "mtu 1450 exceeds underlay u0's 1500 - 70"),
    (MANAGED, managed_node(None, None, frozenset(), None, underlay=_r(UNDERLAY, up=False)),
     "device u0 is down"),
    (EXISTING, GOOD, "bridge br-lab does not exist"),
    (EXISTING, managed_node(None, _r(OPS_BRIDGE, up=False), frozenset(), None),
     "bridge br-lab is down"),
    (EXISTING, managed_node(None, _r(OPS_BRIDGE, kind="veth"), frozenset(), None),
     "br-lab is not a bridge"),
    (dataclasses.replace(VLAN, device=None), GOOD, "vlan 7 needs a bridge_device on this node"),
    (dataclasses.replace(VLAN, mtu=9000), managed_node(ETH, None, frozenset(), None),
     "mtu 9000 exceeds device eth0's 1500"),
    (LinkSpec(network="x", kind=NetworkKind.BRIDGED), GOOD,
     "bridged network without a vlan or a bridge"),
    (MANAGED, managed_node(_r(GOOD_VX, alias="herd:green"), GOOD_BR, PEERS, None),
     "hvx42 belongs to Herd network green"),
    (MANAGED, managed_node(GOOD_VX, _r(GOOD_BR, alias="lab"), PEERS, None),
     "hbr42 exists and is not Herd's"),
    (MANAGED, managed_node(GOOD_VX, GOOD_BR, PEERS, dataclasses.replace(
        good_net("blue", "hbr42"), uuid="1" * 8)), "libvirt network blue exists and is not Herd's"),
])
def test_blocked_reasons(spec: LinkSpec, seen: NetObserved, reason: str) -> None:
    step = plan_network(spec, seen)
    assert (step.action, step.reason) == (NetAction.BLOCKED, reason)
    status = status_of(spec, step)
    assert not status.up and status.reason == reason


# --- the other kinds --------------------------------------------------------------------------

def test_vlan_network_converges_from_any_part_state() -> None:
    good_vl = Link(name="hvl7", kind="vlan", alias="herd:red", mtu=1500, up=True,
                   master="hbl7", vid=7, parent="eth0")
    good_bl = Link(name="hbl7", kind="bridge", alias="herd:red", mtu=1500, up=True)
    ports = [None, good_vl, _r(good_vl, vid=8), _r(good_vl, parent="eth1"), _r(good_vl, alias=""),
             _r(good_vl, up=False, master=None, mtu=1400)]
    bridges = [None, good_bl, _r(good_bl, up=False), _r(good_bl, mtu=1400)]
    for port, bridge in itertools.product(ports, bridges):
        links = {k.name: k for k in (ETH, port, bridge) if k is not None}
        step, _ = converge(VLAN, NetObserved(links=LinkObservation(links=links)))
        assert (step.action, step.device) == (NetAction.DONE, "hbl7"), (port, bridge)
    first = plan_network(VLAN, NetObserved(links=LinkObservation(links={"eth0": ETH})))
    assert (first.action, first.device, first.parent, first.vid, first.mtu) == (
        NetAction.CREATE_VLAN, "hvl7", "eth0", 7, 1500)


def test_existing_bridge_is_only_checked() -> None:
    seen = managed_node(None, OPS_BRIDGE, frozenset(), None)
    step, taken = converge(EXISTING, seen)
    assert (step.action, step.device, taken) == (NetAction.DONE, "br-lab", 3)
    assert status_of(EXISTING, step).bridge == "br-lab"
    after = seen
    while not (s := plan_network(EXISTING, after)).final:
        assert s.action in {NetAction.DEFINE_NET, NetAction.START_NET, NetAction.AUTOSTART_NET}
        after = apply(after, s)
    assert after.links == seen.links  # never a link change on the operator's bridge


# --- garbage collection -----------------------------------------------------------------------

OPERATORS = {
    "hbr4242": Link(name="hbr4242", kind="bridge", up=True),  # a Herd-like name, no alias
    "hbr-lab": Link(name="hbr-lab", kind="bridge", alias="herd:blue"),  # not a Herd name
    "br0": Link(name="br0", kind="bridge", alias="herd:gone"),
}


def cluttered() -> NetObserved:
    links = {**GOOD.links.links, **OPERATORS,
             "hvx9": _r(GOOD_VX, name="hvx9", alias="herd:gone", vid=9, master="hbr9"),
             "hbr9": _r(GOOD_BR, name="hbr9", alias="herd:gone"),
             "hvx43": _r(GOOD_VX, name="hvx43", vid=43, master=None)}  # blue's old VNI
    nets = {**GOOD.nets, "gone": good_net("gone", "hbr9"),
            "default": LibvirtNet(name="default", uuid="d" * 8, bridge="virbr0", forward="nat")}
    return NetObserved(links=LinkObservation(links=links, flood={**GOOD.links.flood,
                                                                  "hvx9": PEERS}), nets=nets)


def collect(keep: Mapping[str, frozenset[str]],
            seen: NetObserved) -> tuple[NetObserved, list[tuple[NetAction, str]]]:
    done: list[tuple[NetAction, str]] = []
    while not (step := plan_removal(keep, seen)).final:
        done.append((step.action, step.device or step.network))
        seen = apply(seen, step)
    return seen, done


def test_collection_removes_only_herds_unwanted() -> None:
    seen, done = collect(keep_for([MANAGED]), cluttered())
    assert done == [(NetAction.UNDEFINE_NET, "hbr9"), (NetAction.DELETE, "hvx43"),
                    (NetAction.DELETE, "hvx9"), (NetAction.DELETE, "hbr9")]
    assert set(seen.links.links) == {"u0", "hvx42", "hbr42", *OPERATORS}
    assert set(seen.nets) == {"blue", "default"}
    assert plan_network(MANAGED, seen).action == NetAction.DONE


def test_removing_one_network_keeps_the_others() -> None:
    seen, _ = collect(keep_all_but("blue", cluttered()), cluttered())
    assert set(seen.links.links) == {"u0", "hvx9", "hbr9", *OPERATORS}
    assert set(seen.nets) == {"gone", "default"}
    seen, _ = collect(keep_for([]), seen)
    assert set(seen.links.links) == {"u0", *OPERATORS} and set(seen.nets) == {"default"}


# --- the reconciler on a simulated node -------------------------------------------------------

class FakeNode:
    """Both drivers of `NetworkReconciler` over `apply`; `fail` makes one action raise."""

    def __init__(self, seen: NetObserved, fail: dict[NetAction, Exception] | None = None):
        self.seen, self.fail = seen, fail or {}

    async def observe(self) -> LinkObservation:
        return self.seen.links

    async def apply(self, step: NetStep) -> None:
        if step.action in self.fail:
            raise self.fail[step.action]
        self.seen = apply(self.seen, step)


class FakeNets:
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    async def observe(self) -> Mapping[str, LibvirtNet]:
        return self.node.seen.nets

    async def apply(self, step: NetStep) -> None:
        await self.node.apply(step)


def reconciler(node: FakeNode) -> NetworkReconciler:
    return NetworkReconciler(node, FakeNets(node))


async def test_reconcile_brings_the_network_up() -> None:
    node = FakeNode(managed_node(None, None, frozenset(), None))
    out = await reconciler(node).reconcile(MANAGED)
    assert out.status.up and out.status.bridge == "hbr42" and len(out.steps) == 10
    assert out.result.requeue_after is None
    assert plan_network(MANAGED, node.seen).action == NetAction.DONE


async def test_reconcile_blocked_looks_again_later() -> None:
    node = FakeNode(managed_node(None, None, frozenset(), None))
    out = await reconciler(node).reconcile(dataclasses.replace(MANAGED, mtu=1500))
    assert not out.status.up and out.status.reason.startswith("mtu 1500 exceeds")
    assert out.result.requeue_after == BLOCKED_LOOK and out.steps == ()


async def test_a_kernel_without_vxlan_is_a_reason() -> None:
    unsupported = LinkError(("ip", "link", "add"), "Error: Unknown device type.\n", returncode=2)
    node = FakeNode(managed_node(None, None, frozenset(), None),
                    fail={NetAction.CREATE_VXLAN: unsupported})
    out = await reconciler(node).reconcile(MANAGED)
    assert out.status.reason == "no VXLAN support: Error: Unknown device type."
    assert out.result.requeue_after == BLOCKED_LOOK and not node.seen.links.links.keys() - {"u0"}


async def test_a_failing_call_is_a_short_reason() -> None:
    refused = HypervisorError("cannot start network 'blue': " + "x" * 1000)
    node = FakeNode(managed_node(None, None, frozenset(), None),
                    fail={NetAction.START_NET: refused})
    out = await reconciler(node).reconcile(MANAGED)
    assert out.status.reason.startswith("start-net hbr42: cannot start network 'blue'")
    assert len(out.status.reason) <= REASON_MAX and out.result.requeue_after == ERROR_LOOK
    assert out.steps[-1].action == NetAction.DEFINE_NET  # what was done before stays done


async def test_collect_and_remove_through_the_reconciler() -> None:
    node = FakeNode(cluttered())
    cleanup = await reconciler(node).collect([MANAGED])
    assert len(cleanup.removed) == 4 and cleanup.result.requeue_after is None
    assert set(node.seen.links.links) == {"u0", "hvx42", "hbr42", *OPERATORS}
    cleanup = await reconciler(node).remove("blue")
    assert set(node.seen.links.links) == {"u0", *OPERATORS} and set(node.seen.nets) == {
        "default"}
