"""`wait=true` answers as soon as the target cannot be reached (issue #13): a VM that its node
failed since the request (libvirt refused it) is a 409 naming the reason at once, not a
504 at the timeout; a failure older than the request does not count; a spec that no
longer asks for the target (the cluster stopped the VM: no node fits) ends the wait too.
A VM that names a node the cluster does not have is refused (422), never left waiting.
The test plays the node by writing its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from store.client import Store
from tests.integration.test_api import Api, api_server, write_status, xml
from tests.support.waits import wait_doc

WAIT = 60.0  # the server's longest wait: an answer well before it came from the failure


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path, max_wait_timeout=WAIT) as a:
        yield a


async def wanted_running(store: Store, name: str) -> int:
    doc = await wait_doc(store, store.paths.vm(name),
                         lambda d: d is not None and d["spec"]["state"] == "running")
    assert doc is not None
    return int(doc["metadata"]["generation"])


async def test_a_start_that_fails_ends_the_wait_with_the_reason(api: Api,
                                                                store: Store) -> None:
    await api.define("web1")
    await write_status(api, store, "web1", state="failed", reason="an old failure",
                       observedGeneration=1)  # before the request: not its answer
    call = asyncio.create_task(api.post("/vm/web1/state", {"state": "start", "wait": True}))
    generation = await wanted_running(store, "web1")
    await write_status(api, store, "web1", state="starting", node="hv1",
                       observedGeneration=generation)
    assert not call.done()
    await write_status(api, store, "web1", state="failed", node="hv1",
                       reason="start failed: unknown video model 'bogus'",
                       failedGeneration=generation)
    status, body = await asyncio.wait_for(call, WAIT / 2)
    assert status == 409 and body["error"]["code"] == "unreachable"
    assert "unknown video model 'bogus'" in body["error"]["message"]
    assert body["error"]["details"]["state"] == "failed"


async def test_a_spec_that_no_longer_asks_for_it_ends_the_wait(api: Api,
                                                               store: Store) -> None:
    await api.define("web1")
    call = asyncio.create_task(api.post("/vm/web1/state", {"state": "start", "wait": True}))
    await wanted_running(store, "web1")
    # What the primary does when no node fits: the spec says stopped, placement says why.
    store.update(store.paths.vm_placement("web1"),
                 lambda d: {**d, "reason": "no valid node (limits, readiness, memory)"})
    store.update(store.paths.vm("web1"), lambda d: {
        **d, "spec": {**d["spec"], "state": "stopped"},
        "metadata": {**d["metadata"], "generation": d["metadata"]["generation"] + 1}})
    status, body = await asyncio.wait_for(call, WAIT / 2)
    assert status == 409 and body["error"]["code"] == "unreachable"
    assert "now asks for stopped" in body["error"]["message"]
    assert "no valid node" in body["error"]["message"]


async def test_a_vm_naming_a_node_the_cluster_lacks_is_refused(api: Api, store: Store) -> None:
    status, body = await api.post("/vm", {"xml": xml("web1"), "node": "hv9"})
    assert status == 422 and body["error"]["code"] == "unknown_node"
    assert body["error"]["details"] == {"node": ["there is no node 'hv9' in the cluster"]}
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "web2"},
          "spec": {"xml": xml("web2"), "node": "hv9"}}
    status, body = await api.post("/apply", {"objects": [vm]})
    assert status == 422
    assert body["error"]["details"] == {"objects": {"0": {"spec": {
        "node": ["there is no node 'hv9' in the cluster"]}}}}
    assert store.children(store.paths.vms) == []
    # A node the same apply defines is one the cluster will have.
    node = {"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": "hv9"},
            "spec": {"domainState": "ready"}}
    status, body = await api.post("/apply", {"objects": [node, vm]})
    assert status == 200, body
    assert store.get(store.paths.vm_placement("web2")).doc["node"] == "hv9"
