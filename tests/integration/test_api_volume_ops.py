"""Resize, clone, `?vm=` and `apply` of Pools and Volumes through herd-api against a real
ZooKeeper (issue #15). Volumes only grow, within their node's free space (422 / 507
naming `size`, nothing written); a clone is a new volume of the pool whose source is the
volume, made on a local pool's source node (another node: 422 naming `node`) once the
source is ready (else 409); `GET /volume?vm=` answers the volumes a VM's disks name;
`apply` creates, grows and leaves unchanged what `GET` printed. Nodes are played by the
test (`test_api_volumes.play_node`); the node side is tests/integration/test_node_volume_ops.py.
"""

from __future__ import annotations

from typing import Any

import yaml

from ctl.manifests import parse, validate
from server.keys import CACHE
from store.client import Store
from tests.integration.test_api import Api
from tests.integration.test_api_pools import pool
from tests.integration.test_api_volumes import GiB, api, disk_vm, volume

__all__ = ["api"]  # the fixture, used by name


async def ready(api: Api, store: Store, name: str) -> None:
    """The volume `local/<name>` ready, as its node would say, once the server saw it."""
    written = store.update(store.paths.volume_status("local", name),
                           lambda d: {**d, "state": "ready", "capacity": 1})
    cache = api.app[CACHE]

    def shown() -> bool | None:
        found = cache.docs.get("Volume", f"local/{name}/status")
        return True if found is not None and found.mzxid >= written.mzxid else None

    assert await cache.wait_for(("Volume", f"local/{name}"), shown, timeout=10)


async def test_a_volume_only_grows_within_its_nodes_free_space(api: Api, store: Store) -> None:
    assert (await api.post("/volume", volume("v1", "2G", node="hv2")))[0] == 201  # 8G free
    for size, code in (("1G", 422), ("2G", 422), ("11G", 507), ("lots", 422), (0, 422)):
        status, body = await api.post("/volume/local/v1", {"size": size})
        assert status == code and "size" in body["error"]["details"], (size, body)
    stored = store.get(store.paths.volume("local", "v1")).doc
    assert stored["spec"]["size"] == 2 * GiB and stored["metadata"]["generation"] == 1
    status, body = await api.post("/volume/local/v1", {"size": "9G"})  # grows by 7G of 8G
    assert status == 200, body
    assert body["spec"]["size"] == 9 * GiB and body["metadata"]["generation"] == 2
    stored = store.get(store.paths.volume("local", "v1")).doc
    assert stored["spec"]["size"] == 9 * GiB and stored["metadata"]["generation"] == 2
    assert (await api.post("/volume/local/nosuch", {"size": "9G"}))[0] == 404
    assert (await api.call("DELETE", "/volume/local/v1"))[0] == 202
    assert (await api.post("/volume/local/v1", {"size": "10G"}))[0] == 409  # being deleted


async def test_a_clone_is_a_new_volume_of_the_pool_on_its_sources_node(
        api: Api, store: Store) -> None:
    assert (await api.post("/volume", volume("base", "1G", node="hv1", format="raw")))[0] == 201
    status, body = await api.post("/volume/local/base/clone", {"name": "c1"})
    assert status == 409 and "not ready" in body["error"]["message"]  # still pending
    await ready(api, store, "base")
    status, body = await api.post("/volume/local/base/clone", {"name": "c1", "node": "hv2"})
    assert status == 422 and "node" in body["error"]["details"]
    for bad in ({"name": "a/b"}, {}, {"name": "c1", "size": "2G"}):
        assert (await api.post("/volume/local/base/clone", bad))[0] == 422, bad
    assert store.children(store.paths.volume_pool("local")) == ["base"]  # nothing written
    status, body = await api.post("/volume/local/base/clone", {"name": "c1", "node": "hv1"})
    assert status == 201, body
    assert body["spec"] == {**body["spec"], "pool": "local", "node": "hv1", "size": GiB,
                            "format": "raw", "source": {"volume": "base"}}
    assert body["status"]["state"] == "pending"
    status, body = await api.post("/volume/local/base/clone", {"name": "c1"})
    assert status == 409  # the name is taken
    status, body = await api.post("/volume", volume("c2", "1G", source={"volume": "base"},
                                                    node="hv2"))
    assert status == 422 and "node" in body["error"]["details"]["spec"]  # POST /volume too
    status, body = await api.post("/volume", volume("c2", "1G", source={"volume": "base"}))
    assert status == 201 and body["spec"]["node"] == "hv1"  # not hv2, the roomiest
    assert (await api.post("/volume/local/nosuch/clone", {"name": "c2"}))[0] == 404


