"""The pure decisions of the node shutdown policy (`reconciler.node.shutdownplan`): is the
host going down, does a node going down flush itself, the transactions of its own flush and
of its return, when a VM that left is out of its hands, which guests `stop` shuts down and
the status it records for them."""

from __future__ import annotations

from typing import Any

import pytest
from kazoo.protocol.states import ZnodeStat

from reconciler.libvirt import DomainInfo
from reconciler.node.shutdownplan import (
    flush_decision,
    flush_ops,
    guests_to_stop,
    moved,
    policy_of,
    resume_ops,
    shutdown_queued,
)
from schemas.node import ClusterConfigSchema, NodeStatusSchema
from store import nodestatus, txn, vmstatus
from store.client import Versioned
from store.model import VM, Node
from store.paths import Paths
from store.placement import NodeView
from vocabulary import RunState, ShutdownPolicy

PATHS = Paths("/herd")

JOBS_POWEROFF = """\
 2317 poweroff.target                      start waiting
 2318 shutdown.target                      start waiting
 2402 herd-node.service                    stop  running
"""
JOBS_REBOOT = " 88 reboot.target start waiting\n"
JOBS_RESTART = " 1204 herd-node.service restart running\n"


def versioned(doc: dict[str, Any], *, version: int = 3) -> Versioned:
    return Versioned(doc, ZnodeStat(1, 10, 1000, 2000, version, 0, 0, 0, 10, 0, 1))


def node_doc(domain_state: str, *, gen: int = 4) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "Node",
            "metadata": {"name": "hv1", "generation": gen},
            "spec": {"domainState": domain_state, "coordinator": True, "fence": "auto"}}


def node(want: str, status: str) -> Node:
    return Node("hv1", versioned(node_doc(want)),
                versioned({"daemonState": "shutdown", "domainState": status}), alive=True)


def view(name: str, *, alive: bool = True, daemon: str = "run",
         domain: str = "ready") -> NodeView:
    return NodeView(name, alive, daemon, domain)


@pytest.mark.parametrize(("jobs", "expected"), [
    (JOBS_POWEROFF, True), (JOBS_REBOOT, True), (JOBS_RESTART, False), ("", False),
    ("No jobs running.\n", False),
    (" 7 shutdown.target.wants-not start waiting\n", False),  # the unit's full name only
])
def test_the_host_shuts_down_when_systemd_has_a_shutdown_or_reboot_queued(
        jobs: str, expected: bool) -> None:
    assert shutdown_queued(jobs) is expected


def test_the_policy_defaults_to_migrate() -> None:
    assert ClusterConfigSchema().load({})["shutdownPolicy"] == "migrate"
    assert ClusterConfigSchema().load({"shutdownPolicy": "stop"})["shutdownPolicy"] == "stop"
    assert ClusterConfigSchema().validate({"shutdownPolicy": "failover"}) == {
        "shutdownPolicy": ["Invalid shutdownPolicy 'failover'; must be one of: migrate, "
                           "freeze, stop."]}
    assert (policy_of("freeze"), policy_of(None), policy_of("odd")) == \
        (ShutdownPolicy.FREEZE, ShutdownPolicy.MIGRATE, ShutdownPolicy.MIGRATE)


def test_a_ready_node_flushes_itself_when_a_primary_and_another_ready_node_exist() -> None:
    others = [view("hv2", domain="flushed"), view("hv3")]
    decision = flush_decision(node("ready", "ready"), others, "hv2")
    assert (decision.write, decision.wait) == (True, True)


@pytest.mark.parametrize(("want", "status", "others", "primary", "expected", "why"), [
    ("ready", "ready", [view("hv2")], None, (False, False), "no primary"),
    ("ready", "ready", [view("hv2", alive=False), view("hv3", daemon="stop"),
                        view("hv4", domain="flushing"), view("hv1")], "hv1",
     (False, False), "no other node is ready"),
    ("flushed", "flushed", [view("hv2")], "hv2", (False, False), "flushed already"),
    ("flushed", "flushing", [view("hv2")], "hv2", (False, True), "under way"),
])
def test_a_node_does_not_flush_itself_without_a_primary_a_target_or_a_need(
        want: str, status: str, others: list[NodeView], primary: str | None,
        expected: tuple[bool, bool], why: str) -> None:
    decision = flush_decision(node(want, status), others, primary)
    assert (decision.write, decision.wait) == expected and why in decision.why


