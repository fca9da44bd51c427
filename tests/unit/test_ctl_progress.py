"""The tracker behind `node flush|ready --wait`: which VMs a flush or ready concerns, the
progress lines, when it is done, and the summary (fed with watch events, no I/O)."""

from __future__ import annotations

from typing import Any

from ctl.progress import Tracker, settled


def vm(name: str, *, want: str = "running", state: str = "running", node: str | None = "hv1",
       placed: str | None = "hv1", last: str | None = None, pending: bool = False,
       home: str | None = None, reason: str = "") -> dict[str, Any]:
    return {"type": "MODIFIED", "kind": "VM", "name": name, "resourceVersion": "1",
            "object": {"metadata": {"name": name}, "spec": {"state": want},
                       "placement": {"node": placed, "lastNode": last, "reason": reason,
                                     "autorestartPending": pending, "home": home},
                       "status": {"state": state, "node": node}}}


def node(name: str, state: str) -> dict[str, Any]:
    return {"type": "MODIFIED", "kind": "Node", "name": name, "resourceVersion": "1",
            "object": {"metadata": {"name": name}, "status": {"domainState": state}}}


def feed(tracker: Tracker, *events: dict[str, Any]) -> list[str]:
    return [line for e in events for line in tracker.feed(e)]


def test_a_flush_concerns_the_vms_wanted_running_on_the_node() -> None:
    t = Tracker("hv1", "flush")
    feed(t, vm("a"), vm("b", node="hv2", placed="hv2"), vm("off", want="stopped",
                                                            state="stopped", node=None))
    assert t.concerned == {"a"}


def test_a_flush_is_done_when_the_node_is_flushed_and_its_vms_settled() -> None:
    t = Tracker("hv1", "flush")
    lines = feed(t, vm("a"), vm("p"), node("hv1", "ready"), node("hv1", "flushing"),
                 vm("a", placed="hv2"), vm("a", state="migrating", node=None, placed="hv2"),
                 vm("p", want="stopped", state="stopped", node=None,
                    reason="no valid target"),
                 node("hv1", "flushed"))
    assert not t.done  # a still moves
    assert "node/hv1: flushing" in lines and "  vm/a: migrating → hv2" in lines
    feed(t, vm("a", state="starting", node="hv2", placed="hv2"))
    assert not t.done
    assert feed(t, vm("a", node="hv2", placed="hv2")) == ["  vm/a: running on hv2"]
    assert t.done
    summary = t.summary()
    assert summary["moved"] == [{"name": "a", "from": "hv1", "to": "hv2"}]
    assert summary["stopped"] == [{"name": "p", "state": "stopped", "reason": "no valid target"}]


def test_ready_concerns_the_vms_that_remember_the_node_or_wait_to_autorestart_there() -> None:
    t = Tracker("hv1", "ready")
    feed(t, vm("back", node="hv2", placed="hv2", last="hv1"),
         vm("auto", want="stopped", state="stopped", node=None, pending=True, home="hv1"),
         vm("other", node="hv3", placed="hv3"), node("hv1", "flushed"))
    assert t.concerned == {"back", "auto"}
    feed(t, node("hv1", "ready"), vm("auto", state="starting", node="hv1"))
    assert not t.done
    feed(t, vm("auto"), vm("back", last=None))
    assert t.done
    assert t.summary()["started"] == [{"name": "auto", "node": "hv1"}]
    assert t.summary()["moved"] == [{"name": "back", "from": "hv2", "to": "hv1"}]


def test_an_unchanged_vm_prints_no_line_and_other_nodes_are_ignored() -> None:
    t = Tracker("hv1", "flush")
    assert feed(t, vm("a")) == ["  vm/a: running on hv1"]
    assert feed(t, vm("a")) == []
    assert feed(t, node("hv2", "flushed")) == []
    assert feed(t, node("hv1", "ready")) == []  # the first sight of the node is no change


def test_settled() -> None:
    running_where_placed = vm("a")["object"]
    moving = vm("a", placed="hv2")["object"]
    off = vm("a", want="stopped", state="stopped", node=None)["object"]
    unplaceable = vm("a", state="stopped", node=None, placed=None)["object"]
    assert settled(running_where_placed) and settled(off) and settled(unplaceable)
    assert not settled(moving)
    assert not settled(vm("a", state="shutting-down")["object"])
