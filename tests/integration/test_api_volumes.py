"""Volumes through herd-api against a real ZooKeeper (issue #15): a volume is placed on
the usable node with the most room in its pool (or the one named), refused with 507 when
no node has room and 422 when the pool or the source is unknown or the pool is not
usable on the named node, nothing written then; deletion is a mark the volume's node
acts on. Nodes are played by the test (their status `pools`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from store import volumes as vols
from store.client import Store
from tests.integration.test_api import Api, api_server, seen
from tests.integration.test_api import play_node as play
from tests.integration.test_api_pools import pool

GiB = 1 << 30


def volume(name: str, size: Any = "1G", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "Volume", "metadata": {"name": name},
            "spec": {"pool": "local", "size": size, **spec}}


async def play_node(api: Api, store: Store, name: str, *, free: int,
                    usable: bool = True) -> None:
    """A node (`test_api.play_node`) with pool `local` usable and `free` bytes free, as its
    daemon would say, once the server has seen it."""
    await play(api, store, name, mem_free=32768)
    pools = {"local": {"usable": usable, "reason": "" if usable else "build failed: no",
                       "capacity": 100 * GiB, "allocation": 0, "available": free}}
    path = store.paths.node_status(name)
    written = store.update(path, lambda d: {**d, "pools": pools})
    await seen(api, path, written.mzxid)


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path,
              store: Store) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        assert (await a.post("/pool", pool("local")))[0] == 201
        await play_node(a, store, "hv1", free=5 * GiB)
        await play_node(a, store, "hv2", free=8 * GiB)
        await play_node(a, store, "hv3", free=50 * GiB, usable=False)
        yield a


async def test_a_volume_goes_where_it_fits_best(api: Api, store: Store) -> None:
    status, body = await api.post("/volume", volume("v1", "2G"))
    assert status == 201, body
    assert body["spec"]["node"] == "hv2" and body["spec"]["size"] == 2 * GiB
    assert body["status"]["state"] == "pending"
    status, body = await api.post("/volume", volume("v2", 6 * GiB, node="hv2"))
    assert status == 201 and body["spec"]["node"] == "hv2"
    listed = (await api.get("/volume?node=hv2"))[1]["items"]
    assert [v["metadata"]["name"] for v in listed] == ["v1", "v2"]
    assert store.get(store.paths.volume_status("local", "v1")).doc["state"] == "pending"
    status, body = await api.call("DELETE", "/volume/local/v1")
    assert status == 202
    assert store.get(store.paths.volume("local", "v1")).doc["deletion"]["requested"] > 0
    assert (await api.get("/volume/local/v1"))[1]["deletion"] is not None


@pytest.mark.parametrize(("doc", "code", "field"), [
    (volume("big", "9G"), 507, "size"),
    (volume("x", "1G", node="hv3"), 422, "node"),
    (volume("x", "1G", pool="nosuch"), 422, "pool"),
    (volume("x", "1G", source={"volume": "nosuch"}), 422, "source"),
    (volume("x", 0), 422, "size"),
    (volume("x", "lots"), 422, "size"),
    (volume("x", "1G", format="vmdk"), 422, "format"),
    (volume("a/b", "1G"), 422, "metadata"),
])
async def test_refusals_name_the_field_and_write_nothing(
        api: Api, store: Store, doc: dict[str, Any], code: int, field: str) -> None:
    status, body = await api.post("/volume", doc)
    assert status == code, body
    details = body["error"]["details"]
    assert field in details.get("spec", details)
    assert store.children(store.paths.volume_pool("local")) == []


async def test_a_pool_with_volumes_cannot_be_removed(api: Api, store: Store) -> None:
    assert (await api.post("/volume", volume("v1")))[0] == 201
    status, body = await api.call("DELETE", "/pool/local")
    assert status == 409 and "has volumes" in body["error"]["message"]
    assert store.exists(store.paths.pool("local")) is not None


def disk_vm(name: str, *volumes: str, shareable: bool = False) -> str:
    disks = "".join(
        f"<disk type='volume' device='disk'><source pool='local' volume='{v}'/>"
        f"<target dev='vd{chr(97 + i)}' bus='virtio'/>{'<shareable/>' if shareable else ''}"
        "</disk>" for i, v in enumerate(volumes))
    return (f"<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>"
            f"<devices>{disks}</devices></domain>")


async def test_a_vm_attaches_its_volumes_alone_unless_shareable(api: Api, store: Store) -> None:
    for name in ("d1", "d2"):
        assert (await api.post("/volume", volume(name)))[0] == 201
    status, body = await api.post("/vm", {"xml": disk_vm("a", "d1")})
    assert status == 201, body
    assert store.get(store.paths.volume_attachment("local", "d1")).doc == {"vm": "a"}
    status, body = await api.post("/vm", {"xml": disk_vm("b", "d1")})
    assert status == 409 and body["error"]["code"] == "volume_attached"
    status, body = await api.post("/vm", {"xml": disk_vm("b", "nosuch")})
    assert status == 422 and body["error"]["code"] == "unknown_volume"
    assert store.exists(store.paths.vm("b")) is None
    status, body = await api.post("/vm", {"xml": disk_vm("s1", "d2", shareable=True)})
    assert status == 201 and (await api.post("/vm", {"xml": disk_vm("s2", "d2",
                                                                        shareable=True)}))[0] == 201
    assert (await api.call("DELETE", "/volume/local/d1"))[0] == 409  # attached
    status, body = await api.post("/vm/s1", {"xml": disk_vm("s1", "d1")})
    assert status == 409 and body["error"]["code"] == "volume_attached"  # an XML change too
    assert store.exists(store.paths.volume_attachment("local", "d2")) is None  # shared
    assert (await api.call("DELETE", "/vm/a"))[0] == 200
    assert store.exists(store.paths.volume_attachment("local", "d1")) is None
    assert (await api.call("DELETE", "/volume/local/d1"))[0] == 202


async def test_a_vm_with_a_local_volume_moves_only_to_its_node(api: Api, store: Store) -> None:
    status, body = await api.post("/volume", volume("home", node="hv2"))
    assert status == 201
    assert (await api.post("/vm", {"xml": disk_vm("pinned", "home")}))[0] == 201
    status, body = await api.post("/vm/pinned/node", {"action": "move", "node": "hv1"})
    assert status == 400 and "volumes on local pools live on hv2" in body["error"]["message"]
    status, body = await api.post("/vm/pinned/node", {"action": "move"})  # the selector
    assert status == 200 and body["node"] == "hv2", body


async def test_a_vm_off_moves_with_its_local_volume_from_a_reachable_node(
        api: Api, store: Store) -> None:
    for name, size in (("home", "1G"), ("big", "6G")):
        assert (await api.post("/volume", volume(name, size, node="hv2")))[0] == 201
        assert (await api.post("/vm", {"xml": disk_vm(name, name)}))[0] == 201
    path = store.paths.node_status("hv2")  # hv2 publishes its libvirtd: hv1 can copy
    written = store.update(path, lambda d: {**d, "migrationUri": "qemu+tcp://hv2/system"})
    await seen(api, path, written.mzxid)
    status, body = await api.post("/vm/home/node", {"action": "move", "node": "hv1"})
    assert status == 200 and body["node"] == "hv1", body
    assert store.get(store.paths.volume("local", "home")).doc["spec"]["node"] == "hv2"
    status, body = await api.post("/vm/big/node", {"action": "move", "node": "hv1"})
    assert status == 400 and "need 6442450944 bytes in pool 'local'" in \
        body["error"]["message"], body  # hv1 has 5 GiB free
    assert store.get(store.paths.vm_placement("big")).doc.get("node") in (None, "hv2")


async def test_remove_with_delete_volumes_takes_the_vms_own_volumes(
        api: Api, store: Store) -> None:
    for name in ("own", "kept", "shared"):
        assert (await api.post("/volume", volume(name)))[0] == 201
    xml = disk_vm("w", "own").replace("</devices>", disk_vm("x", "shared", shareable=True)
                                      .split("<devices>")[1].split("</devices>")[0]
                                      .replace("vda", "vdz") + "</devices>")
    assert (await api.post("/vm", {"xml": xml}))[0] == 201, xml
    assert (await api.post("/vm", {"xml": disk_vm("k", "kept")}))[0] == 201
    status, _ = await api.call("DELETE", "/vm/w?delete_volumes=true")
    assert status == 200
    assert store.get(store.paths.volume("local", "own")).doc.get("deletion")
    assert not store.get(store.paths.volume("local", "shared")).doc.get("deletion")
    assert store.exists(store.paths.volume_attachment("local", "own")) is None
    assert (await api.call("DELETE", "/vm/k"))[0] == 200  # without: the volume stays
    assert not store.get(store.paths.volume("local", "kept")).doc.get("deletion")


@pytest.mark.parametrize(("disks", "copied", "shared"), [
    ((("local", "mine"),), ("vda",), False),  # copied along; nothing else
    ((("local", "mine"), ("nfs", "s")), ("vda",), True),  # the rest on a shared pool
    ((("nfs", "s"), ("ceph", "r")), (), True),
    ((("ceph", "r"),), (), False),  # rbd alone: libvirt trusts it already
    ((("local", "theirs"), ("nfs", "s")), (), False),  # another node's local volume
    ((("nfs", "s"), ("nosuch", "x")), (), False),  # a pool Herd does not know
])
def test_migration_disks_reads_what_a_live_migration_copies_and_trusts(
        store: Store, disks: tuple[tuple[str, str], ...], copied: tuple[str, ...],
        shared: bool) -> None:
    for name, kind in (("local", "local"), ("nfs", "shared"), ("ceph", "rbd")):
        store.create(store.paths.pool(name), {"spec": {"type": kind}}, makepath=True)
    for pool_name, name, node in (("local", "mine", "hv1"), ("local", "theirs", "hv2"),
                                  ("nfs", "s", "hv2"), ("ceph", "r", None)):
        store.create(store.paths.volume(pool_name, name), {"spec": {"node": node}},
                     makepath=True)
    xml = "<domain type='test'><name>m</name><devices>" + "".join(
        f"<disk type='volume'><source pool='{p}' volume='{v}'/><target dev='vd{chr(97 + i)}'/>"
        "</disk>" for i, (p, v) in enumerate(disks)) + "</devices></domain>"
    found = vols.migration_disks(store, xml, node="hv1")
    assert (found.copied, found.shared) == (copied, shared)
    plain = xml.replace("</devices>", "<disk type='file'><source file='/x.img'/>"
                        "<target dev='sdz'/></disk></devices>")
    assert not vols.migration_disks(store, plain, node="hv1").shared  # an unknown image
