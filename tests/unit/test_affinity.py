"""Affinity rules and exact accounting in placement (issue #17), on generated clusters:
whatever the nodes, VMs, limits and rules, a `Planner` pass never breaks a strict rule,
never leaves a VM's limits, never gives a node more memory than it has, and breaks a soft
rule only when every node that keeps it is no valid target. Plus the cases by hand: a
`together` pair follows its first member, `apart` spreads, the reason names the rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from store import rebalance
from store.affinity import APART, TOGETHER, Rule, broken, strict_refusal
from store.placement import NodeView, Placed, Planner, VMNeeds, account, candidates

NODES = ("hv1", "hv2", "hv3", "hv4")


def node(name: str, *, free: int = 4096, vms: int = 0) -> NodeView:
    return NodeView(name=name, alive=True, daemon_state="run", domain_state="ready",
                    mem_total=8192, mem_free=free, vms=vms)


def vm(name: str, *, memory: int = 512, limits: tuple[str, ...] = ()) -> VMNeeds:
    return VMNeeds(name=name, memory_mib=memory, vcpus=1, limits=limits)


def test_together_follows_the_first_member_and_apart_spreads() -> None:
    rules = [Rule("db", TOGETHER, True, ("db1", "db2")),
             Rule("web", APART, True, ("web1", "web2", "web3"))]
    planner = Planner([node(n) for n in NODES[:3]], default="vms", rules=rules)
    assert planner.place(vm("db1")) == "hv1"
    assert planner.place(vm("db2")) == "hv1"  # `vms` alone would pick hv2
    assert {planner.place(vm(f"web{i}")) for i in (1, 2, 3)} == {"hv1", "hv2", "hv3"}
    assert planner.place(vm("web4")) is not None  # not in the rule


def test_a_strict_rule_makes_a_vm_wait_and_says_which() -> None:
    rules = [Rule("pair", APART, True, ("a", "b"))]
    planner = Planner([node("hv1"), node("hv2", free=100)], default="mem", rules=rules,
                      where={"a": "hv1"})
    assert planner.place(vm("b")) is None
    assert planner.why_not(vm("b")) == "strict rule 'pair' keeps b apart from a (on hv1)"
    assert Planner([node("hv1")], default="mem").why_not(vm("c", limits=("hv2",))) is None
    assert strict_refusal("b", "hv2", rules, {"a": "hv1"}) is None


def test_a_soft_rule_gives_way_only_when_nothing_else_fits_and_is_reported() -> None:
    rules = [Rule("pair", APART, False, ("a", "b"))]
    planner = Planner([node("hv1"), node("hv2", free=100)], default="mem", rules=rules,
                      where={"a": "hv1"})
    assert planner.place(vm("b")) == "hv1"
    assert planner.broken_soft("b") == ["soft rule 'pair' keeps b apart from a (on hv1)"]
    roomy = Planner([node("hv1", free=8000), node("hv2", free=1000)], default="mem",
                    rules=rules, where={"a": "hv1"})
    assert roomy.place(vm("b")) == "hv2"  # kept, though `mem` prefers hv1
    assert roomy.broken_soft("b") == []


def test_a_batch_moving_a_together_pair_keeps_it_together() -> None:
    rules = [Rule("pair", TOGETHER, True, ("a", "b"))]
    planner = Planner([node(n) for n in NODES[:3]], default="vms", rules=rules,
                      where={"a": "hv1", "b": "hv1"})
    planner.unplace(["a", "b"])  # hv1 is flushed: both leave
    first = planner.place(vm("a"), exclude=["hv1"])
    assert first is not None and planner.place(vm("b"), exclude=["hv1"]) == first


def test_exact_accounting_counts_what_is_placed_and_not_yet_running() -> None:
    published = [node("hv1", free=4096, vms=0), node("hv2", free=4096, vms=0)]
    placed = [Placed("hv1", 1024, 2, to_run=True, counted=False),
              Placed("hv1", 512, 1, to_run=True, counted=True),
              Placed("hv2", 256, 1, to_run=False, counted=False)]
    hv1, hv2 = account(published, placed)
    assert (hv1.vms, hv1.vcpu_alloc, hv1.mem_prov, hv1.mem_free) == (2, 3, 1536, 3072)
    assert (hv2.vms, hv2.vcpu_alloc, hv2.mem_prov, hv2.mem_free) == (0, 0, 256, 4096)
    # The `vms` selector now sees hv1 busy, though it published `vms: 0`.
    assert Planner([hv1, hv2], default="vms").place(vm("next")) == "hv2"
    # A running guest the node's free memory does not show yet still takes its memory.
    (late,) = account([node("hv3", free=8192)], [Placed("hv3", 6144, 1, to_run=True,
                                                          counted=True)])
    assert late.mem_free == 8192 - 6144


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[NodeView], list[VMNeeds], list[Rule]]:
    nodes = [node(n, free=draw(st.integers(0, 4096))) for n in
             NODES[:draw(st.integers(1, len(NODES)))]]
    names = [f"v{i}" for i in range(draw(st.integers(1, 10)))]
    vms = [vm(n, memory=draw(st.sampled_from((256, 512, 1024))),
              limits=tuple(draw(st.lists(st.sampled_from(NODES), max_size=2, unique=True))))
           for n in names]
    rules = [Rule(f"r{i}", draw(st.sampled_from((APART, TOGETHER))), draw(st.booleans()),
                  tuple(draw(st.lists(st.sampled_from(names), min_size=2, max_size=4,
                                      unique=True))))
             for i in range(draw(st.integers(0, 3))) if len(names) >= 2]
    return nodes, vms, rules


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_a_pass_never_breaks_a_strict_rule_or_a_limit_or_overfills(
        cluster: tuple[list[NodeView], list[VMNeeds], list[Rule]]) -> None:
    nodes, vms, rules = cluster
    planner = Planner(nodes, default="mem", rules=rules)
    for needs in vms:
        # Nodes that would keep every rule of this VM, before it is placed.
        keeping = [n.name for n in candidates(needs, planner.nodes.values(), selector="mem")
                   if all(r.breaks(needs.name, n.name, planner.where) is None
                          for r in rules)]
        target = planner.place(needs)
        if target is None:
            assert not keeping
            continue
        assert not needs.limits or target in needs.limits
        assert planner.nodes[target].mem_free >= 0
        if keeping:  # a soft rule is broken only when no valid node keeps them all
            assert planner.broken_soft(needs.name) == []
    assert [r.name for r, _vm in broken(rules, planner.where) if r.strict] == []


def test_rebalance_evens_the_vms_and_keeps_strict_rules() -> None:
    nodes = [node("hv1", vms=4), node("hv2"), node("hv3")]
    running = {f"v{i}": (vm(f"v{i}"), "hv1") for i in range(4)}
    rules = [Rule("stay", TOGETHER, True, ("v0", "v1"))]
    where = {name: "hv1" for name in running}
    found = rebalance.plan(nodes, running, selector="vms", rules=rules, where=where)
    assert (found.before, found.after) == (4.0, 1.0)
    moved = {m.vm: m.target for m in found.moves}
    assert "v0" not in moved and "v1" not in moved  # they may only move together
    assert sorted(moved.values()) == ["hv2", "hv3"]
    assert rebalance.plan(nodes, running, selector="vms", threshold=5.0).moves == ()


@settings(max_examples=200, deadline=None)
@given(clusters(), st.sampled_from(("mem", "memprov", "vcpus", "vms")))
def test_rebalance_never_raises_the_imbalance_nor_breaks_a_rule_or_limit(
        cluster: tuple[list[NodeView], list[VMNeeds], list[Rule]], selector: str) -> None:
    nodes, vms, rules = cluster
    planner = Planner(nodes, default="mem", rules=rules)
    running = {v.name: (v, t) for v in vms if (t := planner.place(v)) is not None}
    found = rebalance.plan(list(planner.nodes.values()), running, selector=selector,
                           rules=rules, where=planner.where)
    assert found.after <= found.before
    where = dict(planner.where)
    for move in found.moves:
        needs = running[move.vm][0]
        assert not needs.limits or move.target in needs.limits
        where[move.vm] = move.target
    strict = [r for r in rules if r.strict]
    assert len(broken(strict, where)) <= len(broken(strict, planner.where))


def test_restart_limits_count_failures_here_then_relocate_then_give_up() -> None:
    from store import restarts
    from vocabulary import RunState, VMState

    assert restarts.is_restart(VMState.FAILED, RunState.DEFINED, status_here=True)
    assert not restarts.is_restart(VMState.RUNNING, RunState.DEFINED, status_here=True)
    assert restarts.is_restart(VMState.STOPPED, RunState.CRASHED, status_here=False)
    assert not restarts.is_restart(VMState.STOPPED, RunState.DEFINED, status_here=True)
    assert not restarts.is_restart(VMState.FAILED, RunState.DEFINED, status_here=False)
    window = restarts.RESTART_WINDOW
    status = {"restarts": [0.0, window - 1]}
    assert not restarts.budget_left(status, max_restart=1, now=window)  # one in the window
    assert restarts.budget_left(status, max_restart=2, now=window)
    assert restarts.with_restart(status, now=window)["restarts"] == [window - 1, window]
    first = restarts.relocation({}, gave_up_on="hv1", generation=3, max_relocate=1)
    assert (first.tried, first.exhausted) == (("hv1",), False)
    placement = {"tried": {"generation": 3, "nodes": ["hv1"]}}
    second = restarts.relocation(placement, gave_up_on="hv2", generation=3, max_relocate=1)
    assert (second.tried, second.exhausted) == (("hv1", "hv2"), True)
    fresh = restarts.relocation(placement, gave_up_on="hv2", generation=4, max_relocate=1)
    assert fresh.tried == ("hv2",)  # a new spec generation starts afresh


def test_a_return_moves_a_together_group_whole_and_one_of_an_apart_pair() -> None:
    from store.affinity import going_together

    rules = [Rule("trio", TOGETHER, True, ("t1", "t2", "t3")),
             Rule("pair", APART, True, ("a1", "a2")), Rule("x", APART, True, ("s1", "x1"))]
    where = {"t1": "hv3", "t2": "hv3", "t3": "hv3", "a1": "hv2", "a2": "hv3",
             "s1": "hv3", "x1": "hv1"}
    assert going_together(["t1", "t2", "t3", "a1", "a2"], "hv1", rules, where) == {
        "t1", "t2", "t3", "a1"}
    assert going_together(["s1"], "hv1", rules, where) == set()  # x1 is there
