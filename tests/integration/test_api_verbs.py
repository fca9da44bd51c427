"""herd-api's imperative verbs against a real ZooKeeper: VM state verbs (spec changes,
generation, wait and 504), placement verbs (migrate, move, unmigrate; explicit targets and
the selector), node domain-state. The test plays the nodes by writing their status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from store.client import Store
from tests.integration.test_api import Api, api_server, play_node, seen, write_status
from tests.support.waits import wait_doc


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path, max_wait_timeout=5.0) as a:
        yield a


def spec(store: Store, vm: str) -> dict[str, object]:
    return dict(store.get(store.paths.vm(vm)).doc["spec"])


async def test_state_verbs_set_the_spec_and_bump_generation(api: Api, store: Store) -> None:
    await api.define("web1")
    expected = [("start", "running", "graceful"), ("stop", "stopped", "force"),
                ("start", "running", "force"), ("shutdown", "stopped", "graceful"),
                ("disable", "disabled", "graceful")]
    for generation, (verb, state, mode) in enumerate(expected, start=2):
        status, body = await api.post("/vm/web1/state", {"state": verb})
        assert status == 200, body
        assert (spec(store, "web1")["state"], spec(store, "web1")["stopMode"]) == (state, mode)
        assert body["desired"] == state and body["generation"] == generation
    status, body = await api.post("/vm/web1/state", {"state": "restart"})
    assert spec(store, "web1")["restartRequest"] == 1 and body["desired"] == "running"
    status, got = await api.get("/vm/web1/state")
    assert got["restartRequest"] == 1 and got["state"] == "stopped"


async def test_wait_follows_the_status_the_node_writes(api: Api, store: Store) -> None:
    await api.define("web1")
    call = asyncio.create_task(api.post("/vm/web1/state", {"state": "start", "wait": True}))
    await wait_doc(store, store.paths.vm("web1"),
                   lambda d: d is not None and d["spec"]["state"] == "running")
    await write_status(api, store, "web1", state="starting", node="hv1")
    assert not call.done()
    await write_status(api, store, "web1", state="running", node="hv1")
    status, body = await call
    assert status == 200 and body["state"] == "running" and body["node"] == "hv1"


async def test_restart_waits_for_the_new_request(api: Api, store: Store) -> None:
    await api.define("web1", state="running")
    await write_status(api, store, "web1", state="running", node="hv1", observedRestart=4)
    call = asyncio.create_task(api.post("/vm/web1/state", {"state": "restart", "wait": True,
                                                           "timeout": 5}))
    await wait_doc(store, store.paths.vm("web1"), lambda d: d is not None
                   and d["spec"]["restartRequest"] == 5)  # the request lands in the spec
    await write_status(api, store, "web1", state="restarting")
    await write_status(api, store, "web1", state="running", observedRestart=5)
    code, body = await call
    assert code == 200 and body["observedRestart"] == 5 and body["restartRequest"] == 5


async def test_wait_times_out_with_504_and_the_current_state(api: Api, store: Store) -> None:
    await api.define("web1")
    status, err = await api.post("/vm/web1/state", {"state": "start", "wait": True,
                                                    "timeout": 0.3})
    assert status == 504 and err["error"]["code"] == "timeout"
    assert err["error"]["details"]["state"] == "stopped"
    assert err["error"]["details"]["desired"] == "running"


# --- placement ---------------------------------------------------------------------------------

async def cluster(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1", mem_free=4096)
    await play_node(api, store, "hv2", mem_free=2048)
    await play_node(api, store, "hv3", mem_free=8000)
    await play_node(api, store, "hv4", mem_free=8000, ready=False)
    await play_node(api, store, "hv5", mem_free=32)


async def test_migrate_move_unmigrate(api: Api, store: Store) -> None:
    await cluster(api, store)
    await api.define("web1", node="hv1", limits=["hv1", "hv2", "hv4", "hv5"])
    status, body = await api.post("/vm/web1/node", {"action": "migrate", "node": "hv2"})
    assert status == 200 and (body["node"], body["lastNode"]) == ("hv2", "hv1")
    placement = store.get(store.paths.vm_placement("web1")).doc
    assert (placement["node"], placement["lastNode"]) == ("hv2", "hv1")
    status, err = await api.post("/vm/web1/node", {"action": "migrate", "node": "hv1"})
    assert status == 409 and "migrated already" in err["error"]["message"]
    status, body = await api.post("/vm/web1/node", {"action": "migrate", "node": "hv1",
                                                    "force": True})
    assert (body["node"], body["lastNode"]) == ("hv1", "hv1")  # the first lastNode is kept
    status, body = await api.post("/vm/web1/node", {"action": "move", "node": "hv2"})
    assert (body["node"], body["lastNode"]) == ("hv2", None)
    status, err = await api.post("/vm/web1/node", {"action": "unmigrate"})
    assert status == 409 and "not migrated" in err["error"]["message"]
    await api.post("/vm/web1/node", {"action": "migrate", "node": "hv1"})
    status, body = await api.post("/vm/web1/node", {"action": "unmigrate"})
    assert status == 200 and (body["node"], body["lastNode"]) == ("hv2", None)
    status, got = await api.get("/vm/web1/node")
    assert got["node"] == "hv2" and got["reason"] == "returned to hv2"


async def test_a_node_verb_aborts_a_shutdown_in_progress(api: Api, store: Store) -> None:
    """A move is a new target: a graceful shutdown in progress is aborted by it (the VM
    is wanted running again, in the same transaction); a stopped VM only moves."""
    await cluster(api, store)
    for name in ("web1", "web2"):
        await api.define(name, node="hv1")
        await api.post(f"/vm/{name}/state", {"state": "shutdown"})
    await write_status(api, store, "web1", state="shutting-down", node="hv1")
    await write_status(api, store, "web2", state="stopped", node=None)
    generation = store.get(store.paths.vm("web1")).doc["metadata"]["generation"]
    for name in ("web1", "web2"):
        status, body = await api.post(f"/vm/{name}/node", {"action": "migrate", "node": "hv2"})
        assert status == 200 and body["node"] == "hv2"
    web1, web2 = (store.get(store.paths.vm(n)).doc for n in ("web1", "web2"))
    assert web1["spec"]["state"] == "running"
    assert web1["metadata"]["generation"] == generation + 1
    assert web2["spec"]["state"] == "stopped"


async def test_explicit_targets_are_refused_with_the_reason(api: Api, store: Store) -> None:
    await cluster(api, store)
    await api.define("web1", node="hv1", limits=["hv1", "hv2", "hv4", "hv5"])
    refusals = {"hv3": "outside the VM's limits", "hv4": "not ready",
                "hv5": "VM needs 64 MiB", "hv9": "does not exist"}
    for node, reason in refusals.items():
        status, err = await api.post("/vm/web1/node", {"action": "move", "node": node})
        assert status == 400 and reason in err["error"]["message"], (node, err)
        assert err["error"]["details"]["node"]
    assert store.get(store.paths.vm_placement("web1")).doc["node"] == "hv1"


async def test_without_a_node_the_selector_picks(api: Api, store: Store) -> None:
    await cluster(api, store)
    await api.define("web1", node="hv1", limits=["hv1", "hv2"])
    await api.define("web2", node="hv1")
    status, body = await api.post("/vm/web1/node", {"action": "migrate"})
    assert status == 200 and body["node"] == "hv2"  # the only other valid node
    status, body = await api.post("/vm/web2/node", {"action": "move"})
    assert body["node"] == "hv3"  # most free memory (mem), hv4 is not ready
    await api.define("web3", node="hv1", limits=["hv1"])
    status, err = await api.post("/vm/web3/node", {"action": "migrate"})
    assert status == 409 and "no valid target" in err["error"]["message"]


async def test_node_wait_follows_the_target(api: Api, store: Store) -> None:
    await cluster(api, store)
    await api.define("web1", node="hv1", state="running")
    call = asyncio.create_task(api.post("/vm/web1/node", {"action": "move", "node": "hv2",
                                                          "wait": True}))
    await write_status(api, store, "web1", state="migrating", node="hv1")
    await wait_doc(store, store.paths.vm_placement("web1"),
                   lambda d: d is not None and d["node"] == "hv2")
    await write_status(api, store, "web1", state="running", node="hv2")
    status, body = await call
    assert status == 200 and body["runningOn"] == "hv2" and body["state"] == "running"
    await api.post("/vm/web1/state", {"state": "stop"})
    status, body = await api.post("/vm/web1/node", {"action": "move", "node": "hv1",
                                                    "wait": True, "timeout": 1})
    assert status == 200 and body["node"] == "hv1"  # stopped: the placement is the result


async def test_nodes_and_domain_state(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await play_node(api, store, "hv2", alive=False)
    status, listing = await api.get("/node")
    assert status == 200 and [n["metadata"]["name"] for n in listing["items"]] == ["hv1", "hv2"]
    assert [n["alive"] for n in listing["items"]] == [True, False]
    status, node = await api.get("/node/hv1")
    assert node["status"]["resources"]["memFree"] == 4096 and node["primary"] is False
    call = asyncio.create_task(api.post("/node/hv1/domain-state", {"state": "flush",
                                                                   "wait": True}))
    path = store.paths.node("hv1")
    await wait_doc(store, path, lambda d: d is not None
                   and d["spec"]["domainState"] == "flushed")
    store.update(store.paths.node_status("hv1"), lambda d: {**d, "domainState": "flushing"})
    written = store.update(store.paths.node_status("hv1"),
                           lambda d: {**d, "domainState": "flushed"})
    await seen(api, store.paths.node_status("hv1"), written.mzxid)
    status, body = await call
    assert status == 200 and body == {"name": "hv1", "desired": "flushed", "state": "flushed",
                                      "daemonState": "run", "alive": True}
    status, err = await api.post("/node/hv1/domain-state", {"state": "ready", "wait": True,
                                                            "timeout": 0.2})
    assert status == 504 and err["error"]["details"]["state"] == "flushed"
    assert store.get(path).doc["spec"]["domainState"] == "ready"
    assert store.get(path).doc["metadata"]["generation"] == 3
    status, got = await api.get("/node/hv1/domain-state")
    assert status == 200 and (got["desired"], got["state"]) == ("ready", "flushed")
