"""herd-api against a real ZooKeeper through aiohttp's test client: the VM object's
endpoints (define, get, list, modify, meta, PUT, delete, rename), the error contract, the
OpenAPI document, metrics and the cluster status. `api_server` and `Api` are shared by the
other test_api* modules; nodes are played by the tests (they write node and VM status).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from server.app import make_app
from server.auth import create_token
from server.config import ServerConfig
from server.keys import CACHE
from store.client import Store

XML = "<domain type='test'><name>{name}</name><memory unit='MiB'>{mem}</memory>" \
      "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"


def xml(name: str, mem: int = 64) -> str:
    return XML.format(name=name, mem=mem)


class Api:
    """A test client with a token; every call answers (status, parsed JSON body)."""

    def __init__(self, client: TestClient[Any, Any], app: web.Application, token: str) -> None:
        self.client = client
        self.app = app
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None, *,
                   headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
        resp = await self.raw(method, path, body, headers=headers, **kw)
        text = await resp.text()
        data = json.loads(text) if resp.content_type == "application/json" else text
        return resp.status, data

    async def raw(self, method: str, path: str, body: Any = None, *,
                  headers: dict[str, str] | None = None, **kw: Any) -> ClientResponse:
        hdrs = self.headers if headers is None else headers
        if body is not None:
            kw["data"] = body if isinstance(body, bytes | str) else json.dumps(body)
        return await self.client.request(method, "/api/v1" + path, headers=hdrs, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    async def define(self, name: str, **fields: Any) -> dict[str, Any]:
        status, body = await self.post("/vm", {"xml": xml(name), **fields})
        assert status == 201, body
        return dict(body)


def _token_file(folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "tokens", create_token(folder / "tokens", label="test")


@asynccontextmanager
async def api_server(zk_hosts: str, zk_root: str, tmp_path: Path,
                     **config: Any) -> AsyncIterator[Api]:
    """A started herd-api app (its own token file) and a client holding a valid token."""
    tokens, token = _token_file(tmp_path)
    cfg = ServerConfig(zk_hosts=zk_hosts, zk_root=zk_root, token_file=tokens, zk_timeout=5.0,
                       **config)
    app = make_app(cfg)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Api(client, app, token)
    finally:
        await client.close()


async def seen(api: Api, path: str, mzxid: int | None) -> None:
    """Return once the server's cache has `path` at `mzxid` or newer (None: path gone)."""
    cache = api.app[CACHE]
    parts = cache.store.paths.split(path)
    informer = cache.vms if parts[0] == "vms" else cache.nodes
    key = ("VM" if parts[0] == "vms" else "Node", parts[1])

    def check() -> bool | None:
        v = informer.get(path)
        done = v is None if mzxid is None else (v is not None and v.mzxid >= mzxid)
        return True if done else None

    assert await cache.wait_for(key, check, timeout=10), f"the server never saw {path}"


async def play_node(api: Api, store: Store, name: str, *, mem_free: int = 4096,
                    ready: bool = True, alive: bool = True, coordinator: bool = False) -> None:
    """Register a node as its daemon would: object, status with resources, alive."""
    p = store.paths
    store.create(p.node(name), {"apiVersion": "herd/v1", "kind": "Node",
                                "metadata": {"name": name},
                                "spec": {"domainState": "ready" if ready else "flushed",
                                         "coordinator": coordinator, "fence": "auto"}})
    store.create(p.node_status(name), {
        "daemonState": "run", "domainState": "ready" if ready else "flushed",
        "resources": {"memTotal": 8192, "memFree": mem_free, "memUsed": 8192 - mem_free,
                      "memAlloc": 0, "memProv": 0, "vcpuTotal": 4, "vcpuAlloc": 0,
                      "load": 0.0, "vms": 0},
        "heartbeat": 1.0, "version": "test"})
    if alive:
        store.create(p.node_alive(name), {"pid": 1}, ephemeral=True)
    await seen(api, p.node_alive(name) if alive else p.node_status(name),
               store.get(p.node_status(name)).mzxid)


