"""Affinity rules through herd-api against a real ZooKeeper (issue #17): add, show, list
and remove; bad rules are 422 naming the field with nothing written; a rule may name VMs
that do not exist yet (warned of); `apply` creates and replaces rules (version-checked),
taking back what GET shows unchanged; rules are in the watch stream; a viewer reads them
but cannot write them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from store.client import Store
from tests.integration.test_api import Api, api_server
from tests.integration.test_api_roles import bearer, make_token


def rule(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "apart", "vms": ["web1", "web2"], **fields}


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


async def test_add_show_list_remove(api: Api, store: Store) -> None:
    await api.define("web1")
    await api.define("web2")
    status, body = await api.post("/rule", rule("spread", strict=True))
    assert status == 201, body
    assert body["kind"] == "Rule" and body["metadata"]["name"] == "spread"
    assert body["spec"] == {"kind": "apart", "strict": True, "vms": ["web1", "web2"]}
    assert body["warnings"] == []
    stored = store.get(store.paths.rule("spread")).doc
    assert stored["spec"] == body["spec"] and stored["metadata"]["generation"] == 1
    status, shown = await api.get("/rule/spread")
    assert status == 200 and shown["spec"] == body["spec"] and "warnings" not in shown
    status, listing = await api.get("/rule")
    assert listing["count"] == 1 and [r["metadata"]["name"] for r in listing["items"]] == [
        "spread"]
    status, err = await api.post("/rule", rule("spread", kind="together"))
    assert status == 409 and err["error"]["code"] == "conflict", err
    assert store.get(store.paths.rule("spread")).doc["spec"]["kind"] == "apart"
    assert await api.call("DELETE", "/rule/spread") == (200, {"name": "spread",
                                                                "deleted": True})
    assert store.children(store.paths.rules) == []
    assert (await api.get("/rule/spread"))[0] == 404
    assert (await api.call("DELETE", "/rule/spread"))[0] == 404


async def test_strict_defaults_to_false(api: Api) -> None:
    status, body = await api.post("/rule", rule("soft", kind="together"))
    assert status == 201 and body["spec"]["strict"] is False, body


@pytest.mark.parametrize(("body", "field", "says"), [
    (rule("r", kind="near"), "kind", "must be one of"),
    (rule("r", vms=["web1"]), "vms", "between 2 and 64"),
    (rule("r", vms=[f"vm{i}" for i in range(65)]), "vms", "between 2 and 64"),
    (rule("r", vms=["web1", "web2", "web1"]), "vms", "'web1' is named twice"),
    (rule("r", vms=["web1", "Web2"]), "vms", "lowercase"),
    (rule("r", strict="yes"), "strict", "true or false"),
    (rule("r", node="hv1"), "node", "Unknown field"),
    (rule("R"), "name", "lowercase"),
    ({"kind": "apart", "vms": ["a", "b"]}, "name", "Missing data"),
])
async def test_bad_rules_are_422_naming_the_field(api: Api, store: Store, body: dict[str, Any],
                                                  field: str, says: str) -> None:
    status, err = await api.post("/rule", body)
    assert status == 422, err
    assert says in json.dumps(err["error"]["details"][field]), err
    assert store.children(store.paths.rules) == []


async def test_unknown_vms_are_accepted_with_warnings(api: Api) -> None:
    await api.define("web1")
    status, body = await api.post("/rule", rule("later", vms=["web1", "db1", "db2"]))
    assert status == 201, body
    assert len(body["warnings"]) == 2
    assert "'db1'" in body["warnings"][0] and "'db2'" in body["warnings"][1]
    assert "web1" not in " ".join(body["warnings"])


async def test_apply_creates_and_replaces_and_takes_get_back(api: Api, store: Store) -> None:
    doc: dict[str, Any] = {"apiVersion": "herd/v1", "kind": "Rule",
                           "metadata": {"name": "pair"},
                           "spec": {"kind": "together", "vms": ["web1", "web2"]}}
    status, body = await api.post("/apply", {"objects": [doc]})
    assert status == 200 and body["results"][0]["action"] == "created", body
    _, shown = await api.get("/rule/pair")  # as `herdctl get rule pair -o yaml` prints it
    assert shown["spec"]["strict"] is False
    status, body = await api.post("/apply", {"objects": [shown]})
    assert status == 200 and body["results"][0]["action"] == "unchanged", body
    changed = {**shown, "spec": {**shown["spec"], "strict": True}}
    status, body = await api.post("/apply", {"objects": [changed]})
    assert status == 200 and body["results"][0]["action"] == "configured", body
    assert {c["path"] for c in body["results"][0]["changes"]} == {"spec.strict",
                                                                "metadata.generation"}
    stored = store.get(store.paths.rule("pair")).doc
    assert stored["spec"]["strict"] is True and stored["metadata"]["generation"] == 2
    status, err = await api.post("/apply", {"objects": [shown]})  # its version is old now
    assert status == 409 and "resourceVersion" in err["error"]["message"], err
    status, err = await api.post("/apply", {"objects": [
        {**doc, "spec": {**doc["spec"], "vms": ["web1"]}}]})
    assert status == 422 and "vms" in err["error"]["details"]["objects"]["0"]["spec"], err


async def test_rules_are_in_the_watch_stream(api: Api) -> None:
    resp = await api.raw("GET", "/watch", params={"kind": "Rule", "timeout": "10"})
    assert (await api.post("/rule", rule("seen")))[0] == 201
    line = await asyncio.wait_for(resp.content.readline(), 10)
    event = json.loads(line)
    assert (event["type"], event["kind"], event["name"]) == ("ADDED", "Rule", "seen")
    assert event["object"]["spec"]["vms"] == ["web1", "web2"]
    assert (await api.call("DELETE", "/rule/seen"))[0] == 200
    event = json.loads(await asyncio.wait_for(resp.content.readline(), 10))
    assert (event["type"], event["name"]) == ("DELETED", "seen")
    resp.close()


async def test_a_viewer_reads_rules_but_cannot_write_them(api: Api, store: Store) -> None:
    assert (await api.post("/rule", rule("kept")))[0] == 201
    viewer = bearer(await make_token(api, "ro", "viewer"))
    assert (await api.get("/rule/kept", headers=viewer))[0] == 200
    assert (await api.get("/rule", headers=viewer))[1]["count"] == 1
    status, err = await api.post("/rule", rule("mine"), headers=viewer)
    assert status == 403 and "needs the role operator" in err["error"]["message"], err
    assert (await api.call("DELETE", "/rule/kept", headers=viewer))[0] == 403
    assert store.children(store.paths.rules) == ["kept"]
    operator = bearer(await make_token(api, "ops", "operator"))
    assert (await api.post("/rule", rule("theirs"), headers=operator))[0] == 201
    assert (await api.call("DELETE", "/rule/kept", headers=operator))[0] == 200
