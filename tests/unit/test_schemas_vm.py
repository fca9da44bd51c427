"""Unit tests of `schemas.vm`: the VM object, its placement and its status."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from marshmallow import Schema, ValidationError

from schemas import (
    PlacementSchema,
    VMSchema,
    VMStatusSchema,
)
from vocabulary import DesiredState, VMState

NOT_INT = "Not a valid integer: expected a whole number."
XML = "<domain type='test'>\n  <name>web1</name>\n  <memory unit='MiB'>64</memory>\n</domain>"


def vm_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "herd/v1",
        "kind": "VM",
        "metadata": {"name": "web1"},
        "spec": {"xml": XML, **spec},
    }


def errors(schema: Schema, doc: Any) -> Any:
    with pytest.raises(ValidationError) as info:
        schema.load(doc)
    return info.value.messages


FULL = {
    "apiVersion": "herd/v1",
    "kind": "VM",
    "metadata": {
        "name": "web1",
        "labels": {"tier": "web", "app.kubernetes_io": ""},
        "generation": 3,
        "resourceVersion": "17",
        "creationTimestamp": "2024-05-01T12:00:00Z",
    },
    "spec": {
        "state": "running",
        "stopMode": "force",
        "restartRequest": 2,
        "node": "hv1",
        "meta": {
            "limits": ["hv1", "hv2"],
            "selector": "memprov",
            "autorestart": True,
            "migrationMethod": "live",
        },
        "shutdownTimeout": 120,
        "xml": XML,
    },
}


def test_full_vm_round_trips_load_dump_load() -> None:
    loaded = VMSchema().load(copy.deepcopy(FULL))
    assert loaded == FULL
    dumped = VMSchema().dump(loaded)
    assert dumped == FULL
    assert VMSchema().load(json.loads(json.dumps(dumped))) == loaded
    assert VMSchema().load(yaml.safe_load(yaml.safe_dump(dumped))) == loaded


def test_defaults_are_filled_in_and_the_name_inserted() -> None:
    doc = vm_doc()
    doc["spec"]["xml"] = "<domain type='test'><memory>1</memory></domain>"
    loaded = VMSchema().load(doc)
    assert loaded == {
        "apiVersion": "herd/v1",
        "kind": "VM",
        "metadata": {"name": "web1", "labels": {}},
        "spec": {
            "state": "stopped",
            "stopMode": "graceful",
            "restartRequest": 0,
            "node": None,
            "meta": {"limits": [], "selector": "none", "autorestart": False,
                     "migrationMethod": "any"},
            "shutdownTimeout": None,
            "xml": "<domain type='test'><name>web1</name><memory>1</memory></domain>",
        },
    }
    assert loaded["spec"]["state"] == DesiredState.STOPPED
    assert VMSchema().load(VMSchema().dump(loaded)) == loaded


def test_unknown_fields_are_rejected_and_named_at_every_level() -> None:
    doc = vm_doc(colour="red", meta={"limit": ["hv1"]})
    doc["status"] = {}
    doc["metadata"]["owner"] = "x"
    assert errors(VMSchema(), doc) == {
        "status": ["Unknown field; allowed fields: apiVersion, kind, metadata, spec."],
        "metadata": {"owner": [
            "Unknown field; allowed fields: creationTimestamp, generation, labels, name, "
            "resourceVersion."
        ]},
        "spec": {
            "colour": [
                "Unknown field; allowed fields: meta, node, restartRequest, shutdownTimeout, "
                "state, stopMode, xml."
            ],
            "meta": {"limit": [
                "Unknown field; allowed fields: autorestart, limits, maxRelocate, maxRestart, "
                "migrationMaxDowntime, migrationMethod, selector."
            ]},
        },
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"state": "up"},
         {"state": ["Invalid state 'up'; must be one of: running, stopped, disabled."]}),
        ({"stopMode": "kill"},
         {"stopMode": ["Invalid stopMode 'kill'; must be one of: graceful, force."]}),
        ({"meta": {"selector": "cpu"}}, {"meta": {"selector": [
            "Invalid selector 'cpu'; must be one of: mem, memprov, load, vcpus, vms, none."]}}),
        ({"meta": {"migrationMethod": "teleport"}}, {"meta": {"migrationMethod": [
            "Invalid migrationMethod 'teleport'; must be one of: live, shutdown, any."]}}),
    ],
)
def test_every_enum_field_of_the_spec_rejects_a_bad_value(
    spec: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert errors(VMSchema(), vm_doc(**spec)) == {"spec": expected}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"restartRequest": -1}, {"restartRequest": ["Must be 0 or more."]}),
        ({"restartRequest": 1.5}, {"restartRequest": [NOT_INT]}),
        ({"restartRequest": True}, {"restartRequest": [NOT_INT]}),
        ({"shutdownTimeout": 0}, {"shutdownTimeout": ["Must be between 1 and 86400 seconds."]}),
        ({"shutdownTimeout": 86401}, {"shutdownTimeout": ["Must be between 1 and 86400 seconds."]}),
        ({"shutdownTimeout": "60"}, {"shutdownTimeout": [NOT_INT]}),
        ({"node": "HV1"}, {"node": [
            "Name 'HV1' must be lowercase; use 1-63 characters: lowercase letters a-z, digits 0-9, "
            "'-' and '.', starting and ending with a letter or a digit."]}),
        ({"meta": {"limits": ["hv1", "hv1"]}}, {"meta": {"limits": [
            "Duplicate name 'hv1': each name may appear once."]}}),
        ({"meta": {"limits": ["hv1", "a/b"]}}, {"meta": {"limits": {1: [
            "Name 'a/b' must not contain '/': a name is a single path component."]}}}),
        ({"meta": {"limits": "hv1"}}, {"meta": {"limits": ["Not a valid list."]}}),
        ({"meta": {"autorestart": "yes"}}, {"meta": {"autorestart": [
            "Not a valid boolean: expected true or false."]}}),
        ({"xml": ""}, {"xml": ["Must not be empty."]}),
        ({"xml": None}, {"xml": ["Field may not be null."]}),
    ],
)
def test_spec_fields_are_validated(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert errors(VMSchema(), vm_doc(**spec)) == {"spec": expected}


def test_null_node_and_timeout_are_allowed() -> None:
    loaded = VMSchema().load(vm_doc(node=None, shutdownTimeout=None))
    assert loaded["spec"]["node"] is None
    assert loaded["spec"]["shutdownTimeout"] is None


def test_xml_errors_are_keyed_under_spec_xml() -> None:
    doc = vm_doc()
    doc["metadata"]["name"] = "web2"
    assert errors(VMSchema(), doc) == {
        "spec": {"xml": ["Domain name 'web1' does not match the VM name 'web2'."]}
    }
    doc = vm_doc(xml="<domain type='test'><name>x</name>")
    assert set(errors(VMSchema(), doc)) == {"spec"}


def test_xml_is_still_checked_when_the_name_is_invalid() -> None:
    doc = vm_doc(xml="<vm/>", state="bogus")
    doc["metadata"]["name"] = "Bad"
    messages = errors(VMSchema(), doc)
    assert messages["spec"]["xml"] == ["Root element must be <domain>, not <vm>."]
    assert set(messages["spec"]) == {"xml", "state"}
    assert set(messages["metadata"]) == {"name"}


def test_object_level_fields_are_checked() -> None:
    doc = vm_doc()
    doc.update(apiVersion="herd/v2", kind="Node")
    del doc["metadata"]
    assert errors(VMSchema(), doc) == {
        "apiVersion": ["Unsupported apiVersion 'herd/v2'; expected 'herd/v1'."],
        "kind": ["Wrong kind 'Node' for this object; expected 'VM'."],
        "metadata": ["Missing data for required field."],
    }
    assert errors(VMSchema(), []) == {
        "_schema": ["Invalid input type: expected an object (a mapping)."]
    }


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"labels": {"-x": "a"}}, {"labels": {"-x": {"key": [
            "Invalid label key '-x': use 1-63 letters, digits, '-', '_' and '.', starting and "
            "ending with a letter or digit."]}}}),
        ({"labels": {"x": "a b"}}, {"labels": {"x": {"value": [
            "Invalid label value 'a b': use 0-63 letters, digits, '-', '_' and '.', starting and "
            "ending with a letter or digit."]}}}),
        ({"labels": {"x": "v" * 64}}, {"labels": {"x": {"value": [
            f"Invalid label value {'v' * 64!r}: use 0-63 letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit."]}}}),
        ({"labels": {f"k{i}": "" for i in range(65)}}, {"labels": [
            "At most 64 labels are allowed."]}),
        ({"generation": 0}, {"generation": ["Must be 1 or more (it is managed by the server)."]}),
        ({"resourceVersion": ""}, {"resourceVersion": [
            "Length must be between 1 and 64 characters."]}),
        ({"creationTimestamp": "yesterday"}, {"creationTimestamp": [
            "Not an ISO 8601 timestamp: 'yesterday' (example: 2024-05-01T12:00:00Z)."]}),
        ({"name": ""}, {"name": ["Name must not be empty."]}),
    ],
)
def test_metadata_fields_are_validated(metadata: dict[str, Any], expected: dict[str, Any]) -> None:
    doc = vm_doc()
    doc["metadata"].update(metadata)
    messages = errors(VMSchema(), doc)
    assert messages["metadata"] == expected


def test_placement_defaults_and_validation() -> None:
    assert PlacementSchema().load({}) == {
        "node": None, "lastNode": None, "reason": "", "autorestartPending": False, "home": None,
    }
    full = {"node": "hv2", "lastNode": "hv1", "reason": "flush of hv1",
            "autorestartPending": True, "home": "hv1"}
    assert PlacementSchema().load(PlacementSchema().dump(full)) == full
    assert errors(PlacementSchema(), {"reason": "x" * 257, "lastNode": "-", "nodes": []}) == {
        "reason": ["Length must be between 0 and 256 characters."],
        "lastNode": ["Name '-' must start and end with a letter or a digit."],
        "nodes": ["Unknown field; allowed fields: autorestartPending, home, lastNode, node, "
                  "reason, tried."],
    }
    assert errors(PlacementSchema(), {"reason": "a\x00b"}) == {
        "reason": ["Must not contain control characters ('\\x00' at position 1)."]
    }


def test_status_defaults() -> None:
    assert VMStatusSchema().load({}) == {
        "state": "unknown", "node": None, "reason": "", "since": 0.0,
        "observedGeneration": 0, "observedRestart": 0, "shutdownDeadline": None,
        "migration": None, "runningXmlHash": None, "conditions": [],
    }


STATUS = {
    "state": "migrating",
    "node": "hv1",
    "reason": "migrate requested",
    "since": 1714564800.25,
    "observedGeneration": 4,
    "observedRestart": 1,
    "shutdownDeadline": 1714564900.0,
    "migration": {"source": "hv1", "target": "hv2", "method": "live", "started": 1714564800.0},
    "runningXmlHash": "0" * 64,
    "conditions": [{"type": "Placed", "status": "True", "reason": "Scheduled",
                    "message": "on hv1", "lastTransitionTime": 1714564700.0}],
}


def test_status_round_trips() -> None:
    loaded = VMStatusSchema().load(copy.deepcopy(STATUS))
    assert loaded == STATUS
    assert loaded["state"] == VMState.MIGRATING
    assert VMStatusSchema().load(VMStatusSchema().dump(loaded)) == loaded


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"state": "sleeping"}, {"state": [
            "Invalid state 'sleeping'; must be one of: stopped, starting, running, shutting-down, "
            "stopping, restarting, migrating, failed, disabled, unknown."]}),
        ({"migration": {**STATUS["migration"], "method": "any"}},  # type: ignore[dict-item]
         {"migration": {"method": ["Invalid method 'any'; must be one of: live, shutdown."]}}),
        ({"migration": {**STATUS["migration"], "target": "hv1"}},  # type: ignore[dict-item]
         {"migration": {"target": ["A migration needs distinct source and target nodes."]}}),
        ({"migration": {"source": "hv1"}}, {"migration": {
            "target": ["Missing data for required field."],
            "method": ["Missing data for required field."],
            "started": ["Missing data for required field."]}}),
        ({"conditions": [{"type": "Placed", "status": "yes"}]}, {"conditions": {0: {"status": [
            "Invalid status 'yes'; must be one of: True, False, Unknown."]}}}),
        ({"conditions": [{"type": "placed", "status": "True"}]}, {"conditions": {0: {"type": [
            "Condition type must be a CamelCase word of 1-63 letters and digits."]}}}),
        ({"conditions": [{"type": "A", "status": "True"}, {"type": "A", "status": "False"}]},
         {"conditions": ["Duplicate condition type(s): A."]}),
        ({"since": -1.0}, {"since": ["Must be a time in seconds since the epoch (0 or more)."]}),
        ({"since": "1.0"}, {"since": ["Not a valid number."]}),
        ({"shutdownDeadline": float("nan")}, {"shutdownDeadline": [
            "Special numeric values (nan or infinity) are not permitted."]}),
        ({"observedGeneration": -1}, {"observedGeneration": ["Must be 0 or more."]}),
    ],
)
def test_status_fields_are_validated(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert errors(VMStatusSchema(), {**STATUS, **patch}) == expected