async def write_status(api: Api, store: Store, vm: str, **fields: Any) -> None:
    """Play the node responsible for `vm`: merge `fields` into its status (the server sees
    it when this returns)."""
    path = store.paths.vm_status(vm)
    written = store.update(path, lambda doc: {**doc, **fields})
    await seen(api, path, written.mzxid)


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


# --- define, get, list -------------------------------------------------------------------------

async def test_define_then_get_shows_metadata_and_znodes(api: Api, store: Store) -> None:
    await play_node(api, store, "hv2")  # a VM may name only a node the cluster has
    body = await api.define("web1", limits=["hv1", "hv2"], selector="vms", autorestart=True,
                            migration_method="shutdown", node="hv2", shutdown_timeout=30,
                            migration_max_downtime=50)
    assert body["metadata"]["name"] == "web1" and body["metadata"]["generation"] == 1
    assert body["spec"]["meta"] == {"limits": ["hv1", "hv2"], "selector": "vms",
                                    "autorestart": True, "migrationMethod": "shutdown",
                                    "migrationMaxDowntime": 50}
    assert body["placement"]["node"] == "hv2" and body["status"]["state"] == "stopped"
    status, got = await api.get("/vm/web1")
    assert status == 200 and got == body
    assert got["metadata"]["resourceVersion"] == str(store.get(store.paths.vm("web1")).mzxid)
    assert store.get(store.paths.vm_placement("web1")).doc["node"] == "hv2"
    status, meta = await api.get("/vm/web1/meta")
    assert meta == {"name": "web1", "limits": ["hv1", "hv2"], "selector": "vms",
                    "autorestart": True, "migration_method": "shutdown", "shutdown_timeout": 30,
                    "migration_max_downtime": 50, "max_restart": 1, "max_relocate": 1,
                    "resourceVersion": got["metadata"]["resourceVersion"]}


async def test_list_filters_and_leaves_xml_out_unless_asked(api: Api, store: Store) -> None:
    for node in ("hv1", "hv2"):
        await play_node(api, store, node)
    for name in ("web1", "web2", "db1"):
        await api.define(name, node="hv1" if name != "db1" else "hv2")
    await write_status(api, store, "web2", state="running", node="hv1")
    status, listing = await api.get("/vm")
    assert status == 200 and listing["count"] == 3
    assert [v["metadata"]["name"] for v in listing["items"]] == ["db1", "web1", "web2"]
    assert all("xml" not in v["spec"] for v in listing["items"])
    _, with_xml = await api.get("/vm", params={"xml": "true", "limit": "web"})
    assert [v["spec"]["xml"].count("<domain") for v in with_xml["items"]] == [1, 1]
    _, by_node = await api.get("/vm", params={"node": "hv2"})
    assert [v["metadata"]["name"] for v in by_node["items"]] == ["db1"]
    _, by_state = await api.get("/vm", params={"state": "running"})
    assert [v["metadata"]["name"] for v in by_state["items"]] == ["web2"]
    _, by_regex = await api.get("/vm", params={"limit": "^web[2-9]$"})
    assert [v["metadata"]["name"] for v in by_regex["items"]] == ["web2"]
    status, bad = await api.get("/vm", params={"limit": "(", "state": "sleepy"})
    assert status == 422 and set(bad["error"]["details"]) == {"limit", "state"}


async def test_list_entry_follows_changes(api: Api, store: Store) -> None:
    await api.define("web1")
    _, first = await api.get("/vm")
    await write_status(api, store, "web1", state="failed")
    await api.post("/vm/web1/meta", {"selector": "load"})  # settles after its own write
    _, second = await api.get("/vm")
    assert first["items"][0]["status"]["state"] == "stopped"
    assert second["items"][0]["status"]["state"] == "failed"
    assert second["items"][0]["spec"]["meta"]["selector"] == "load"


# --- modify ------------------------------------------------------------------------------------

