"""A volume's data through herd-api (issue #15), the refusals: what `PUT` and `GET
/volume/{pool}/{vol}/data` answer before any byte reaches a node — no such volume (404),
not ready or attached to a VM that runs or should (409), no Content-Length (411), an
empty body (400), more than the volume takes (413, naming the size), its node not up
(503) or its libvirt unreachable (502). Real ZooKeeper; nodes played by the test (their
status `pools` and `migrationUri`). The bytes themselves go through real libvirtds in
tests/e2e/test_qemu_volume_data.py (the test driver cannot be reached from herd-api)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from server.keys import CACHE
from store.client import Store
from tests.integration.test_api import Api, api_server, seen
from tests.integration.test_api_pools import pool
from tests.integration.test_api_volumes import disk_vm, play_node, volume

MiB = 1 << 20
CLOSED = "qemu+tcp://127.0.0.1:9/system"  # nothing listens on the discard port here


async def _ready(api: Api, store: Store, name: str, *, capacity: int) -> None:
    """Volume local/<name> reported ready by its node, once the server has seen it."""
    path = store.paths.volume_status("local", name)
    store.update(path, lambda d: {**d, "state": "ready", "capacity": capacity,
                                  "allocation": capacity, "node": "hv1"})
    cache = api.app[CACHE]
    key = f"local/{name}/status"
    assert await cache.wait_for(("Volume", f"local/{name}"), lambda: True if (
        (found := cache.docs.get("Volume", key)) and found.doc["state"] == "ready") else None,
        timeout=10)


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path,
              store: Store) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        assert (await a.post("/pool", pool("local")))[0] == 201
        for node in ("hv1", "hv2"):
            await play_node(a, store, node, free=5 << 30)
        path = store.paths.node_status("hv1")
        written = store.update(path, lambda d: {**d, "migrationUri": CLOSED})
        await seen(a, path, written.mzxid)
        for name, node, fmt in (("r1", "hv1", "raw"), ("q1", "hv1", "qcow2"),
                                ("far", "hv2", "raw")):
            status, body = await a.post("/volume", volume(name, "64M", node=node, format=fmt))
            assert status == 201, body
        yield a


async def put(api: Api, name: str, data: bytes, **headers: str) -> tuple[int, Any]:
    status, body = await api.call("PUT", f"/volume/local/{name}/data", data, headers={
        **api.headers, "Content-Type": "application/octet-stream", **headers})
    return status, body


async def test_unknown_and_unready_volumes_are_refused(api: Api, store: Store) -> None:
    assert (await put(api, "nosuch", b"x"))[0] == 404
    assert (await api.get("/volume/local/nosuch/data"))[0] == 404
    status, body = await put(api, "r1", b"x" * 1024)  # its node has not made it yet
    assert status == 409 and "not ready" in body["error"]["message"]
    assert (await api.get("/volume/local/r1/data"))[0] == 409


async def test_the_length_is_required_and_bounded_by_the_capacity(api: Api,
                                                                 store: Store) -> None:
    await _ready(api, store, "r1", capacity=64 * MiB)

    async def chunked() -> AsyncIterator[bytes]:
        yield b"x" * 1024

    status, body = await api.call("PUT", "/volume/local/r1/data", headers=api.headers,
                                  data=chunked())
    assert status == 411 and body["error"]["code"] == "length_required"
    status, body = await put(api, "r1", b"")
    assert status == 400 and "empty" in body["error"]["message"]
    status, body = await put(api, "r1", b"\0" * (64 * MiB + 1))
    assert status == 413 and str(64 * MiB + 1) in body["error"]["message"]
    assert "Content-Length" in body["error"]["details"]


async def test_a_volume_of_a_vm_that_runs_or_should_is_refused(api: Api,
                                                               store: Store) -> None:
    await _ready(api, store, "r1", capacity=64 * MiB)
    assert (await api.post("/vm", {"xml": disk_vm("a", "r1"), "node": "hv1"}))[0] == 201
    status, body = await api.post("/vm/a/state", {"state": "start"})
    assert status == 200, body
    status, body = await put(api, "r1", b"x" * 1024)
    assert status == 409 and body["error"]["details"]["vm"] == "a"


async def test_an_unreachable_node_is_a_502_and_a_node_without_uri_a_503(
        api: Api, store: Store) -> None:
    await _ready(api, store, "r1", capacity=64 * MiB)
    await _ready(api, store, "far", capacity=64 * MiB)
    status, body = await put(api, "r1", b"x" * 1024)
    assert status == 502 and CLOSED in body["error"]["message"]
    status, body = await api.get("/volume/local/r1/data")
    assert status == 502 and CLOSED in body["error"]["message"]
    status, body = await put(api, "far", b"x" * 1024)
    assert status == 503 and "hv2" in body["error"]["message"]