def test_its_own_flush_writes_the_spec_and_the_mark_version_checked() -> None:
    status = {"daemonState": "shutdown", "domainState": "ready", "heartbeat": 1.0}
    ops = flush_ops(PATHS, "hv1", versioned(node_doc("ready"), version=7),
                    versioned(status, version=9))
    spec, mark = ops
    assert isinstance(spec, txn.Set) and isinstance(mark, txn.Set)
    assert (spec.path, spec.version) == ("/herd/nodes/hv1", 7)
    assert spec.doc["spec"]["domainState"] == "flushed"
    assert spec.doc["metadata"]["generation"] == 5
    assert (mark.path, mark.version) == ("/herd/nodes/hv1/status", 9)
    assert mark.doc == {**status, "shutdownFlush": 5}
    assert NodeStatusSchema().validate(mark.doc) == {}
    assert flush_ops(PATHS, "hv1", versioned(node_doc("flushed")), versioned(status)) == []


def test_back_from_its_own_flush_the_node_is_ready_again_and_the_mark_goes() -> None:
    status = versioned({"domainState": "flushed", "shutdownFlush": 4}, version=2)
    ops = resume_ops(PATHS, "hv1", versioned(node_doc("flushed", gen=4), version=6), status)
    spec, unmark = ops
    assert isinstance(spec, txn.Set) and isinstance(unmark, txn.Set)
    assert spec.version == 6 and spec.doc["spec"]["domainState"] == "ready"
    assert unmark.version == 2 and unmark.doc == {"domainState": "flushed"}


@pytest.mark.parametrize("spec", [
    node_doc("flushed", gen=6),  # the operator readied and flushed it meanwhile
    node_doc("ready", gen=5),  # the operator readied it already
])
def test_a_node_flushed_by_an_operator_stays_as_the_operator_left_it(
        spec: dict[str, Any]) -> None:
    status = versioned({"domainState": "flushed", "shutdownFlush": 4})
    ops = resume_ops(PATHS, "hv1", versioned(spec), status)
    assert [op.path for op in ops] == ["/herd/nodes/hv1/status"]
    assert resume_ops(PATHS, "hv1", versioned(node_doc("flushed")),
                      versioned({"domainState": "flushed"})) == []


def vm(*, want: str = "running", home: str | None = "hv2", state: str = "running",
       on: str | None = "hv2") -> VM:
    return VM("web", versioned({"spec": {"state": want}}),
              versioned({"node": home, "lastNode": "hv1"}),
              versioned({"state": state, "node": on}))


@pytest.mark.parametrize(("found", "expected"), [
    (vm(), True),  # runs where it went
    (vm(state="stopped", on=None), False),  # on its way: the target may copy from hv1
    (vm(state="starting"), False),
    (vm(home="hv1", on="hv1"), False),  # not moved yet
    (vm(want="stopped", home="hv1", state="stopped", on=None), True),  # stopped for lack
    (vm(home=None, state="stopped", on=None), True),  # waits for a node: not hv1's
])
def test_a_vm_that_left_is_out_of_the_nodes_hands_once_it_runs_where_it_went(
        found: VM, expected: bool) -> None:
    assert moved(found, "hv1") is expected


def test_stop_shuts_down_the_guests_of_herd_that_are_up_here() -> None:
    def domain(name: str, state: RunState, *, migrating_in: bool = False) -> DomainInfo:
        return DomainInfo(name, "u-" + name, state, 1, 512, 1, True, migrating_in)
    domains = {"web": domain("web", RunState.RUNNING), "db": domain("db", RunState.PAUSED),
               "off": domain("off", RunState.DEFINED), "foreign": domain("foreign",
                                                                          RunState.RUNNING),
               "arriving": domain("arriving", RunState.PAUSED, migrating_in=True)}
    timeouts: dict[str, float | None] = {"web": None, "db": 30.0, "off": None, "arriving": None}
    assert guests_to_stop(domains, timeouts, 180.0) == {"db": 30.0, "web": 180.0}


def test_a_guest_stopped_with_its_node_is_off_and_still_placed_there() -> None:
    old = {"state": "running", "node": "hv1", "since": 1.0, "runningXmlHash": "abc",
           "observedGeneration": 3, "migration": None}
    new = vmstatus.shut_down_here(old, node="hv1", now=5.0, forced=True)
    assert (new["state"], new["node"], new["since"], new["runningXmlHash"]) == \
        ("stopped", None, 5.0, None)
    assert new["reason"] == "forced off with node hv1 (shutdownPolicy stop)"
    assert new["observedGeneration"] == 3
    assert nodestatus.with_shutdown_flush({"shutdownFlush": 2, "a": 1}, None) == {"a": 1}