async def test_meta_changes_only_the_fields_given(api: Api, store: Store) -> None:
    await api.define("web1", limits=["hv1", "hv2"], selector="mem", autorestart=True,
                     migration_method="live")
    status, meta = await api.post("/vm/web1/meta", {"autorestart": False})
    assert status == 200
    assert (meta["limits"], meta["selector"], meta["autorestart"], meta["migration_method"]) == \
        (["hv1", "hv2"], "mem", False, "live")
    stored = store.get(store.paths.vm("web1")).doc
    assert stored["spec"]["meta"] == {"limits": ["hv1", "hv2"], "selector": "mem",
                                      "autorestart": False, "migrationMethod": "live"}
    assert stored["metadata"]["generation"] == 2
    status, meta = await api.post("/vm/web1/meta", {"limits": "hv3,hv4", "shutdown_timeout": 60})
    assert meta["limits"] == ["hv3", "hv4"] and meta["shutdown_timeout"] == 60
    assert meta["selector"] == "mem" and meta["autorestart"] is False
    status, _same = await api.post("/vm/web1/meta", {"limits": ["hv3", "hv4"]})
    assert store.get(store.paths.vm("web1")).doc["metadata"]["generation"] == 3


async def test_modify_vm_changes_given_fields_and_checks_limits(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await api.define("web1", limits=["hv1"], node="hv1", selector="vms")
    status, body = await api.post("/vm/web1", {"xml": xml("web1", mem=128), "state": "running"})
    assert status == 200 and "128" in body["spec"]["xml"] and body["spec"]["state"] == "running"
    assert body["spec"]["meta"]["selector"] == "vms" and body["metadata"]["generation"] == 2
    status, err = await api.post("/vm/web1", {"node": "hv9"})
    assert status == 400 and "outside" in err["error"]["message"]
    assert "node" in err["error"]["details"]
    status, err = await api.post("/vm/web1", {"name": "other", "selector": "mem"})
    assert status == 422 and "name" in err["error"]["details"]
    assert store.get(store.paths.vm("web1")).doc["spec"]["meta"]["selector"] == "vms"


async def test_define_refuses_a_node_outside_the_limits_and_writes_nothing(
        api: Api, store: Store) -> None:
    status, err = await api.post("/vm", {"xml": xml("web1"), "node": "hv3",
                                         "limits": ["hv1", "hv2"]})
    assert status == 400 and err["error"]["details"]["node"]
    assert store.exists(store.paths.vm("web1")) is None
    await api.define("web1")
    status, err = await api.post("/vm", {"xml": xml("web1")})
    assert status == 409 and err["error"]["code"] == "conflict"


# --- PUT -------------------------------------------------------------------------------------

async def test_put_replaces_and_refuses_a_stale_resource_version(api: Api, store: Store) -> None:
    vm = await api.define("web1")
    rv = vm["metadata"]["resourceVersion"]
    vm["spec"]["state"] = "running"
    vm["metadata"]["labels"] = {"tier": "web"}
    status, body = await api.call("PUT", "/vm/web1", vm)  # status/placement are ignored
    assert status == 200 and body["spec"]["state"] == "running"
    assert body["metadata"]["generation"] == 2 and body["metadata"]["labels"] == {"tier": "web"}
    vm["metadata"]["resourceVersion"] = rv  # stale now
    vm["spec"]["state"] = "disabled"
    status, err = await api.call("PUT", "/vm/web1", vm)
    assert status == 409 and err["error"]["code"] == "conflict"
    assert store.get(store.paths.vm("web1")).doc["spec"]["state"] == "running"
    vm["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
    status, body = await api.call("PUT", "/vm/web1", vm)
    assert status == 200 and body["spec"]["state"] == "disabled"


async def test_put_creates_checks_the_name_and_keeps_restart_count(api: Api,
                                                                   store: Store) -> None:
    doc = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "web2"},
           "spec": {"xml": xml("web2"), "restartRequest": 3}}
    status, body = await api.call("PUT", "/vm/web2", doc)
    assert status == 201 and body["placement"] is not None
    doc["spec"] = {"xml": xml("web2")}  # restartRequest left out: it never goes down
    status, body = await api.call("PUT", "/vm/web2", doc)
    assert body["spec"]["restartRequest"] == 3
    status, err = await api.call("PUT", "/vm/other", doc)
    assert status == 400 and "metadata" in err["error"]["details"]
    status, err = await api.call("PUT", "/vm/web2", {**doc, "metadata": {
        "name": "web2", "resourceVersion": "abc"}})
    assert status == 422
    status, err = await api.call("PUT", "/vm/web3", {**doc, "spec": {"xml": xml("web3")},
                                                     "metadata": {"name": "web3",
                                                                  "resourceVersion": "12"}})
    assert status == 409 and store.exists(store.paths.vm("web3")) is None