async def test_volumes_of_a_vm(api: Api) -> None:
    for name in ("d1", "d2", "d3"):
        assert (await api.post("/volume", volume(name)))[0] == 201
    xml = disk_vm("a", "d1").replace("</devices>", disk_vm("x", "d2", shareable=True).split(
        "<devices>")[1].split("</devices>")[0].replace("vda", "vdb") + "</devices>")
    assert (await api.post("/vm", {"xml": xml}))[0] == 201
    assert (await api.post("/vm", {"xml": disk_vm("b", "d3")}))[0] == 201

    async def names(query: str) -> list[str]:
        status, body = await api.get(f"/volume?{query}")
        assert status == 200, body
        return [v["metadata"]["name"] for v in body["items"]]

    assert await names("vm=a") == ["d1", "d2"]
    assert await names("vm=b&pool=local") == ["d3"]
    assert await names("vm=b&node=nosuch") == []
    assert await names("vm=nosuch") == []
    assert (await api.get("/volume?vm=a/b"))[0] == 422


def as_printed(obj: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    """`obj` as `herdctl ... info -o yaml` prints it (with `extra`), read back the way
    `apply -f` reads a file (`ctl.manifests`)."""
    text = yaml.safe_dump({**obj, **extra})
    return validate(parse(text, "printed.yaml"))


async def test_apply_creates_grows_and_leaves_alone_pools_and_volumes(
        api: Api, store: Store) -> None:
    status, body = await api.post("/apply", {"objects": [pool("more"), volume("a1", "1G")]})
    assert status == 200, body
    assert [(r["kind"], r["name"], r["action"]) for r in body["results"]] == [
        ("Pool", "more", "created"), ("Volume", "local/a1", "created")]
    assert store.get(store.paths.volume("local", "a1")).doc["spec"]["node"] == "hv2"
    assert store.exists(store.paths.volume_pool("more")) is not None
    printed_volume = (await api.get("/volume/local/a1"))[1]
    printed_pool = (await api.get("/pool/more"))[1]
    again = [*as_printed(printed_pool, nodes={"hv1": None}), *as_printed(printed_volume)]
    status, body = await api.post("/apply", {"objects": again})
    assert status == 200, body
    assert [r["action"] for r in body["results"]] == ["unchanged", "unchanged"]
    grown = {**printed_volume, "spec": {**printed_volume["spec"], "size": 2 * GiB,
                                        "description": "bigger"}}
    status, body = await api.post("/apply", {"objects": as_printed(grown)})
    assert status == 200 and body["results"][0]["action"] == "configured", body
    stored = store.get(store.paths.volume("local", "a1")).doc
    assert stored["spec"]["size"] == 2 * GiB and stored["metadata"]["generation"] == 2


async def test_apply_refuses_what_the_storage_handlers_refuse(api: Api, store: Store) -> None:
    assert (await api.post("/volume", volume("b1", "2G", node="hv1")))[0] == 201  # 5G free
    current = (await api.get("/volume/local/b1"))[1]

    def changed(**spec: Any) -> dict[str, Any]:
        return as_printed({**current, "spec": {**current["spec"], **spec}})[0]

    for obj, code, where in (
            (changed(size="1G"), 422, "size"),
            (changed(size="8G"), 507, "size"),
            (changed(format="raw"), 422, "format"),
            (changed(node="hv2"), 422, "node"),
            (changed(source={"volume": "b0"}), 422, "source"),
            (volume("b2", "1G", pool="nosuch"), 422, "pool"),
            (volume("b3", "1G", node="hv3"), 422, "node"),
            (volume("b4", "1G", node="hv2", source={"volume": "b1"}), 422, "node"),
            (pool("local", path="/elsewhere"), 422, "path"),
            (pool("other", path="/var/lib/herd/pools/local"), 422, "path")):
        status, body = await api.post("/apply", {"objects": [obj]})
        assert status == code, (obj, body)
        assert where in body["error"]["details"]["objects"]["0"]["spec"], body
    stored = store.get(store.paths.volume("local", "b1")).doc
    assert stored["spec"]["size"] == 2 * GiB and stored["metadata"]["generation"] == 1
    assert store.children(store.paths.volume_pool("local")) == ["b1"]
    assert store.children(store.paths.pools) == ["local"]
    status, body = await api.post("/apply", {"objects": [volume("b5", "1G", source={
        "volume": "b1"})]})
    assert status == 200 and store.get(store.paths.volume("local", "b5")).doc["spec"][
        "node"] == "hv1"  # with its source, not on hv2 (more room)
    twins = [volume("t", "1G"), {**volume("t", "1G"), "spec": {"pool": "more", "size": "1G"}}]
    status, body = await api.post("/apply", {"objects": twins})  # not duplicates: two pools
    assert status == 422 and "pool" in body["error"]["details"]["objects"]["1"]["spec"]
