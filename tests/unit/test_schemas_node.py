"""Unit tests of `schemas.node`: Node object, node status, cluster config, load_object."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from schemas import (
    ClusterConfigSchema,
    NodeSchema,
    NodeStatusSchema,
    ObjectSchema,
    load_object,
)


def errors(schema: Schema, doc: Any) -> Any:
    with pytest.raises(ValidationError) as info:
        schema.load(doc)
    return info.value.messages


NODE: dict[str, Any] = {
    "apiVersion": "herd/v1",
    "kind": "Node",
    "metadata": {"name": "hv1", "labels": {"rack": "r1"}, "resourceVersion": "3", "generation": 2},
    "spec": {"domainState": "ready", "coordinator": True, "fence": "none"},
}


def test_node_round_trips_and_defaults() -> None:
    loaded = NodeSchema().load(copy.deepcopy(NODE))
    assert loaded == NODE
    assert NodeSchema().load(NodeSchema().dump(loaded)) == loaded
    minimal = NodeSchema().load(
        {"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": "hv2"}}
    )
    assert minimal["spec"] == {"domainState": "flushed", "coordinator": False, "fence": "auto"}
    assert minimal["metadata"] == {"name": "hv2", "labels": {}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"domainState": "flushing"}, {"domainState": [
            "Invalid domainState 'flushing'; must be one of: ready, flushed."]}),
        ({"fence": "ipmi"}, {"fence": ["Invalid fence 'ipmi'; must be one of: auto, none, self."]}),
        ({"coordinator": 1}, {"coordinator": ["Not a valid boolean: expected true or false."]}),
        ({"drain": True}, {"drain": [
            "Unknown field; allowed fields: coordinator, domainState, fence."]}),
    ],
)
def test_node_spec_fields_are_validated(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    doc = copy.deepcopy(NODE)
    doc["spec"].update(spec)
    assert errors(NodeSchema(), doc) == {"spec": expected}


STATUS = {
    "daemonState": "run",
    "domainState": "unflushing",
    "resources": {"memTotal": 4096, "memFree": 2048, "memUsed": 2048, "memAlloc": 1024,
                  "memProv": 1536, "vcpuTotal": 8, "vcpuAlloc": 3, "load": 0.42, "vms": 2},
    "heartbeat": 1714564800.5,
    "version": "0.1.0",
    "address": "10.0.0.1:16509",
    "libvirtUri": "qemu:///system?socket=/run/n1/libvirt-sock",
    "migrationUri": "qemu+tcp://10.0.0.1/system",
    "networks": {"web": {"up": True, "reason": "", "bridge": "hbr1001"},
                 "db": {"up": False, "reason": "no VXLAN support", "bridge": None}},
    "pools": {"local": {"usable": True, "reason": "", "capacity": 10, "allocation": 4,
                        "available": 6}},
    "liveMigration": True,
    "endpoint": "http://10.0.0.11:9310",
    "watchdog": {"timeout": 60.0, "fresh": 7.0},
}


def test_node_status_round_trips_and_defaults() -> None:
    loaded = NodeStatusSchema().load(copy.deepcopy(STATUS))
    assert loaded == STATUS
    assert NodeStatusSchema().dump(loaded) == STATUS
    assert NodeStatusSchema().load({}) == {
        "daemonState": "init", "domainState": "flushed",
        "resources": {"memTotal": 0, "memFree": 0, "memUsed": 0, "memAlloc": 0, "memProv": 0,
                      "vcpuTotal": 0, "vcpuAlloc": 0, "load": 0.0, "vms": 0},
        "heartbeat": 0.0, "version": "", "address": None, "libvirtUri": None,
        "migrationUri": None, "networks": {}, "pools": {}, "liveMigration": False,
        "endpoint": None, "watchdog": None,
    }


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"daemonState": "running"}, {"daemonState": [
            "Invalid daemonState 'running'; must be one of: init, run, shutdown, stop, dead, "
            "fenced."]}),
        ({"domainState": "gone"}, {"domainState": [
            "Invalid domainState 'gone'; must be one of: ready, flushing, flushed, unflushing."]}),
        ({"resources": {"memFree": -1, "load": -0.5, "vms": 1.5, "cpu": 1}}, {"resources": {
            "memFree": ["Must be 0 or more."],
            "load": ["Must be 0 or more."],
            "vms": ["Not a valid integer: expected a whole number."],
            "cpu": ["Unknown field; allowed fields: load, memAlloc, memFree, memProv, memTotal, "
                    "memUsed, vcpuAlloc, vcpuTotal, vms."]}}),
        ({"address": "a b"}, {"address": [
            "Not a host address: 'a b' (a host name or IP address, optionally :port)."]}),
        ({"libvirtUri": "/var/run/sock"}, {"libvirtUri": [
            "Not a libvirt URI: '/var/run/sock' (example: qemu:///system)."]}),
        ({"heartbeat": None}, {"heartbeat": ["Field may not be null."]}),
        ({"watchdog": {"timeout": 0.5, "fresh": 7}}, {"watchdog": {"timeout": [
            "Must be between 1 and 3600 seconds."]}}),
        ({"watchdog": {"timeout": 60}}, {"watchdog": {"fresh": [
            "Missing data for required field."]}}),
    ],
)
def test_node_status_fields_are_validated(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert errors(NodeStatusSchema(), {**STATUS, **patch}) == expected


def test_cluster_config_defaults_and_validation() -> None:
    assert ClusterConfigSchema().load({}) == {
        "selector": "mem", "shutdownTimeout": 180, "fenceTimeout": 8.0, "maintenance": False,
        "shutdownPolicy": "migrate", "selfFenceTimeout": 60.0,
    }
    assert errors(
        ClusterConfigSchema(),
        {"selector": "none", "shutdownTimeout": 86401, "fenceTimeout": 0, "maintenance": "no",
         "selfFenceTimeout": 1},
    ) == {
        "selfFenceTimeout": ["Must be between 2 and 3600 seconds."],
        "selector": ["Invalid selector 'none'; must be one of: mem, memprov, load, vcpus, vms."],
        "shutdownTimeout": ["Must be between 1 and 86400 seconds."],
        "fenceTimeout": ["Must be more than 0 seconds."],
        "maintenance": ["Not a valid boolean: expected true or false."],
    }


VM = {
    "apiVersion": "herd/v1",
    "kind": "VM",
    "metadata": {"name": "web1"},
    "spec": {"xml": "<domain type='test'/>"},
}


def test_load_object_dispatches_on_kind() -> None:
    vm = load_object(VM)
    assert vm["kind"] == "VM"
    assert vm["spec"]["xml"] == "<domain type='test'><name>web1</name></domain>"
    assert load_object(NODE) == NODE
    schema = ObjectSchema()
    assert schema.load(schema.dump(vm)) == vm


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({**VM, "kind": "Pod"},
         {"kind": ["Unknown kind 'Pod'; expected one of: VM, Node, Network, Pool, Volume, "
                   "Rule."]}),
        ({**VM, "kind": ["VM"]},
         {"kind": ["Unknown kind ['VM']; expected one of: VM, Node, Network, Pool, Volume, "
                   "Rule."]}),
        ({"metadata": {}}, {"apiVersion": ["Missing data for required field."],
                            "kind": ["Missing data for required field."]}),
        ({**VM, "apiVersion": "v1"}, {"apiVersion": [
            "Unsupported apiVersion 'v1'; expected 'herd/v1'."]}),
        ("kind: VM", {"_schema": ["Invalid input type: expected an object (a mapping)."]}),
        ({**NODE, "spec": {"domainState": "on"}}, {"spec": {"domainState": [
            "Invalid domainState 'on'; must be one of: ready, flushed."]}}),
    ],
)
def test_load_object_errors(doc: Any, expected: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        load_object(doc)
    assert info.value.messages == expected