# --- delete, rename ----------------------------------------------------------------------------

async def test_delete_needs_a_stopped_vm_unless_forced(api: Api, store: Store) -> None:
    await api.define("web1")
    await api.define("web2")
    await write_status(api, store, "web1", state="running", node="hv1")
    status, err = await api.call("DELETE", "/vm/web1")
    assert status == 409 and err["error"]["details"]["state"] == "running"
    assert store.exists(store.paths.vm("web1")) is not None
    status, body = await api.call("DELETE", "/vm/web1", params={"force": "true"})
    assert status == 200 and body == {"name": "web1", "deleted": True}
    assert store.exists(store.paths.vm("web1")) is None
    status, _ = await api.get("/vm/web1")
    assert status == 404
    store.create(store.paths.vm_owner("web2"), {"node": "hv1"}, ephemeral=True)
    status, err = await api.call("DELETE", "/vm/web2")
    assert status == 409 and err["error"]["details"]["owner"] == "hv1"
    store.delete(store.paths.vm_owner("web2"))
    status, _ = await api.call("DELETE", "/vm/web2")
    assert status == 200 and store.children(store.paths.vms) == []
    status, _ = await api.call("DELETE", "/vm/web2")
    assert status == 404


async def test_rename_moves_the_whole_vm(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await api.define("web1", limits=["hv1"], node="hv1")
    await api.define("web2")
    status, body = await api.post("/vm/web1/rename", {"new_name": "web3"})
    assert status == 200 and body["metadata"]["name"] == "web3"
    assert "<name>web3</name>" in body["spec"]["xml"] and body["placement"]["node"] == "hv1"
    assert store.exists(store.paths.vm("web1")) is None
    assert (await api.get("/vm/web1"))[0] == 404
    status, err = await api.post("/vm/web3/rename", {"new_name": "web2"})
    assert status == 409
    await write_status(api, store, "web3", state="running", node="hv1")
    status, err = await api.post("/vm/web3/rename", {"new_name": "web4"})
    assert status == 409 and err["error"]["code"] == "refused"
    assert (await api.post("/vm/nope/rename", {"new_name": "web5"}))[0] == 404
    assert (await api.post("/vm/web3/rename", {"new_name": "web3"}))[0] == 400


# --- the error contract ----------------------------------------------------------------------

async def test_bad_input_gets_field_details_and_writes_nothing(api: Api, store: Store) -> None:
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/vm", {"xml": "<domain"}, 422),
        ("POST", "/vm", {"xml": xml("a"), "selector": "fast", "limits": ["BAD"]}, 422),
        ("POST", "/vm", {"xml": xml("a"), "surprise": 1}, 422),
        ("POST", "/vm", b"{not json", 400),
        ("POST", "/vm", b"", 400),
        ("POST", "/vm", [1, 2], 422),
        ("POST", "/vm/a/state", {"state": "explode"}, 422),
        ("POST", "/apply", {"objects": [{"kind": "VM"}]}, 422),
        ("GET", "/vm/Bad_Name", None, 422),
    ]
    for method, path, body, want in cases:
        status, err = await api.call(method, path, body)
        assert status == want, (path, body, err)
        assert set(err["error"]) == {"code", "message", "details"}
    status, err = await api.post("/vm", {"xml": xml("a"), "selector": "fast"})
    assert err["error"]["details"]["selector"] == [
        "Invalid selector 'fast'; must be one of: mem, memprov, load, vcpus, vms, none."]
    assert store.children(store.paths.vms) == []


