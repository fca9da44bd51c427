"""Placement rules: candidates, selectors, fit, ties, batch spreading (no I/O)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from store.placement import (
    NodeView,
    Planner,
    VMNeeds,
    carries_storage,
    pins_of,
    refusal,
    select,
    with_storage,
)


def node(name: str, **kw: object) -> NodeView:
    base: dict[str, object] = dict(alive=True, daemon_state="run", domain_state="ready",
                                   mem_total=32768, mem_free=16384, mem_prov=8192,
                                   vcpu_alloc=4, load=1.0, vms=4)
    base.update(kw)
    return NodeView(name=name, **base)  # type: ignore[arg-type]


VM = VMNeeds(name="vm1", memory_mib=1024, vcpus=2)


@pytest.mark.parametrize(("selector", "expected"), [
    ("mem", "b"), ("memprov", "c"), ("load", "a"), ("vcpus", "c"), ("vms", "a"),
])
def test_each_selector_picks_by_its_measure(selector: str, expected: str) -> None:
    nodes = [node("a", mem_free=1000 + 2048, load=0.1, vms=1, vcpu_alloc=9, mem_prov=30000),
             node("b", mem_free=20000, load=2.0, vms=8, vcpu_alloc=5, mem_prov=20000),
             node("c", mem_free=4000, load=3.0, vms=9, vcpu_alloc=1, mem_prov=1000)]
    vm = VMNeeds(name="vm1", memory_mib=1024, vcpus=1, selector=selector)
    assert select(vm, nodes, default="mem") == expected


def test_none_uses_the_cluster_default_and_ties_break_by_name() -> None:
    nodes = [node("c"), node("a"), node("b")]
    assert select(VM, nodes, default="vms") == "a"
    assert select(VMNeeds("x", 1, 1, selector="none"), [node("b", vms=0), node("a")],
                  default="vms") == "b"


def test_only_usable_nodes_inside_the_limits_that_fit_are_candidates() -> None:
    nodes = [node("dead", alive=False, mem_free=99999),
             node("stopping", daemon_state="shutdown", mem_free=99999),
             node("flushed", domain_state="flushed", mem_free=99999),
             node("small", mem_free=512),
             node("outside", mem_free=90000),
             node("ok", mem_free=2048)]
    vm = VMNeeds("vm1", 1024, 1, limits=("dead", "stopping", "flushed", "small", "ok"))
    assert select(vm, nodes, default="mem") == "ok"
    assert select(vm, nodes, default="mem", exclude=("ok",)) is None


def test_memprov_fit_counts_provisioned_memory() -> None:
    vm = VMNeeds("vm1", 4096, 1, selector="memprov")
    assert select(vm, [node("a", mem_total=8192, mem_prov=6000, mem_free=30000)],
                  default="mem") is None
    assert select(vm, [node("a", mem_total=8192, mem_prov=4000, mem_free=0)],
                  default="mem") == "a"


def test_refusals_name_the_rule() -> None:
    vm = VMNeeds("vm1", 4096, 1, limits=("a",))
    assert refusal(vm, None, selector="mem", name="zz") == "node 'zz' does not exist"
    assert "outside the VM's limits" in str(refusal(vm, node("b"), selector="mem"))
    assert "not ready" in str(refusal(vm, node("a", domain_state="flushed"), selector="mem"))
    assert "not running" in str(refusal(vm, node("a", alive=False), selector="mem"))
    assert "needs 4096 MiB" in str(refusal(vm, node("a", mem_free=100), selector="mem"))
    assert refusal(vm, node("a"), selector="mem") is None


def test_a_batch_spreads_instead_of_piling_on_one_node() -> None:
    planner = Planner([node("a", vms=0), node("b", vms=0)], default="vms")
    targets = [planner.place(VMNeeds(f"vm{i}", 512, 1)) for i in range(30)]
    assert targets.count("a") == 15 and targets.count("b") == 15
    mem = Planner([node("a", mem_free=4096), node("b", mem_free=4096)], default="mem")
    placed = [mem.place(VMNeeds(f"vm{i}", 1024, 1)) for i in range(10)]
    assert placed.count("a") == 4 and placed.count("b") == 4
    assert placed[8:] == [None, None]  # nothing fits any more


def test_a_vm_goes_only_where_its_networks_are_up() -> None:
    vm = VMNeeds("web1", 512, 1, networks=("web", "db"))
    nodes = [node("a", networks=frozenset({"web"})), node("b", networks=frozenset({"web", "db"})),
             node("c", mem_free=1 << 30)]
    assert select(vm, nodes, default="mem") == "b"
    assert refusal(vm, nodes[0], selector="mem") == "network 'db' is not up on node 'a'"
    up = NodeView.from_status("n", {"daemonState": "run", "domainState": "ready", "networks": {
        "web": {"up": True}, "db": {"up": False, "reason": "x"}}}, alive=True)
    assert up.networks == frozenset({"web"})


def test_a_vm_with_local_volumes_goes_only_to_their_node() -> None:
    xml = ("<domain type='kvm'><name>a</name><devices><disk type='volume'><source "
           "pool='local' volume='v1'/></disk><disk type='volume'><source pool='nfs' "
           "volume='v2'/></disk></devices></domain>")
    homes = {"local/v1": "b"}
    pins = pins_of(xml, homes.get)
    assert pins == ("b",)
    vm = VMNeeds("a", 512, 1, pins=pins)
    assert select(vm, [node("a", mem_free=1 << 30), node("b")], default="mem") == "b"
    assert refusal(vm, node("a"), selector="mem") == \
        "its volumes on local pools live on b, not on 'a'"
    split = VMNeeds("a", 512, 1, pins=("a", "b"))
    assert select(split, [node("a"), node("b")], default="mem") is None


# --- volumes on local pools: pinned, or carried along by a live migration ------------------

GIB = 1 << 30
PINNED = VMNeeds(name="vm1", memory_mib=1024, vcpus=2, pins=("a",), carry=(("local", GIB),))


def test_local_volumes_pin_a_vm_unless_they_are_carried_along() -> None:
    b = node("b", pool_free={"local": 2 * GIB})
    assert refusal(PINNED, node("a"), selector="mem") is None
    assert "live on a, not on 'b'" in str(refusal(PINNED, b, selector="mem"))
    assert refusal(PINNED, b, selector="mem", carrying=True) is None


@pytest.mark.parametrize(("pools", "expected"), [
    ({}, "pool 'local' of its volumes is not usable on node 'b'"),
    ({"local": GIB - 1}, f"its volumes need {GIB} bytes in pool 'local'; node 'b' has "
                         f"{GIB - 1} free"),
])
def test_a_carried_volume_needs_room_in_the_targets_pool(pools: dict[str, int],
                                                         expected: str) -> None:
    assert refusal(PINNED, node("b", pool_free=pools), selector="mem",
                   carrying=True) == expected


def test_volumes_on_two_nodes_cannot_be_carried() -> None:
    split = replace(PINNED, pins=("a", "c"))
    assert "live on a and c" in str(refusal(split, node("b", pool_free={"local": 9 * GIB}),
                                            selector="mem", carrying=True))


def test_a_batch_counts_the_pool_space_it_already_gave_away() -> None:
    planner = Planner([node("b", pool_free={"local": GIB + GIB // 2}, mem_free=30000),
                       node("c", pool_free={"local": GIB}, mem_free=1100)], default="mem")
    assert planner.place(PINNED, exclude=["a"], carrying=True) == "b"
    assert planner.place(replace(PINNED, name="vm2"), exclude=["a"], carrying=True) == "c"
    assert planner.place(replace(PINNED, name="vm3"), exclude=["a"], carrying=True) is None


@pytest.mark.parametrize(("running_on", "method", "live", "reachable", "expected"), [
    ("a", "live", True, False, True), ("a", "any", True, False, True),  # live, with the memory
    ("a", "shutdown", True, True, True),  # off first, then the target copies from a
    ("a", "shutdown", True, False, False),  # a publishes no libvirt URI: nothing to copy from
    ("a", "live", False, True, True),  # no live migration here: by shutdown and copy
    ("a", "live", False, False, False),  # libvirt's test driver: neither
    (None, "live", True, True, True),  # not running: copied before its next start
    (None, "live", True, False, False),
])
def test_volumes_move_with_a_live_migration_or_a_copy_from_their_node(
        running_on: str | None, method: str, live: bool, reachable: bool,
        expected: bool) -> None:
    source = node("a", live_migration=live, reachable=reachable)
    assert carries_storage(PINNED, running_on=running_on, method=method,
                           source=source) is expected


def test_volumes_move_with_a_copy_only_from_a_living_node() -> None:
    dead = node("a", alive=False, live_migration=True, reachable=True)
    assert not carries_storage(PINNED, running_on=None, method="any", source=dead)
    assert not carries_storage(PINNED, running_on=None, method="any", source=None)
    other = node("b", live_migration=True, reachable=True)  # not where the volumes are
    assert not carries_storage(PINNED, running_on=None, method="any", source=other)


def test_with_storage_sums_what_moving_the_volumes_takes_per_pool() -> None:
    xml = ("<domain type='kvm'><name>vm1</name><devices>" + "".join(
        f"<disk type='volume'><source pool='{p}' volume='{v}'/><target dev='vd{v}'/></disk>"
        for p, v in (("local", "x"), ("local", "y"), ("ceph", "z"))) + "</devices></domain>")
    local = {"local/x": ("a", 5), "local/y": ("a", 7)}
    needs = with_storage(VM, xml, local.get)
    assert needs.pins == ("a",) and needs.carry == (("local", 12),)
