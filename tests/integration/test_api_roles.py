"""Roles, managed tokens and the audit trail against a real ZooKeeper: a viewer cannot
start a VM, an operator cannot change the cluster config nor make a token, tokens made,
listed and revoked through the API (a revoked token refused by another herd-api too),
only the hash in ZooKeeper, and every write in the event log with the token's name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from server.audit import AUDITOR, Auditor
from server.metrics import audit_families
from server.tokens import REGISTRY
from store.client import Store
from store.tokens import hash_secret
from tests.integration.test_api import Api, api_server, xml


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def make_token(api: Api, name: str, role: str) -> str:
    status, body = await api.post("/token", {"name": name, "role": role})
    assert status == 201, body
    assert body["name"] == name and body["role"] == role
    return str(body["secret"])


async def test_a_viewer_reads_but_cannot_start_a_vm(zk_hosts: str, zk_root: str,
                                                     tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        await api.define("web1")
        viewer = bearer(await make_token(api, "ro", "viewer"))
        before = store.get(store.paths.vm("web1"))
        assert (await api.get("/vm/web1", headers=viewer))[0] == 200
        status, err = await api.post("/vm/web1/state", {"state": "start"}, headers=viewer)
        assert status == 403 and err["error"]["code"] == "forbidden"
        assert "needs the role operator" in err["error"]["message"]
        assert "'ro' has the role viewer" in err["error"]["message"]
        assert err["error"]["details"] == {"needed": "operator", "role": "viewer"}
        status, _ = await api.post("/vm", {"xml": xml("web2")}, headers=viewer)
        assert status == 403
        assert store.get(store.paths.vm("web1")).mzxid == before.mzxid
    assert store.children(store.paths.vms) == ["web1"]


async def test_an_operator_runs_vms_but_cannot_change_config_or_tokens(
        zk_hosts: str, zk_root: str, tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        operator = bearer(await make_token(api, "ops", "operator"))
        assert (await api.post("/vm", {"xml": xml("web1")}, headers=operator))[0] == 201
        status, _ = await api.post("/vm/web1/state", {"state": "start"}, headers=operator)
        assert status == 200
        config = store.get(store.paths.config)
        status, err = await api.post("/config", {"maintenance": True}, headers=operator)
        assert status == 403 and "needs the role admin" in err["error"]["message"]
        status, err = await api.post("/token", {"name": "mine", "role": "admin"},
                                     headers=operator)
        assert status == 403 and "needs the role admin" in err["error"]["message"]
        assert (await api.get("/token", headers=operator))[0] == 403
        assert store.get(store.paths.config).mzxid == config.mzxid
        assert store.children(store.paths.tokens) == ["ops"]
        status, body = await api.post("/config", {"maintenance": True})  # the file: admin
        assert status == 200 and body["maintenance"] is True
        assert store.get(store.paths.config).doc["maintenance"] is True
        status, err = await api.post("/config", {"shutdownTimeout": "soon"})
        assert status == 422 and "shutdownTimeout" in err["error"]["details"]


async def test_tokens_made_listed_and_revoked_on_every_server(
        zk_hosts: str, zk_root: str, tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path / "a") as a, \
            api_server(zk_hosts, zk_root, tmp_path / "b") as b:
        secret = await make_token(a, "ci", "operator")
        token = bearer(secret)
        assert await b.app[REGISTRY].settled(lambda: b.app[REGISTRY].named("ci") is not None)
        assert (await b.get("/vm", headers=token))[0] == 200
        assert await a.app[REGISTRY].settled(  # the use is recorded, in the background
            lambda: (r := a.app[REGISTRY].named("ci")) is not None and r.last_used is not None)
        assert (await a.post("/token", {"name": "ci", "role": "viewer"}))[0] == 409
        assert (await a.post("/token", {"name": "x", "role": "root"}))[0] == 422

        status, listed = await a.get("/token")
        assert status == 200 and listed["count"] == 1
        (item,) = listed["items"]
        assert set(item) == {"name", "role", "created", "lastUsed"}
        assert item["name"] == "ci" and item["role"] == "operator"
        assert item["lastUsed"] >= item["created"]

        raw = store.client.get(store.paths.token("ci"))[0]
        assert secret.encode() not in raw
        assert store.get(store.paths.token("ci")).doc["hash"] == hash_secret(secret)

        status, body = await a.call("DELETE", "/token/ci")
        assert status == 200 and body == {"name": "ci", "revoked": True}
        assert (await a.get("/vm", headers=token))[0] == 401
        assert await b.app[REGISTRY].settled(lambda: b.app[REGISTRY].named("ci") is None)
        assert (await b.get("/vm", headers=token))[0] == 401
        assert (await a.call("DELETE", "/token/ci"))[0] == 404
        assert store.children(store.paths.tokens) == []


async def _audit(api: Api, **query: Any) -> list[dict[str, Any]]:
    await api.app[AUDITOR].drain()
    status, body = await api.get("/event", params={"kind": "audit", **query})
    assert status == 200
    return list(body["items"])


async def test_every_write_is_audited_with_the_token_name(
        zk_hosts: str, zk_root: str, tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        ops = bearer(await make_token(api, "ops", "operator"))
        viewer = bearer(await make_token(api, "ro", "viewer"))
        assert (await api.post("/vm", {"xml": xml("web1")}, headers=ops))[0] == 201
        assert (await api.post("/vm/web1/state", {"state": "start"}, headers=viewer))[0] == 403
        assert (await api.get("/vm/web1", headers=ops))[0] == 200  # a read: not audited
        assert (await api.post("/vm", {"xml": xml("x")}, headers=bearer("nope")))[0] == 401
        seen = [(e["token"], e["role"], e["method"], e["route"], e["object"], e["status"])
                for e in await _audit(api)]
        assert seen == [
            ("file:test", "admin", "POST", "/api/v1/token", "token/ops", 201),
            ("file:test", "admin", "POST", "/api/v1/token", "token/ro", 201),
            ("ops", "operator", "POST", "/api/v1/vm", "vm/web1", 201),
            ("ro", "viewer", "POST", "/api/v1/vm/{vm}/state", "vm/web1", 403),
        ]
        assert [e["token"] for e in await _audit(api, vm="web1")] == ["ops", "ro"]
        stored = [store.get(f"{store.paths.audit}/{n}").doc
                  for n in store.children(store.paths.audit)]
        assert [d["token"] for d in stored if d["kind"] == "audit"] == \
            ["file:test", "file:test", "ops", "ro"]
        assert all(h["Authorization"][7:] not in str(stored) for h in (ops, viewer))


async def test_an_audit_record_that_cannot_be_written_is_reported_not_dropped(
        zk_hosts: str, zk_root: str, caplog: pytest.LogCaptureFixture) -> None:
    auditor = Auditor(Store(zk_hosts, zk_root), retry_cap=0.05)  # never connected: refused
    auditor.start()
    auditor.record({"time": 1.0, "kind": "audit", "message": "POST /api/v1/vm", "token": "ops"})
    with caplog.at_level(logging.ERROR, logger="server.audit"):
        await auditor.stop(timeout=2.0)
    assert (auditor.written, auditor.lost) == (0, 1)
    assert any("audit record LOST" in r.getMessage() and '"token": "ops"' in r.getMessage()
               for r in caplog.records)
    lost = {f.name: f.samples[0].value for f in audit_families(auditor)}["herd_api_audit_lost"]
    assert lost == 1


async def test_anonymous_reads_are_a_viewer_s(zk_hosts: str, zk_root: str,
                                              tmp_path: Path) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path, anonymous_reads=True) as api:
        assert (await api.get("/config", headers={}))[0] == 200
        status, err = await api.get("/token", headers={})
        assert status == 403 and "needs the role admin" in err["error"]["message"]
        assert "anonymous requests are viewers" in err["error"]["message"]