async def test_unknown_things_are_404_with_the_error_body(api: Api) -> None:
    for path in ("/vm/nope", "/vm/nope/meta", "/vm/nope/state", "/vm/nope/node",
                 "/node/nope", "/node/nope/domain-state", "/nothing/here"):
        status, err = await api.get(path)
        assert status == 404 and err["error"]["code"] == "not_found", path
    for path, body in (("/vm/nope", {"selector": "mem"}), ("/vm/nope/meta", {"selector": "mem"}),
                       ("/vm/nope/state", {"state": "start"}),
                       ("/vm/nope/node", {"action": "move", "node": "hv1"}),
                       ("/node/nope/domain-state", {"state": "flush"})):
        status, err = await api.post(path, body)
        assert status == 404, (path, err)
    status, err = await api.call("PATCH", "/vm/nope", {})
    assert status == 405 and err["error"]["code"] == "method_not_allowed"


async def test_body_over_the_limit_is_413(zk_hosts: str, zk_root: str, tmp_path: Path,
                                          store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path, max_body_bytes=4096) as api:
        status, err = await api.post("/vm", {"xml": xml("big") + " " * 5000})
        assert status == 413 and err["error"]["code"] == "too_large"
        status, _ = await api.post("/vm", {"xml": xml("small")})
        assert status == 201
    assert store.children(store.paths.vms) == ["small"]


# --- documents ---------------------------------------------------------------------------------

async def test_openapi_document_lists_every_route(api: Api) -> None:
    status, doc = await api.get("/openapi.json")
    assert status == 200 and doc["openapi"] == "3.0.3"
    paths = doc["paths"]
    assert set(paths["/api/v1/vm/{vm}"]) == {"get", "post", "put", "delete"}
    define = paths["/api/v1/vm"]["post"]
    assert define["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VMDefineRequest"}
    schemas = doc["components"]["schemas"]
    assert schemas["VMDefineRequest"]["properties"]["selector"]["enum"][0] == "mem"
    assert schemas["VMDefineRequest"]["additionalProperties"] is False
    assert "ErrorBody" in schemas and "404" in paths["/api/v1/vm/{vm}"]["get"]["responses"]


async def test_metrics_and_status(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await api.define("web1")
    await api.define("web2")
    await write_status(api, store, "web2", state="running", node="hv1")
    await api.get("/vm/web1")
    await api.get("/vm/nope")
    _, summary = await api.get("/status")
    assert summary["vms"]["total"] == 2 and summary["vms"]["state"] == {"stopped": 1,
                                                                          "running": 1}
    assert summary["nodes"] == {"total": 1, "alive": 1, "daemonState": {"run": 1},
                                "domainState": {"ready": 1}}
    assert summary["primary"] is None
    resp = await api.raw("GET", "/metrics")
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert 'herd_api_requests_total{method="GET",route="/api/v1/vm/{vm}",status="200"} 1.0' in text
    assert 'herd_api_requests_total{method="GET",route="/api/v1/vm/{vm}",status="404"} 1.0' in text
    assert 'herd_api_requests_total{method="POST",route="/api/v1/vm",status="201"} 2.0' in text
    assert 'herd_vms{state="running"} 1.0' in text
    assert 'herd_nodes{daemon_state="run",domain_state="ready"} 1.0' in text
    assert 'herd_api_request_duration_seconds_count{method="POST",route="/api/v1/vm"} 2.0' in text


@pytest.mark.parametrize("count", [3])
async def test_two_servers_serve_one_cluster(zk_hosts: str, zk_root: str, tmp_path: Path,
                                             count: int) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path / "a") as one, \
            api_server(zk_hosts, zk_root, tmp_path / "b") as two:
        for i in range(count):
            await one.define(f"vm{i}")
        await two.post("/vm/vm0/meta", {"selector": "vms"})
        _, meta = await one.get("/vm/vm0/meta")
        assert meta["selector"] in ("vms", "none")  # another server: eventually consistent
        _, listing = await two.get("/vm")
        assert listing["count"] == count
