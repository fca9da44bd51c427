"""The domain XML policy through herd-api against a real ZooKeeper: every refused
construct is a 422 naming the element at define, PUT, modify and apply, with nothing
written; the cluster config's allowed paths admit disks; a VM stored before the policy
keeps working while its XML is unchanged. The named exceptions the cluster config allows
are for admin tokens only (`server.access._exceptions_allowed`): an operator's hostdev is
refused, an admin's is stored; the pure check is covered by
tests/unit/test_schemas_xmlpolicy.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from store.client import Store
from store.codec import Doc
from tests.integration.test_api import Api, api_server, xml
from tests.integration.test_api_roles import bearer, make_token
from tests.unit.test_schemas_xmlpolicy import REFUSED, domain

HOSTDEV = domain("<hostdev mode='subsystem' type='pci'/>")
SHADOW = "devices/disk/source: host path /etc/shadow is outside the allowed storage paths"


def named(xml_text: str, name: str) -> str:
    return xml_text.replace("<name>vm</name>", f"<name>{name}</name>")


def vm(name: str, xml_text: str, **spec: Any) -> Doc:
    return {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name},
            "spec": {"xml": named(xml_text, name), **spec}}


def disk(path: str) -> str:
    return domain(f"<disk type='file' device='disk'><source file='{path}'/></disk>")


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


def messages(body: Any, *path: str | int) -> list[str]:
    found = body["error"]["details"]
    for key in path:
        found = found[str(key)] if isinstance(key, int) else found[key]
    return list(found)


async def test_every_refused_construct_is_a_422_naming_it_and_nothing_is_written(
        api: Api, store: Store) -> None:
    for index, (xml_text, message, _exception) in enumerate(REFUSED):
        status, body = await api.post("/vm", {"xml": named(xml_text, f"bad{index}")})
        assert status == 422, (message, body)
        assert any(m.startswith(message) for m in messages(body, "xml")), (message, body)
    assert store.children(store.paths.vms) == []


async def test_put_modify_and_apply_refuse_before_writing(api: Api, store: Store) -> None:
    await api.define("web1")
    before = store.get(store.paths.vm("web1"))
    status, body = await api.call("PUT", "/vm/web1", vm("web1", disk("/etc/shadow")))
    assert status == 422 and messages(body, "spec", "xml")[0].startswith(SHADOW)
    status, body = await api.post("/vm/web1", {"xml": named(HOSTDEV, "web1")})
    assert status == 422 and messages(body, "xml")[0].startswith("devices/hostdev:")
    status, body = await api.post("/apply", {"objects": [
        vm("web1", xml("web1", mem=128)), vm("new1", xml("new1")), vm("new2", HOSTDEV)]})
    assert status == 422 and messages(body, "objects", 2, "spec", "xml")[0].startswith(
        "devices/hostdev:")
    status, body = await api.call("PUT", "/vm/new3", vm("new3", HOSTDEV))
    assert status == 422 and "devices/hostdev" in messages(body, "spec", "xml")[0]
    assert store.children(store.paths.vms) == ["web1"]
    assert store.get(store.paths.vm("web1")).mzxid == before.mzxid


async def test_allowed_disk_paths_from_the_cluster_config(
        zk_hosts: str, zk_root: str, tmp_path: Path, store: Store) -> None:
    store.update(store.paths.config, lambda d: {**d, "xmlPolicy": {
        "allow": ["hostdev"], "diskPaths": ["/var/lib/herd"]}})
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        status, body = await api.post("/vm", {"xml": named(disk("/var/lib/herd/a.img"), "a")})
        assert status == 201, body
        status, body = await api.post("/vm/a", {"xml": named(disk("/etc/shadow"), "a")})
        assert status == 422 and messages(body, "xml")[0].startswith(SHADOW)
        # `allow` names hostdev: an operator still may not use it, an admin may
        operator = bearer(await make_token(api, "ops", "operator"))
        status, body = await api.post("/vm", {"xml": named(HOSTDEV, "b")}, headers=operator)
        assert status == 422 and messages(body, "xml")[0].startswith("devices/hostdev:")
        assert store.children(store.paths.vms) == ["a"]
        status, body = await api.post("/vm", {"xml": named(HOSTDEV, "b")})  # the admin's
        assert status == 201, body
    assert store.children(store.paths.vms) == ["a", "b"]
    assert "/var/lib/herd/a.img" in store.get(store.paths.vm("a")).doc["spec"]["xml"]


async def test_a_vm_stored_before_the_policy_works_while_its_xml_is_unchanged(
        api: Api, store: Store) -> None:
    await api.define("old")
    legacy = named(HOSTDEV, "old")
    written = store.update(store.paths.vm("old"),
                           lambda d: {**d, "spec": {**d["spec"], "xml": legacy}})
    assert (await api.post("/vm/old", {"state": "running", "xml": legacy}))[0] == 200
    spec = {k: v for k, v in written.doc["spec"].items() if k not in ("state", "xml")}
    status, body = await api.call("PUT", "/vm/old", vm("old", legacy, **spec, state="stopped"))
    assert status == 200 and body["spec"]["state"] == "stopped", body
    status, body = await api.post("/apply", {"objects": [vm("old", legacy, **spec)]})
    assert status == 200, body
    status, body = await api.post("/vm/old", {"xml": xml("old")})  # a safe XML is fine
    assert status == 200 and "hostdev" not in store.get(store.paths.vm("old")).doc["spec"]["xml"]
