"""`POST /apply` against a real ZooKeeper: one transaction for many objects, the dry-run
diff, version checks, and all-or-nothing when anything is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from schemas.node import load_object
from server.apply import plan_apply
from store import txn
from store.client import Store
from store.errors import AlreadyExists
from tests.integration.test_api import Api, api_server, play_node, xml


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


def vm(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name},
            "spec": {"xml": xml(name), **spec}}


def node(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


async def test_apply_creates_configures_and_leaves_unchanged(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    objects = [vm("web1", state="running", node="hv1", meta={"limits": ["hv1"]}), vm("web2"),
               node("hv9", domainState="ready")]
    status, body = await api.post("/apply", {"objects": objects})
    assert status == 200 and [r["action"] for r in body["results"]] == ["created"] * 3
    assert all(r["resourceVersion"] for r in body["results"])
    assert store.get(store.paths.vm_placement("web1")).doc["node"] == "hv1"
    assert store.get(store.paths.node("hv9")).doc["spec"] == {"domainState": "ready",
                                                             "coordinator": False,
                                                             "fence": "auto"}
    objects[1] = vm("web2", state="running")
    status, body = await api.post("/apply", {"objects": objects})
    assert [r["action"] for r in body["results"]] == ["unchanged", "configured", "unchanged"]
    assert body["results"][1]["changes"] == [
        {"path": "metadata.generation", "old": 1, "new": 2},
        {"path": "spec.state", "old": "stopped", "new": "running"}]
    assert store.get(store.paths.vm("web2")).doc["spec"]["state"] == "running"


async def test_dry_run_answers_the_diff_and_writes_nothing(api: Api, store: Store) -> None:
    await api.post("/apply", {"objects": [vm("web1")]})
    before = store.get(store.paths.vm("web1")).mzxid
    status, body = await api.post("/apply", {"dry_run": True, "objects": [
        vm("web1", meta={"selector": "vms"}), vm("web2")]})
    assert status == 200 and body["dry_run"] is True
    assert [(r["name"], r["action"]) for r in body["results"]] == [("web1", "configured"),
                                                                   ("web2", "created")]
    assert {"path": "spec.meta.selector", "old": "none", "new": "vms"} in \
        body["results"][0]["changes"]
    assert store.get(store.paths.vm("web1")).mzxid == before
    assert store.exists(store.paths.vm("web2")) is None


async def test_apply_is_all_or_nothing(api: Api, store: Store) -> None:
    status, got = await api.post("/apply", {"objects": [vm("web1")]})
    rv = got["results"][0]["resourceVersion"]
    await api.post("/vm/web1/meta", {"selector": "load"})  # web1 moves on: rv is stale
    objects = [vm("web2"), {**vm("web1"), "metadata": {"name": "web1", "resourceVersion": rv}}]
    status, err = await api.post("/apply", {"objects": objects})
    assert status == 409 and err["error"]["details"] == {"index": 1}
    assert store.exists(store.paths.vm("web2")) is None
    status, err = await api.post("/apply", {"objects": [vm("web3"), vm("web4", node="hv5",
                                                                      meta={"limits": ["hv1"]})]})
    assert status == 422 and "1" in err["error"]["details"]["objects"]
    status, err = await api.post("/apply", {"objects": [vm("web3"), {"kind": "VM"}]})
    assert status == 422 and set(err["error"]["details"]["objects"]) == {"1"}
    assert store.children(store.paths.vms) == ["web1"]


def test_a_race_between_plan_and_commit_changes_nothing(store: Store) -> None:
    # web2 is created behind the API's back after the plan read it absent: the
    # transaction's create of web2 fails, and web3's create is rolled back with it.
    objects = [vm("web3"), vm("web2")]
    plan = plan_apply(store, [load_object(o) for o in objects], objects)
    store.create(store.paths.vm("web2"), vm("web2"))
    with pytest.raises(AlreadyExists):
        txn.commit(store, plan.ops)
    assert store.exists(store.paths.vm("web3")) is None


async def test_get_output_applies_back_unchanged(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await api.define("web1", limits=["hv1"])
    _, got = await api.get("/vm/web1")
    _, hv1 = await api.get("/node/hv1")
    status, body = await api.post("/apply", {"objects": [got, hv1]})
    assert status == 200 and [r["action"] for r in body["results"]] == ["unchanged"] * 2
