"""herd-api's console, log and figures routes (issue #16) against a real herd-node (test
driver) with its endpoint, on a real ZooKeeper: every refusal is an HTTP error saying why
(no such VM, not running, no WebSocket, the node's driver has no console, a node with no
endpoint), the log and the figures come from the node, and the tickets the API signs are
the node's only way in. The consoles themselves need real QEMU
(`tests/e2e/test_qemu_console.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from reconciler.config import NodeConfig
from store.client import Store
from tests.integration.test_api import Api, api_server, play_node, seen
from tests.support.daemons import RunningDaemon
from tests.support.libvirt_nodes import write_node_file

NODE = "hv1"
UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest_asyncio.fixture
async def node(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[RunningDaemon]:
    config = NodeConfig(name=NODE, zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                        libvirt_uri=write_node_file(tmp_path, NODE), coordinator=True,
                        address=None, initial_domain_state="ready", status_interval=1.0,
                        resync_interval=300.0, workers=2, log_level="INFO",
                        metrics_address="127.0.0.1:0", console_log_dir=str(tmp_path / "logs"))
    running = RunningDaemon(config)
    await running.start()
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path,
              node: RunningDaemon) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path / "api") as a:
        yield a


async def running_vm(api: Api, store: Store, name: str) -> None:
    await api.define(name, node=NODE)
    status, body = await api.post(f"/vm/{name}/state", {"state": "start", "wait": True,
                                                        "timeout": 30})
    assert status == 200 and body["state"] == "running", body
    await seen(api, store.paths.vm_owner(name), store.get(store.paths.vm_owner(name)).mzxid)


async def test_console_refusals_say_why(api: Api, store: Store) -> None:
    status, body = await api.get("/vm/nope/console", headers={**api.headers, **UPGRADE})
    assert status == 404, body
    await api.define("off1", node=NODE)
    status, body = await api.get("/vm/off1/console", headers={**api.headers, **UPGRADE})
    assert (status, body["error"]["message"]) == (409, "vm off1 is not running (state "
                                                       "stopped)"), body
    await running_vm(api, store, "web1")
    status, body = await api.get("/vm/web1/console")  # no Upgrade
    assert (status, body["error"]["code"]) == (400, "websocket_required")
    status, body = await api.get("/vm/web1/console", headers={**api.headers, **UPGRADE})
    assert status == 409 and "not supported" in body["error"]["message"], body
    assert body["error"]["message"].startswith(f"node {NODE}: cannot open the console")
    status, body = await api.get("/vm/web1/console?force=maybe",
                                 headers={**api.headers, **UPGRADE})
    assert status == 422 and "force" in str(body["error"]["details"]), body


async def test_log_and_figures_come_from_the_node(api: Api, store: Store,
                                                  node: RunningDaemon) -> None:
    await running_vm(api, store, "web1")
    logs = Path(node.config.console_log_dir)  # virtlogd's part (no test-driver guest prints)
    await asyncio.to_thread(logs.mkdir)
    await asyncio.to_thread((logs / "web1.log").write_bytes, b"one\r\ntwo\r\nthree\r\n")
    resp = await api.raw("GET", "/vm/web1/log?lines=2")
    assert (resp.status, await resp.read()) == (200, b"two\r\nthree\r\n")
    status, body = await api.get("/vm/web1/log?lines=-1")
    assert status == 422 and "lines" in str(body["error"]["details"]), body
    status, body = await api.get("/vm/web1/figures")
    assert status == 200 and body["node"] == NODE, body
    assert body["figures"]["state"] == "running" and body["figures"]["cpuPercent"] >= 0
    status, body = await api.get(f"/node/{NODE}/figures")
    assert status == 200 and set(body["vms"]) == {"web1"}, body
    await api.define("new1", node=NODE)
    status, body = await api.get("/vm/new1/log")
    assert status == 409 and "has not run on any node" in body["error"]["message"], body


async def test_a_node_without_an_endpoint_is_503(api: Api, store: Store) -> None:
    await play_node(api, store, "hv9")  # registered, no endpoint published
    status, body = await api.get("/node/hv9/figures")
    assert (status, body["error"]["code"]) == (503, "node_unreachable"), body
