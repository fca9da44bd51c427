"""herd-node's /metrics over HTTP (issue #16), against a real ZooKeeper and libvirt's test
driver with many domains: one bulk stats call per scrape, a series for every domain, the
node's published figures, and exactly the families `reconciler.metrics.METRIC_NAMES` says.

The domains are in the test driver's node file (running, unknown to Herd: the daemon leaves
them alone), so making a thousand costs nothing. libvirt's test driver reports only the
state of a domain (no CPU, balloon, disk or interface figures), so the per-VM series seen
here are CPU seconds (0) and the domains by state; the parser and renderer of the other
figures are tested in tests/unit/test_node_metrics_render.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.config import NodeConfig
from reconciler.daemon import NodeDaemon
from reconciler.metrics import METRIC_NAMES
from store import nodekeys
from store.informer import Change
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file

NODE = "hv1"
DOMAINS = 1000
MEMORY_MIB = 4 << 20  # 4 TiB: room for a thousand 512 MiB test guests


@pytest.fixture
async def node(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Daemon]:
    uri = write_node_file(tmp_path, NODE, cpus=64, memory_mib=MEMORY_MIB, domains=[
        simple_domain_xml(f"g{i:04d}") for i in range(DOMAINS)])
    config = NodeConfig(name=NODE, zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=5.0,
                        libvirt_uri=uri, coordinator=False, address=None,
                        initial_domain_state="ready", status_interval=1.0,
                        resync_interval=300.0, workers=4, log_level="INFO",
                        metrics_address="127.0.0.1:0",
                        console_log_dir=str(tmp_path / "console"))
    running = Daemon(config)
    await running.start()
    yield running
    await running.stop()
    await running.close()


async def status_cached(daemon: NodeDaemon) -> None:
    """Until the daemon's node cache holds its own published status (an informer event)."""
    path = daemon.store.paths.node_status(NODE)
    loop, seen = asyncio.get_running_loop(), asyncio.Event()

    def on_change(change: Change) -> None:
        if change.path == path and change.new is not None:
            loop.call_soon_threadsafe(seen.set)

    unsubscribe = daemon.nodes.subscribe(on_change)
    try:
        if daemon.nodes.get(path) is None:
            await asyncio.wait_for(seen.wait(), 30)
    finally:
        unsubscribe()


async def scrape(port: int) -> str:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def families(text: str) -> set[str]:
    """The herd families of the exposition, as named on its `# TYPE` lines."""
    return {line.split()[2] for line in text.splitlines()
            if line.startswith("# TYPE herd_")}


def one(found: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    [(labels, value)] = found[name]
    assert labels == {"node": NODE}
    return value


async def test_a_scrape_makes_one_stats_call_and_shows_every_domain(node: Daemon) -> None:
    daemon = node.daemon
    assert daemon is not None
    await status_cached(daemon)
    first = samples(await scrape(daemon.endpoint.port))
    text = await scrape(daemon.endpoint.port)
    got = samples(text)
    assert one(got, "herd_node_stats_calls_total") \
        == one(first, "herd_node_stats_calls_total") + 1
    cpu = got["herd_vm_cpu_seconds_total"]
    assert sorted(labels["vm"] for labels, _ in cpu) == [f"g{i:04d}" for i in range(DOMAINS)]
    assert all(labels == {"vm": labels["vm"], "node": NODE} for labels, _ in cpu)
    by_state = {labels["state"]: value for labels, value in got["herd_node_vms"]}
    assert by_state["running"] == DOMAINS
    assert one(got, "herd_node_memory_total_bytes") == MEMORY_MIB << 20
    assert one(got, "herd_node_vcpus_allocated") == DOMAINS
    assert one(got, "herd_zookeeper_connected") == 1
    assert "herd_node_load1" in got and "herd_libvirt_errors_total" in got
    assert families(text) == METRIC_NAMES


async def test_metrics_are_open_and_the_rest_needs_a_fresh_ticket(node: Daemon) -> None:
    daemon = node.daemon
    assert daemon is not None
    log_dir = Path(daemon.config.console_log_dir)
    await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread((log_dir / "g0001.log").write_bytes,
                            b"SeaBIOS (version 1.16)\r\nNo bootable device.\r\n")
    key = nodekeys.key_in((await asyncio.to_thread(
        daemon.store.get, nodekeys.key_path(daemon.store, NODE))).doc)
    assert key is not None
    status = (await asyncio.to_thread(daemon.store.get,
                                      daemon.store.paths.node_status(NODE))).doc
    base = f"http://127.0.0.1:{daemon.endpoint.port}"
    assert status["endpoint"] == base
    path = "/vm/g0001/log?lines=1"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/") as response:
            assert response.status == 404
        async with http.post(f"{base}/metrics") as response:
            assert response.status == 405
        async with http.get(base + path) as response:
            assert response.status == 401
        ticket = nodekeys.sign(key, "GET", path)
        async with http.get(base + path, headers={"Authorization": ticket}) as response:
            assert (response.status, await response.read()) == (200, b"No bootable device.\r\n")
        async with http.get(base + path, headers={"Authorization": ticket}) as response:
            assert response.status == 401  # once only
        other = nodekeys.sign(key, "GET", "/vm/g0002/log")  # signed for another path
        async with http.get(base + path, headers={"Authorization": other}) as response:
            assert response.status == 401
