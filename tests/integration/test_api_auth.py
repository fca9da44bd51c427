"""herd-api's security against a real ZooKeeper: bearer tokens (401 without or with a bad
one, 403 for an anonymous write, anonymous reads only when configured), `herd-api token
create`, and TLS.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from server.app import make_app, ssl_context
from server.auth import TOKENS, create_token, hash_token, read_hashes
from server.config import ServerConfig
from store.client import Store
from tests.integration.test_api import api_server, xml

HERD_API = str(Path(sys.executable).with_name("herd-api"))


async def test_tokens_are_required(zk_hosts: str, zk_root: str, tmp_path: Path,
                                   store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        bad = {"Authorization": "Bearer nope"}
        for headers in ({}, bad, {"Authorization": "Basic abc"}):
            status, err = await api.get("/vm", headers=headers)
            assert status == 401 and err["error"]["code"] == "unauthorized"
            resp = await api.raw("POST", "/vm", {"xml": xml("a")}, headers=headers)
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await api.get("/vm"))[0] == 200
        assert (await api.get("/status", headers={"Authorization": "bearer " + api.token}))[0] \
            == 200
    assert store.children(store.paths.vms) == []


async def test_anonymous_reads_when_allowed_but_never_writes(zk_hosts: str, zk_root: str,
                                                             tmp_path: Path,
                                                             store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path, anonymous_reads=True) as api:
        assert (await api.get("/vm", headers={}))[0] == 200
        assert (await api.get("/openapi.json", headers={}))[0] == 200
        status, err = await api.post("/vm", {"xml": xml("a")}, headers={})
        assert status == 403 and err["error"]["code"] == "forbidden"
        status, _ = await api.get("/vm", headers={"Authorization": "Bearer wrong"})
        assert status == 401
        assert (await api.post("/vm", {"xml": xml("a")}))[0] == 201
    assert store.children(store.paths.vms) == ["a"]


def test_token_create_appends_a_hash_and_prints_the_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    done = [subprocess.run([HERD_API, "token", "create", "--token-file", str(tokens),
                            "--label", "ci"], capture_output=True, text=True, timeout=60,
                           check=True) for _ in range(2)]
    printed = [d.stdout.strip() for d in done]
    assert len(set(printed)) == 2 and all(len(t) >= 40 for t in printed)
    assert read_hashes(tokens) == {hash_token(t) for t in printed}
    assert all(t not in tokens.read_text() for t in printed)
    assert tokens.stat().st_mode & 0o777 == 0o600


async def test_a_token_created_while_serving_works(zk_hosts: str, zk_root: str,
                                                   tmp_path: Path) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        api.app[TOKENS].recheck_seconds = 0.0  # look at every request
        new = create_token(tmp_path / "tokens")
        status, _ = await api.get("/vm", headers={"Authorization": f"Bearer {new}"})
        assert status == 200


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


async def test_tls(zk_hosts: str, zk_root: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = ServerConfig(zk_hosts=zk_hosts, zk_root=zk_root, tls_cert=cert, tls_key=key,
                          anonymous_reads=True)
    runner = web.AppRunner(make_app(config))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context(config))
        await site.start()
        port = runner.addresses[0][1]
        trust = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/api/v1/status", ssl=trust) as r:
                assert r.status == 200 and "vms" in await r.json()
            try:
                async with session.get(f"http://127.0.0.1:{port}/api/v1/status") as r:
                    assert r.status >= 400
            except aiohttp.ClientError:
                pass  # plain HTTP on a TLS port fails one way or the other
    finally:
        await runner.cleanup()
