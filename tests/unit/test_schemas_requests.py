"""Unit tests of `schemas.requests`: API request bodies, query strings and helpers."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from schemas import (
    ApplyRequest,
    DeleteQuery,
    ErrorBody,
    NodeDomainStateRequest,
    VMDefineRequest,
    VMListQuery,
    VMMetaRequest,
    VMModifyRequest,
    VMNodeRequest,
    VMRenameRequest,
    VMSchema,
    VMStateRequest,
    compile_limit,
    define_request_to_vm,
    merge_patch,
    meta_patch,
    vm_spec_patch,
)

NAMED = "<domain type='test'><name>web1</name><memory unit='MiB'>64</memory></domain>"
UNNAMED = "<domain type='test'><memory unit='MiB'>64</memory></domain>"
MODIFY_FIELDS = (
    "xml, node, limits, selector, autorestart, migration_method, migration_max_downtime, "
    "shutdown_timeout, state, max_restart, max_relocate"
)
META_FIELDS = ("limits, selector, autorestart, migration_method, migration_max_downtime, "
               "shutdown_timeout, max_restart, max_relocate")


def errors(schema: Schema, doc: Any) -> Any:
    with pytest.raises(ValidationError) as info:
        schema.load(doc)
    return info.value.messages


def test_define_takes_the_name_from_the_xml() -> None:
    data = VMDefineRequest().load({"xml": NAMED, "limits": "hv1, hv2", "selector": "load",
                                   "autorestart": True, "migration_method": "shutdown",
                                   "shutdown_timeout": 60, "state": "running", "node": "hv1"})
    vm = define_request_to_vm(data)
    assert vm == {
        "apiVersion": "herd/v1",
        "kind": "VM",
        "metadata": {"name": "web1", "labels": {}},
        "spec": {
            "state": "running", "stopMode": "graceful", "restartRequest": 0, "node": "hv1",
            "meta": {"limits": ["hv1", "hv2"], "selector": "load", "autorestart": True,
                     "migrationMethod": "shutdown"},
            "shutdownTimeout": 60,
            "xml": NAMED,
        },
    }
    assert VMSchema().load(VMSchema().dump(vm)) == vm


def test_define_with_a_name_fills_in_the_xml() -> None:
    vm = define_request_to_vm(VMDefineRequest().load({"xml": UNNAMED, "name": "db1"}))
    assert vm["metadata"]["name"] == "db1"
    assert vm["spec"]["xml"] == (
        "<domain type='test'><name>db1</name><memory unit='MiB'>64</memory></domain>"
    )
    assert vm["spec"]["state"] == "stopped"
    assert vm["spec"]["meta"]["limits"] == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"xml": UNNAMED}, {"name": [
            "No VM name given: set name, or a <name> in the domain XML."]}),
        ({"xml": NAMED, "name": "web2"}, {"xml": [
            "Domain name 'web1' does not match the VM name 'web2'."]}),
        ({"xml": NAMED.replace("web1", "Web_1")}, {"xml": [
            "The domain's <name> cannot be used as a VM name: Name 'Web_1' must be lowercase; "
            "use 1-63 characters: lowercase letters a-z, digits 0-9, '-' and '.', starting and "
            "ending with a letter or a digit."]}),
        ({"xml": "<domain/>"}, {"xml": [
            "The <domain> element needs a type attribute (e.g. type='kvm')."]}),
        ({}, {"xml": ["Missing data for required field."]}),
        ({"xml": NAMED, "name": "Web1"}, {"name": [
            "Name 'Web1' must be lowercase; use 1-63 characters: lowercase letters a-z, "
            "digits 0-9, '-' and '.', starting and ending with a letter or a digit."]}),
        ({"xml": NAMED, "labels": {}}, {"labels": [
            "Unknown field; allowed fields: autorestart, limits, max_relocate, max_restart, "
            "migration_max_downtime, migration_method, name, node, selector, "
            "shutdown_timeout, state, xml."]}),
        ({"xml": NAMED, "state": "started"}, {"state": [
            "Invalid state 'started'; must be one of: running, stopped, disabled."]}),
        ({"xml": NAMED, "migration_method": "copy"}, {"migration_method": [
            "Invalid migration_method 'copy'; must be one of: live, shutdown, any."]}),
        ({"xml": NAMED, "selector": "random"}, {"selector": [
            "Invalid selector 'random'; must be one of: mem, memprov, load, vcpus, vms, none."]}),
        ({"xml": NAMED, "shutdown_timeout": 0}, {"shutdown_timeout": [
            "Must be between 1 and 86400 seconds."]}),
        ({"xml": NAMED, "migration_max_downtime": 0}, {"migration_max_downtime": [
            "Must be between 1 and 60000 milliseconds."]}),
        ({"xml": NAMED, "migration_max_downtime": "50"}, {"migration_max_downtime": [
            "Not a valid integer: expected a whole number."]}),
        ({"xml": NAMED, "limits": "hv1,HV2"}, {"limits": {1: [
            "Name 'HV2' must be lowercase; use 1-63 characters: lowercase letters a-z, "
            "digits 0-9, '-' and '.', starting and ending with a letter or a digit."]}}),
        ({"xml": NAMED, "limits": "hv1,hv1"}, {"limits": [
            "Duplicate name 'hv1': each name may appear once."]}),
    ],
)
def test_define_errors(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert errors(VMDefineRequest(), body) == expected


def test_define_request_to_vm_checks_names_itself() -> None:
    with pytest.raises(ValidationError) as info:
        define_request_to_vm({"xml": UNNAMED})
    assert info.value.messages == {
        "name": ["No VM name given: set name, or a <name> in the domain XML."]
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("hv1,hv2", ["hv1", "hv2"]), (" hv1 , hv2 ,", ["hv1", "hv2"]), ("", []),
     (["hv3"], ["hv3"]), ([], [])],
)
def test_limits_take_a_list_or_a_comma_separated_string(value: Any, expected: list[str]) -> None:
    assert VMMetaRequest().load({"limits": value}) == {"limits": expected}


def test_modify_requires_at_least_one_field() -> None:
    message = f"No field given; one of {MODIFY_FIELDS} is required."
    assert errors(VMModifyRequest(), {}) == {"_schema": [message]}
    assert errors(VMModifyRequest(), {"name": "web1"}) == {"_schema": [message]}
    assert VMModifyRequest().load({"autorestart": False}) == {"autorestart": False}


def test_modify_checks_xml_and_builds_a_spec_patch() -> None:
    data = VMModifyRequest().load({"xml": UNNAMED, "selector": "vms", "node": None,
                                   "shutdown_timeout": None})
    assert vm_spec_patch(data, vm_name="web9") == {
        "xml": "<domain type='test'><name>web9</name><memory unit='MiB'>64</memory></domain>",
        "node": None,
        "shutdownTimeout": None,
        "meta": {"selector": "vms"},
    }
    assert vm_spec_patch({"state": "running"}, vm_name="web9") == {"state": "running"}
    with pytest.raises(ValidationError) as info:
        vm_spec_patch(VMModifyRequest().load({"xml": NAMED}), vm_name="web9")
    assert info.value.messages == {
        "xml": ["Domain name 'web1' does not match the VM name 'web9'."]
    }
    with pytest.raises(ValidationError) as info:
        vm_spec_patch({"name": "other", "state": "running"}, vm_name="web9")
    assert info.value.messages == {
        "name": ["Name 'other' differs from the VM 'web9'; use rename to change a VM's name."]
    }
    assert errors(VMModifyRequest(), {"xml": "<vm/>"}) == {
        "xml": ["Root element must be <domain>, not <vm>."]
    }
    assert errors(VMModifyRequest(), {"xml": NAMED, "name": "web2"}) == {
        "xml": ["Domain name 'web1' does not match the VM name 'web2'."]
    }


def test_meta_requires_one_field_and_patches_only_given_keys() -> None:
    message = f"No field given; one of {META_FIELDS} is required."
    assert errors(VMMetaRequest(), {}) == {"_schema": [message]}
    assert errors(VMMetaRequest(), {"xml": NAMED}) == {
        "xml": ["Unknown field; allowed fields: autorestart, limits, max_relocate, "
                "max_restart, migration_max_downtime, migration_method, selector, "
                "shutdown_timeout."],
        "_schema": [message],
    }
    data = VMMetaRequest().load({"limits": "hv1", "migration_method": "live",
                                 "shutdown_timeout": None})
    assert meta_patch(data) == {
        "meta": {"limits": ["hv1"], "migrationMethod": "live"}, "shutdownTimeout": None,
    }
    assert meta_patch(VMMetaRequest().load({"autorestart": True})) == {
        "meta": {"autorestart": True}
    }
    assert meta_patch(VMMetaRequest().load({"shutdown_timeout": 30})) == {"shutdownTimeout": 30}


def test_merge_patch_merges_mappings_and_replaces_the_rest() -> None:
    spec = {"state": "running", "meta": {"limits": ["a"], "selector": "mem"}, "node": "hv1"}
    patch = {"meta": {"limits": ["b", "c"]}, "node": None}
    assert merge_patch(spec, patch) == {
        "state": "running", "meta": {"limits": ["b", "c"], "selector": "mem"}, "node": None,
    }
    assert spec["meta"] == {"limits": ["a"], "selector": "mem"}


def test_state_request() -> None:
    assert VMStateRequest().load({"state": "restart"}) == {
        "state": "restart", "wait": False, "timeout": None,
    }
    assert VMStateRequest().load({"state": "stop", "wait": True, "timeout": 3600}) == {
        "state": "stop", "wait": True, "timeout": 3600.0,
    }
    assert errors(VMStateRequest(), {"state": "running", "wait": "yes", "timeout": 3601}) == {
        "state": ["Invalid state 'running'; must be one of: start, shutdown, stop, restart, "
                  "disable."],
        "wait": ["Not a valid boolean: expected true or false."],
        "timeout": ["Must be more than 0 and at most 3600 seconds."],
    }
    assert errors(VMStateRequest(), {}) == {"state": ["Missing data for required field."]}


def test_node_request() -> None:
    assert VMNodeRequest().load({"action": "migrate", "node": "hv2", "wait": True}) == {
        "action": "migrate", "node": "hv2", "force": False, "wait": True, "timeout": None,
    }
    assert VMNodeRequest().load({"action": "unmigrate"})["node"] is None
    assert errors(VMNodeRequest(), {"action": "unmigrate", "node": "hv2"}) == {
        "node": ["A node cannot be given with action 'unmigrate': the VM returns to its last "
                 "node."]
    }
    assert errors(VMNodeRequest(), {"action": "teleport", "timeout": 0}) == {
        "action": ["Invalid action 'teleport'; must be one of: migrate, move, unmigrate."],
        "timeout": ["Must be more than 0 and at most 3600 seconds."],
    }


def test_rename_and_domain_state_requests() -> None:
    assert VMRenameRequest().load({"new_name": "web2"}) == {"new_name": "web2"}
    assert errors(VMRenameRequest(), {"new_name": "web/2"}) == {
        "new_name": ["Name 'web/2' must not contain '/': a name is a single path component."]
    }
    assert errors(VMRenameRequest(), {"name": "web2"}) == {
        "new_name": ["Missing data for required field."],
        "name": ["Unknown field; allowed fields: new_name."],
    }
    assert NodeDomainStateRequest().load({"state": "flush", "wait": True}) == {
        "state": "flush", "wait": True, "timeout": None,
    }
    assert errors(NodeDomainStateRequest(), {"state": "flushed"}) == {
        "state": ["Invalid state 'flushed'; must be one of: flush, ready."]
    }


VM = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "web1"},
      "spec": {"xml": NAMED, "state": "running"}}
NODE = {"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": "hv1"},
        "spec": {"domainState": "ready"}}


def test_apply_loads_every_object() -> None:
    data = ApplyRequest().load({"objects": [VM, NODE], "dry_run": True})
    assert data["dry_run"] is True
    assert [o["kind"] for o in data["objects"]] == ["VM", "Node"]
    assert data["objects"][0]["spec"]["meta"]["selector"] == "none"
    assert data["objects"][1]["spec"]["fence"] == "auto"
    assert ApplyRequest().load({"objects": [NODE]})["dry_run"] is False


def test_apply_errors_are_keyed_by_index() -> None:
    bad_vm = {**VM, "spec": {"xml": NAMED, "state": "up"}}
    assert errors(ApplyRequest(), {"objects": [VM, NODE, {**NODE, "kind": "Pod"}, bad_vm]}) == {
        "objects": {
            2: {"kind": ["Unknown kind 'Pod'; expected one of: VM, Node, Network, Pool, "
                         "Volume, Rule."]},
            3: {"spec": {"state": ["Invalid state 'up'; must be one of: running, stopped, "
                                   "disabled."]}},
        }
    }
    assert errors(ApplyRequest(), {"objects": [VM, NODE, VM]}) == {
        "objects": {2: {"metadata": {"name": [
            "VM 'web1' is also objects[0]; give each object once."]}}}
    }
    assert errors(ApplyRequest(), {"objects": []}) == {
        "objects": ["Give between 1 and 10000 objects."]
    }
    assert errors(ApplyRequest(), {"objects": VM}) == {"objects": ["Not a valid list."]}


def test_list_query_accepts_text() -> None:
    assert VMListQuery().load({}) == {"node": None, "state": None, "limit": None, "xml": False}
    assert VMListQuery().load({"node": "hv1", "state": "shutting-down", "limit": "^web[0-9]+$",
                               "xml": "TRUE"}) == {
        "node": "hv1", "state": "shutting-down", "limit": "^web[0-9]+$", "xml": True,
    }
    assert errors(VMListQuery(), {"limit": "web(", "state": "up", "xml": "maybe"}) == {
        "limit": ["Not a valid regular expression (RE2 syntax: no backreferences or "
                  "lookaround): missing ): web(."],
        "state": ["Invalid state 'up'; must be one of: stopped, starting, running, "
                  "shutting-down, stopping, restarting, migrating, failed, disabled, unknown."],
        "xml": ["Not a valid boolean: expected true or false."],
    }
    assert errors(VMListQuery(), {"nodes": "hv1"}) == {
        "nodes": ["Unknown field; allowed fields: limit, node, state, xml."]
    }


def test_compile_limit_searches_names() -> None:
    assert compile_limit("eb").search("web1")
    assert compile_limit("^db[0-9]$").search("db1")
    assert not compile_limit("^db[0-9]$").search("db10")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("Yes", True), ("false", False), ("0", False), ("off", False)],
)
def test_delete_query_accepts_booleans_as_text(text: str, expected: bool) -> None:
    assert DeleteQuery().load({"force": text}) == {"force": expected}


def test_delete_query_defaults_and_errors() -> None:
    assert DeleteQuery().load({}) == {"force": False}
    assert errors(DeleteQuery(), {"force": "2"}) == {
        "force": ["Not a valid boolean: expected true or false."]
    }


def test_error_body() -> None:
    body = {"error": {"code": "conflict", "message": "stale resourceVersion",
                      "details": {"resourceVersion": ["expected 4"]}}}
    assert ErrorBody().load(body) == body
    assert ErrorBody().load({"error": {"code": "x", "message": ""}})["error"]["details"] == {}
    assert errors(ErrorBody(), {"error": {"message": "m", "extra": 1}}) == {"error": {
        "code": ["Missing data for required field."],
        "extra": ["Unknown field; allowed fields: code, details, message."],
    }}
