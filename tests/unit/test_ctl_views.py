"""What `vm info`, `node list` and errors look like (pure functions, no I/O)."""

from __future__ import annotations

from typing import Any

from ctl.client import ApiError
from ctl.errors import field_messages, flatten, from_api
from ctl.output import table
from ctl.views import NODE_COLUMNS, VM_COLUMNS, ago, cluster_status, node_fence, vm_info


def a_vm(**meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web1", "generation": 3},
            "spec": {"state": "running", "meta": {"limits": [], "selector": "none",
                                                  "autorestart": False,
                                                  "migrationMethod": "any", **meta}},
            "placement": {"node": "hv2", "lastNode": "hv1", "reason": "flush of hv1"},
            "status": {"state": "running", "node": "hv2", "reason": "running", "since": 90.0,
                       "observedGeneration": 2,
                       "conditions": [{"type": "RestartRequired", "status": "True",
                                       "reason": "XMLChanged", "message": "at next start"}]},
            "owner": "hv2"}


def test_vm_info_says_any_and_the_default_selector_when_unset() -> None:
    text = vm_info(a_vm(), now=100.0)
    assert "State:            running (since 10s ago)" in text
    assert "Previous node:    hv1" in text
    assert "Limits:           any" in text
    assert "Selector:         default (mem)" in text
    assert "Shutdown timeout: cluster default" in text
    assert "RestartRequired=True XMLChanged: at next start" in text
    assert "generation 3, node has seen 2" in text


def test_vm_info_shows_limits_and_selector_when_set() -> None:
    text = vm_info(a_vm(limits=["hv1", "hv2"], selector="load", autorestart=True))
    assert "hv1,hv2" in text and "Selector:         load" in text
    assert "Autorestart:      yes" in text


def test_vm_rows_and_wide_rows() -> None:
    assert table([a_vm()], VM_COLUMNS).splitlines()[1].split() == [
        "web1", "running", "running", "hv2", "running"]
    wide = table([a_vm()], VM_COLUMNS, wide=True).splitlines()
    assert wide[0].split()[:5] == ["NAME", "STATE", "DESIRED", "NODE", "LAST"]
    assert "any" in wide[1] and "hv1" in wide[1]


def test_a_node_row_shows_a_pending_domain_state_change() -> None:
    node = {"metadata": {"name": "hv1"}, "spec": {"domainState": "flushed"},
            "status": {"daemonState": "run", "domainState": "flushing",
                       "resources": {"memFree": 2048, "memTotal": 4096, "vms": 2,
                                     "vcpuAlloc": 3, "vcpuTotal": 8}},
            "alive": True, "primary": True}
    row = table([node], NODE_COLUMNS).splitlines()[1].split()
    assert row == ["hv1", "run", "flushing→flushed", "yes", "primary", "2", "2.0G/4.0G", "3/8"]


def test_cluster_status_counts() -> None:
    text = cluster_status({"primary": "hv1", "nodes": {"total": 3, "alive": 2,
                                                       "daemonState": {"run": 2, "dead": 1}},
                           "vms": {"total": 1, "state": {"running": 1}},
                           "config": {"maintenance": True}})
    assert "Primary:     hv1" in text and "1 dead, 2 run" in text
    assert "Maintenance: on: fencing and recovery paused" in text


def test_ago() -> None:
    assert ago(None) == "-" and ago(40.0, now=100.0) == "60s ago"
    assert ago(100.0, now=100.0 + 600) == "10m ago"


def test_server_field_errors_become_detail_lines() -> None:
    details = {"objects": {"1": {"spec": {"meta": {"selector": ["Invalid selector."]}}}}}
    assert field_messages(details) == ["objects[1].spec.meta.selector: Invalid selector."]
    assert field_messages({"name": "web1", "state": "running"}) == []  # not field messages
    failure = from_api(ApiError(404, "not_found", message="VM 'x' does not exist"))
    assert failure.message == "VM 'x' does not exist [404 not_found]" and failure.exit_code == 1


def test_flatten_names_list_items_by_index() -> None:
    assert flatten({"spec": {"meta": {"limits": {1: ["Bad name."]}}}}) == [
        ("spec.meta.limits[1]", "Bad name.")]
    assert flatten({"_schema": ["Whole."]}) == [("", "Whole.")]


def test_node_fence_says_whether_a_self_fencing_node_can_be_recovered() -> None:
    assert node_fence({"spec": {"fence": "auto"}}) == "auto"
    armed = {"spec": {"fence": "self"}, "status": {"watchdog": {"timeout": 60.0, "fresh": 7}}}
    assert node_fence(armed) == "self (watchdog armed, 60 s)"
    bare = {"spec": {"fence": "self"}, "status": {"watchdog": None}}
    assert node_fence(bare) == "self (NO watchdog armed: not recoverable)"
