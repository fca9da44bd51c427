"""The fault suite's checker on hand-made histories (no I/O): a clean one passes every
check, and each kind of broken promise — a double run, a lost write, a half-written object,
a VM down that should run, a stop no request explains, a forgotten autorestart, a process
that died by itself — fails the check that guards it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from tests.support.chaos.checker import CheckResult, check
from tests.support.chaos.model import OK, REFUSED, UNKNOWN, ZVM, Evidence, Exit, Op, Snapshot, ZNode
from tests.support.chaos.recorder import HostwatchRecorder
from tests.support.history import Run

NODES = ("hv1", "hv2", "hv3")
XML = "<domain type='test'><name>{}</name><memory unit='MiB'>128</memory></domain>"


def vm(name: str, *, state: str = "running", node: str | None = "hv1",
       limits: tuple[str, ...] = (), observed: str | None = None, owner: str | None = "same",
       generation: int = 1, **placement: Any) -> ZVM:
    observed = observed or ("running" if state == "running" else "stopped")
    running = observed == "running"
    spec = {"apiVersion": "herd/v1", "kind": "VM",
            "metadata": {"name": name, "generation": generation},
            "spec": {"state": state, "xml": XML.format(name), "shutdownTimeout": 10,
                     "meta": {"limits": list(limits), "selector": "mem", "autorestart": False,
                              "migrationMethod": "any"}}}
    owner_node = node if owner == "same" else owner
    return ZVM(name, spec, {"node": node, "lastNode": None, "reason": "", "home": None,
                            "autorestartPending": False, **placement},
               {"state": observed, "node": node if running else None},
               {"node": owner_node} if running and owner_node else None)


def node(name: str, *, domain_state: str = "ready", alive: bool = True) -> ZNode:
    return ZNode(name, {"spec": {"domainState": domain_state}},
                 {"daemonState": "run", "domainState": domain_state}, alive)


def op(seq: int, verb: str, *, vm_name: str | None = "web", slot: int | None = 0,
       node_name: str | None = None, outcome: str = OK, t: float | None = None,
       **args: Any) -> Op:
    at = float(seq) if t is None else t
    return Op(seq, slot, vm_name, node_name, verb, args, at, at + 0.1, outcome)


def node_op(seq: int, verb: str, *, t: float, name: str = "hv1") -> Op:
    return op(seq, verb, vm_name=None, slot=None, node_name=name, t=t)


def define(seq: int = 1, name: str = "web", **args: Any) -> Op:
    return op(seq, "define", vm_name=name, t=0.0, **{"limits": [], "selector": "mem",
                                                      "autorestart": False, "shutdownTimeout": 10,
                                                      "state": "running", **args})


def evidence(vms: list[ZVM], runs: list[Run], *, ops: list[Op], **kw: Any) -> Evidence:
    snapshot = Snapshot({v.name: v for v in vms}, {n: node(n) for n in NODES}, 100.0)
    return Evidence(runs=runs, ops=ops, snapshot=snapshot, **kw)


def failed(ev: Evidence) -> dict[str, CheckResult]:
    return {r.name: r for r in check(ev) if not r.passed}


def clean() -> Evidence:
    return evidence([vm("web")], [Run("web", "hv1", 1.0, math.inf)], ops=[define()])


def test_a_clean_history_passes_every_check() -> None:
    results = check(clean())
    assert [r.name for r in results if not r.passed] == []
    assert len(results) == 7


def test_two_nodes_running_one_vm_at_once_fail() -> None:
    ev = clean()
    ev.runs = [Run("web", "hv1", 1.0, math.inf), Run("web", "hv2", 5.0, 9.0, "stopped")]
    ev.ops.append(op(2, "migrate", t=4.0))
    bad = failed(ev)
    assert set(bad) == {"one-runner"}
    assert "hv2" in bad["one-runner"].violations[0].message


def test_a_lost_metadata_write_fails() -> None:
    ev = clean()
    ev.ops.append(op(2, "meta", limits=["hv1", "hv2"]))
    bad = failed(ev)
    assert set(bad) == {"writes-kept"}
    assert "limits" in bad["writes-kept"].violations[0].message


def test_a_write_without_an_answer_may_or_may_not_be_there() -> None:
    ev = clean()
    ev.ops += [op(2, "meta", selector="load", outcome=UNKNOWN),
               op(3, "meta", selector="vms", outcome=REFUSED)]
    assert failed(ev) == {}
    ev.snapshot.vms["web"].spec["spec"]["meta"]["selector"] = "load"  # type: ignore[index]
    assert failed(ev) == {}
    ev.snapshot.vms["web"].spec["spec"]["meta"]["selector"] = "vms"  # type: ignore[index]
    assert set(failed(ev)) == {"writes-kept"}  # refused: it must not be there


def test_a_lost_define_and_a_lost_generation_fail() -> None:
    ev = evidence([], [], ops=[define()])
    assert "missing" in failed(ev)["writes-kept"].violations[0].message
    ev = clean()
    ev.ops.append(replace(op(2, "start"), answer={"generation": 5}))
    assert "generation" in failed(ev)["writes-kept"].violations[0].message


def test_a_half_done_rename_and_a_name_that_came_back_fail() -> None:
    renamed = vm("web-r1")
    ev = evidence([vm("web", state="stopped"), renamed], [], ops=[
        define(), op(2, "rename", new_name="web-r1", outcome=UNKNOWN)])
    assert "half-done rename" in failed(ev)["writes-kept"].violations[0].message
    ev = evidence([vm("web", state="stopped"), renamed], [], ops=[
        define(), op(2, "rename", new_name="web-r1")])
    assert "renamed away" in failed(ev)["writes-kept"].violations[0].message


def test_the_primary_may_stop_a_vm_nothing_can_take() -> None:
    stopped = vm("web", state="stopped", reason="no valid target to recover from hv1",
                 autorestartPending=True, home="hv1", generation=2)
    ev = evidence([stopped], [Run("web", "hv1", 1.0, 5.0, "died")],
                  ops=[replace(define(), answer={"generation": 1})], deaths={"hv1": [5.0]})
    ev.snapshot.nodes["hv1"] = node("hv1", domain_state="flushed")
    assert failed(ev) == {}
    ev.snapshot.vms["web"] = replace(stopped, spec={  # no other writer: the write is lost
        **stopped.spec, "metadata": {"name": "web", "generation": 1}})  # type: ignore[dict-item]
    assert "state is 'stopped'" in failed(ev)["writes-kept"].violations[0].message


def test_a_half_written_or_inconsistent_object_fails() -> None:
    for broken in (replace(vm("web"), status=None),
                   replace(vm("web"), placement="<unparseable: not JSON>"),
                   replace(vm("web"), spec={**vm("web").spec,  # type: ignore[dict-item]
                                            "metadata": {"name": "other"}}),
                   vm("web", node="hv9")):
        ev = evidence([broken], [Run("web", "hv1", 1.0, math.inf)], ops=[])
        assert "whole-objects" in failed(ev), broken


def test_a_vm_down_that_should_run_fails() -> None:
    ev = evidence([vm("web", observed="stopped")], [], ops=[define()])
    assert "desired running" in failed(ev)["desired-running"].violations[0].message


def test_herd_saying_running_without_the_hypervisor_agreeing_fails() -> None:
    ev = evidence([vm("web")], [Run("web", "hv2", 1.0, math.inf)], ops=[define()])
    assert "history" in failed(ev)["desired-running"].violations[0].message


def test_running_outside_the_limits_or_on_a_dead_node_fails() -> None:
    ev = evidence([vm("web", limits=("hv2",))], [Run("web", "hv1", 1.0, math.inf)], ops=[])
    assert "limits" in failed(ev)["whole-objects"].violations[0].message
    ev = clean()
    ev.snapshot.nodes["hv1"] = node("hv1", alive=False)
    assert "not alive" in failed(ev)["desired-running"].violations[0].message


def test_a_vm_running_that_should_not_fails() -> None:
    ev = evidence([vm("web", state="stopped")], [Run("web", "hv1", 1.0, math.inf)],
                  ops=[define(state="stopped")])
    assert "history has it running" in failed(ev)["desired-running"].violations[0].message


def test_a_stop_no_request_explains_fails_and_requests_deaths_fences_explain() -> None:
    runs = [Run("web", "hv1", 1.0, 20.0, "stopped"), Run("web", "hv1", 21.0, math.inf)]
    ev = evidence([vm("web")], runs, ops=[define()])
    assert "no request" in failed(ev)["no-unexplained-stop"].violations[0].message
    for explained in (evidence([vm("web")], runs, ops=[define(), op(2, "restart", t=19.0)]),
                      evidence([vm("web")], runs, ops=[define(), node_op(2, "flush", t=10.0),
                                                   node_op(3, "ready", t=30.0)]),
                      evidence([vm("web")], runs, ops=[define()], fences={"hv1": [19.0]})):
        assert failed(explained) == {}
    died = [Run("web", "hv1", 1.0, 20.0, "died"), Run("web", "hv1", 21.0, math.inf)]
    assert failed(evidence([vm("web")], died, ops=[define()], deaths={"hv1": [20.0]})) == {}


def test_a_request_before_the_previous_run_explains_nothing() -> None:
    runs = [Run("web", "hv1", 1.0, 5.0, "stopped"), Run("web", "hv1", 6.0, 20.0, "stopped"),
            Run("web", "hv1", 21.0, math.inf)]
    ev = evidence([vm("web")], runs, ops=[define(), op(2, "shutdown", t=4.0),
                                          op(3, "start", t=5.5)])
    bad = failed(ev)["no-unexplained-stop"].violations
    assert [v.at for v in bad] == [20.0]


def test_a_forgotten_autorestart_fails() -> None:
    pending = vm("web", state="stopped", reason="no valid target", autorestartPending=True,
                 home="hv1")
    ev = evidence([pending], [], ops=[define()])
    assert "autorestartPending" in failed(ev)["autorestart"].violations[0].message


def test_a_process_that_died_by_itself_fails() -> None:
    ev = clean()
    ev.exits = [Exit("node/hv2", 10.0, 1, False), Exit("node/hv3", 12.0, -9, True)]
    bad = failed(ev)["processes"].violations
    assert [v.subject for v in bad] == ["node/hv2"]
    ev.exits, ev.stuck = [], [("node/hv1", 20.0)]
    assert "SIGTERM" in failed(ev)["processes"].violations[0].message


def test_a_ready_of_another_node_explains_a_return_and_old_node_requests_do_not() -> None:
    runs = [Run("web", "hv2", 30.0, 40.0, "stopped"), Run("web", "hv1", 41.0, math.inf)]
    back = evidence([vm("web")], runs, ops=[define(), node_op(2, "flush", t=20.0),
                                            node_op(3, "ready", t=39.0)])
    assert failed(back) == {}
    stale = evidence([vm("web")], runs, ops=[define(), node_op(2, "flush", t=1.0, name="hv2"),
                                             node_op(3, "ready", t=2.0, name="hv2")])
    assert "no-unexplained-stop" in failed(stale)


def test_the_hostwatch_recorder_turns_a_live_migration_into_two_runs() -> None:
    lines = [{"t": 1.0, "kind": "event", "node": "hv1", "vm": "web", "event": "started",
              "detail": "booted"},
             {"t": 5.0, "kind": "event", "node": "hv2", "vm": "web", "event": "started",
              "detail": "migrated"},
             {"t": 5.4, "kind": "event", "node": "hv1", "vm": "web", "event": "suspended",
              "detail": "migrated"},
             {"t": 5.5, "kind": "event", "node": "hv2", "vm": "web", "event": "resumed",
              "detail": "migrated"},
             {"t": 9.0, "kind": "unreachable", "node": "hv2", "error": "powered off"}]
    runs = HostwatchRecorder(lambda: lines).runs()
    assert runs == [Run("web", "hv1", 1.0, 5.4), Run("web", "hv2", 5.5, 9.0)]
    assert [r.cause for r in runs] == ["stopped", "died"]
    ev = evidence([], runs, ops=[define(), op(2, "migrate", t=4.0)], deaths={"hv2": [9.0]})
    assert "one-runner" not in failed(ev) and "no-unexplained-stop" not in failed(ev)


def test_a_power_off_ends_the_host_s_runs_when_it_took_not_when_hostwatch_noticed() -> None:
    # Seen on QEMU (seed 8): hostwatch found the fenced host's libvirtd gone 0.9 s after
    # the fence agent had powered it off and the primary had started the guest elsewhere.
    lines = [{"t": 1.0, "kind": "event", "node": "hv2", "vm": "web", "event": "started",
              "detail": "booted"},
             {"t": 7.5, "kind": "event", "node": "hv3", "vm": "web", "event": "started",
              "detail": "booted"},
             {"t": 8.1, "kind": "unreachable", "node": "hv2", "error": "socket closed"}]
    late = HostwatchRecorder(lambda: lines).runs()
    assert "one-runner" in failed(evidence([], late, ops=[define()]))
    runs = HostwatchRecorder(lambda: lines, deaths=lambda: {"hv2": [7.2]}).runs()
    assert runs == [Run("web", "hv2", 1.0, 7.2), Run("web", "hv3", 7.5, math.inf)]
    assert "one-runner" not in failed(evidence([], runs, ops=[define()]))


def test_a_domain_running_under_a_name_herd_no_longer_has_fails() -> None:
    ev = evidence([vm("web-r1", state="stopped")], [Run("web", "hv1", 1.0, math.inf)],
                  ops=[define(), op(2, "rename", new_name="web-r1")])
    assert "no such VM" in failed(ev)["desired-running"].violations[0].message


def test_an_answer_showing_the_primary_s_stop_is_what_must_stay() -> None:
    stopped = vm("web-r1", state="stopped", generation=2, reason="no valid target")
    ops = [replace(define(), answer={"generation": 1, "state": "running"}),
           replace(op(2, "rename", new_name="web-r1"), answer={"generation": 2,
                                                             "state": "stopped"})]
    assert failed(evidence([stopped], [], ops=ops)) == {}
    running = evidence([vm("web-r1", generation=2)], [Run("web-r1", "hv1", 1.0, math.inf)],
                       ops=ops)
    assert "state is 'running'" in failed(running)["writes-kept"].violations[0].message
