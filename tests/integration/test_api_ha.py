"""HA policies through herd-api (issue #17) on a real ZooKeeper, nodes played as their
daemons would: an explicit node that breaks a strict affinity rule is refused with 409
naming the rule (migrate, move, unmigrate's return, define), a migrate without a node
picks one that keeps the rules; `POST /rebalance` plans and writes moves that even the
nodes out; `POST /maintenance` switches the cluster's maintenance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from store.client import Store
from tests.integration.test_api import Api, api_server, play_node, write_status, xml

NODES = ("hv1", "hv2", "hv3")


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


async def nodes(api: Api, store: Store) -> None:
    for node in NODES:
        await play_node(api, store, node, mem_free=8192)


async def running(api: Api, store: Store, name: str, node: str) -> None:
    await api.define(name, node=node, state="running")
    await write_status(api, store, name, state="running", node=node)


async def add_rule(api: Api, name: str, kind: str, *vms: str) -> None:
    status, body = await api.post("/rule", {"name": name, "kind": kind, "strict": True,
                                            "vms": list(vms)})
    assert status == 201, body  # answered once the API's cache has it


async def test_a_target_that_breaks_a_strict_rule_is_refused_naming_it(api: Api,
                                                                       store: Store) -> None:
    await nodes(api, store)
    await running(api, store, "a1", "hv1")
    await running(api, store, "a2", "hv2")
    await add_rule(api, "ha", "apart", "a1", "a2")
    status, body = await api.post("/vm/a1/node", {"action": "migrate", "node": "hv2"})
    assert status == 409, body
    assert "strict rule 'ha' keeps a1 apart from a2 (on hv2)" in body["error"]["message"]
    status, body = await api.post("/vm/a1/node", {"action": "migrate"})  # the API picks
    assert (status, body["node"]) == (200, "hv3"), body
    await add_rule(api, "pair", "together", "t1", "a2")
    status, body = await api.post("/vm", {"xml": xml("t1"), "node": "hv1"})
    assert status == 409 and "strict rule 'pair' keeps t1 together with a2" in \
        body["error"]["message"], body
    status, body = await api.post("/vm", {"xml": xml("t1"), "node": "hv2"})
    assert status == 201, body


async def test_rebalance_plans_and_writes_moves(api: Api, store: Store) -> None:
    await nodes(api, store)
    for i in range(4):
        await running(api, store, f"v{i}", "hv1")
    status, plan = await api.post("/rebalance", {"dryRun": True, "selector": "vms"})
    assert status == 200 and plan["dryRun"] and len(plan["moves"]) == 2, plan
    assert plan["after"] < plan["before"]
    assert all(store.get(store.paths.vm_placement(f"v{i}")).doc["node"] == "hv1"
               for i in range(4))  # a dry run writes nothing
    status, done = await api.post("/rebalance", {"selector": "vms"})
    assert status == 200 and all(m["written"] for m in done["moves"]), done
    homes = sorted(store.get(store.paths.vm_placement(f"v{i}")).doc["node"] for i in range(4))
    assert homes.count("hv1") == 2
    status, body = await api.post("/rebalance", {"threshold": -1})
    assert status == 422 and "threshold" in str(body["error"]["details"]), body


async def test_maintenance_switches_the_cluster_config(api: Api, store: Store) -> None:
    status, body = await api.post("/maintenance", {"maintenance": True})
    assert (status, body) == (200, {"maintenance": True})
    assert store.get(store.paths.config).doc["maintenance"] is True
    status, body = await api.post("/maintenance", {"maintenance": "yes"})
    assert status == 422, body
    status, body = await api.post("/maintenance", {"maintenance": False})
    assert (status, body) == (200, {"maintenance": False})
