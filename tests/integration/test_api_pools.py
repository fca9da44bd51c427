"""Storage pools through herd-api against a real ZooKeeper (issue #15): add, show, list
and remove; bad pools are 422 naming the field with nothing written; two pools cannot
share a directory, however concurrent their adds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from store.client import Store
from tests.integration.test_api import Api, api_server


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "Pool", "metadata": {"name": name},
            "spec": {"type": "local", "path": f"/var/lib/herd/pools/{name}", **spec}}


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


async def test_add_show_list_remove(api: Api, store: Store) -> None:
    status, body = await api.post("/pool", pool("local"))
    assert status == 201 and body["spec"]["path"] == "/var/lib/herd/pools/local", body
    assert (await api.get("/pool/local"))[1]["kind"] == "Pool"
    assert [p["metadata"]["name"] for p in (await api.get("/pool"))[1]["items"]] == ["local"]
    assert (await api.post("/pool", pool("local")))[0] == 409
    assert (await api.call("DELETE", "/pool/local"))[0] == 200
    assert store.children(store.paths.pools) == [] and (await api.get("/pool/local"))[0] == 404


@pytest.mark.parametrize(("spec", "field"), [
    ({"path": "relative/dir"}, "path"), ({"path": "/var/../etc"}, "path"), ({"path": "/"}, "path"),
    ({"type": "rbd"}, "rbd"), ({"type": "nfs"}, "type"), ({"path": None}, "path"),
    ({"type": "rbd", "path": None, "rbd": {"monitors": [], "pool": "p", "user": "u",
                                             "secret": "s"}}, "rbd"),
])
async def test_bad_pools_are_422_naming_the_field(api: Api, store: Store,
                                                   spec: dict[str, Any], field: str) -> None:
    doc = pool("bad", **spec)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}
    status, body = await api.post("/pool", doc)
    assert status == 422 and field in body["error"]["details"]["spec"], body
    assert store.children(store.paths.pools) == []


async def test_two_pools_cannot_share_a_directory(api: Api, store: Store) -> None:
    same = [pool(f"p{i}", path="/srv/pools/same") for i in range(4)]
    answers = await asyncio.gather(*(api.post("/pool", doc) for doc in same))
    assert sorted(status for status, _ in answers) == [201, 422, 422, 422]
    status, body = await api.post("/pool", pool("inner", path="/srv/pools/same/inner"))
    assert status == 422 and "Overlaps" in str(body["error"]["details"])
    assert len(store.children(store.paths.pools)) == 1
