"""The one builder of spec documents (`store.objects`): one generation rule for herd-api
and the primary coordinator alike (no I/O)."""

from __future__ import annotations

from typing import Any

from store.objects import generation, new_object, node_patch, replace_vm, with_spec


def vm(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "VM",
            "metadata": {"name": "web1", "generation": 3, "resourceVersion": "77"},
            "spec": {"state": "running", "restartRequest": 2, **spec}}


def test_a_new_object_starts_at_generation_1_without_server_metadata() -> None:
    stored = new_object(vm())
    assert stored["metadata"] == {"name": "web1", "generation": 1}


def test_a_spec_change_bumps_the_generation_once_and_no_change_writes_nothing() -> None:
    changed = with_spec(vm(), state="stopped", stopMode="graceful")
    assert changed is not None
    assert changed["spec"] == {"state": "stopped", "restartRequest": 2, "stopMode": "graceful"}
    assert changed["metadata"] == {"name": "web1", "generation": 4}
    assert with_spec(vm(), state="running") is None


def test_a_document_without_a_generation_counts_as_generation_1() -> None:
    doc = {"metadata": {"name": "hv1"}, "spec": {"domainState": "ready"}}
    assert generation(doc) == 1
    patched = node_patch(doc, {"domainState": "flushed"})
    assert patched is not None and patched["metadata"]["generation"] == 2


def test_replace_never_lowers_the_restart_counter() -> None:
    replaced = replace_vm(vm(), vm(restartRequest=0, state="stopped"))
    assert replaced is not None
    assert replaced["spec"]["restartRequest"] == 2
    assert replaced["metadata"]["generation"] == 4
