"""herd-api when ZooKeeper goes away (503 with Retry-After, nothing written, back to 200
after it returns) and as a process (bad configuration exits 2 naming the key; serving,
then SIGTERM).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from server.keys import CACHE, STORE
from store.client import Store
from tests.integration.test_api import Api, api_server, xml
from tests.support.zkserver import ZooKeeperCluster

HERD_API = str(Path(sys.executable).with_name("herd-api"))


async def _suspended(api: Api) -> asyncio.Event:
    """An event set when the server's ZooKeeper session is suspended or lost."""
    loop, gone = asyncio.get_running_loop(), asyncio.Event()

    def listener(what: str) -> None:
        if what != "reconnected":
            loop.call_soon_threadsafe(gone.set)

    api.app[STORE].add_session_listener(listener)
    return gone


async def test_503_while_zookeeper_is_unreachable(zk_ensemble: ZooKeeperCluster,
                                                  tmp_path: Path) -> None:
    async with api_server(zk_ensemble.dsn, "/herd-faults", tmp_path) as api:
        await api.define("web1")
        gone = await _suspended(api)
        for index in range(3):
            zk_ensemble.kill(index)
        await asyncio.wait_for(gone.wait(), 30)
        for method, path, body in (("GET", "/vm", None), ("GET", "/vm/web1", None),
                                   ("POST", "/vm", {"xml": xml("web2")}),
                                   ("POST", "/vm/web1/state", {"state": "start"}),
                                   ("GET", "/status", None)):
            resp = await api.raw(method, path, body)
            assert resp.status == 503, (path, await resp.text())
            assert resp.headers["Retry-After"] == "5"
            assert (await resp.json())["error"]["code"] == "unavailable"
        resp = await api.raw("POST", "/vm", {"xml": "<broken"})
        assert resp.status in (422, 503)  # never a 500, never a write
        zk_ensemble.start()
        cache = api.app[CACHE]
        for informer in (cache.vms, cache.nodes, cache.config):
            assert await asyncio.to_thread(informer.wait_synced, 60)
        status, listing = await api.get("/vm")
        assert status == 200 and [v["metadata"]["name"] for v in listing["items"]] == ["web1"]
        assert (await api.get("/vm/web1/state"))[1]["desired"] == "stopped"
        assert (await api.post("/vm", {"xml": xml("web2")}))[0] == 201


def test_bad_configuration_exits_2_naming_the_key(tmp_path: Path, zk_hosts: str) -> None:
    config = tmp_path / "api.yaml"
    for text, key in ((f"zk_hosts: {zk_hosts}\nlisten_port: 99999\n", "listen_port"),
                      ("tls_cert: /nonexistent.pem\ntls_key: /nonexistent.key\n", "tls_cert"),
                      ("surprise: 1\n", "surprise"), ("- a list\n", "mapping")):
        config.write_text(text)
        done = subprocess.run([HERD_API, "--config", str(config)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("herd-api: config: ") and key in done.stderr, done.stderr
    done = subprocess.run([HERD_API, "--listen-port", "-1"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "listen_port" in done.stderr


async def test_serves_as_a_process_until_sigterm(tmp_path: Path, zk_hosts: str, zk_root: str,
                                                 store: Store) -> None:
    config = tmp_path / "api.yaml"
    config.write_text(f"zk-hosts: {zk_hosts}\nzk_root: {zk_root}\nlisten_port: 0\n"
                      "anonymous_reads: true\nlog_level: WARNING\n")
    proc = await asyncio.create_subprocess_exec(HERD_API, "--config", str(config),
                                                stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("herd-api: serving on http://127.0.0.1:"), line
        url = line.split()[-1]
        async with aiohttp.ClientSession() as session, \
                session.get(f"{url}/api/v1/status") as resp:
            assert resp.status == 200 and (await resp.json())["vms"]["total"] == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
