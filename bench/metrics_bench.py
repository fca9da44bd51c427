"""Benchmark: herd-node's /metrics (issue #16) with 10 / 1,000 / 10,000 VMs on libvirt's
test driver.

For each size a node file of that many running domains (`test:///<file>`) and a real
ZooKeeper; a `NodeDaemon` runs in this process with `metrics_address` on a free port and
is left idle (every domain reconciled once). Herd: the wall time of `GET /metrics` over
HTTP (one `getAllDomainStats` in a thread, rendering in a thread), and its size. Naive, in
the same run, on its own connection to the same file: what an exporter calling libvirt
once per VM does (no HTTP, VM families only: Herd's figure carries more) —
`listAllDomains`, then `lookupByName` + `info()` for every domain (two calls per VM),
rendered with the same collector and prometheus-client. The test driver answers
in-process; against a real libvirtd each call is a socket round trip, so the naive figure
there grows by that round trip times 2 x VMs, Herd's by one.
Goal (issue #16): a scrape of 1,000 VMs in one stats call and under 200 ms.
Run: `.venv/bin/python -m bench.metrics_bench [--rounds N]`. Writes bench/results/metrics.*.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import libvirt
from prometheus_client import CollectorRegistry, generate_latest

from bench.common import save, summary_ms, zookeeper
from reconciler.config import NodeConfig
from reconciler.daemon import NodeDaemon
from reconciler.libvirt.interface import DomainStats
from reconciler.libvirt.stats import STATE_NUMBERS
from reconciler.metrics.collector import VMCollector
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file

SIZES = (10, 1000, 10000)
NODE = "hv1"


def naive_scrape(conn: Any) -> bytes:
    """One libvirt call per VM (lookupByName + info), rendered like Herd's."""
    stats = []
    for name in [dom.name() for dom in conn.listAllDomains()]:
        state, _max_kib, mem_kib, _vcpus, cpu_ns = conn.lookupByName(name).info()
        stats.append(DomainStats(name=name, state=STATE_NUMBERS[state],
                                 cpu_seconds=cpu_ns / 1e9, balloon_current_bytes=mem_kib * 1024))
    collector = VMCollector(NODE)
    collector.stats = stats
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry)


async def herd_scrapes(port: int, rounds: int) -> tuple[list[float], int]:
    took, size = [], 0
    async with aiohttp.ClientSession() as http:
        for _ in range(rounds):
            start = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                body = await response.read()
            took.append(time.perf_counter() - start)
            size = len(body)
    return took, size


def stats_calls(daemon: NodeDaemon) -> float:
    value = daemon.metrics.registry.get_sample_value("herd_node_stats_calls_total",
                                                     {"node": NODE})
    return value or 0.0


async def one_size(hosts: str, workdir: Path, vms: int, rounds: int) -> dict[str, Any]:
    uri = write_node_file(workdir, f"{NODE}-{vms}", cpus=256, memory_mib=8 << 20, domains=[
        simple_domain_xml(f"vm{i:05d}", memory_mib=64) for i in range(vms)])
    config = NodeConfig(name=NODE, zk_hosts=hosts, zk_root=f"/bench-metrics-{vms}",
                        zk_timeout=10.0, libvirt_uri=uri, coordinator=False, address=None,
                        initial_domain_state="ready", status_interval=5.0,
                        resync_interval=3600.0, workers=8, log_level="WARNING",
                        metrics_address="127.0.0.1:0")
    daemon = NodeDaemon(config)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 600)
    await daemon.queue.wait_idle()
    try:
        calls = stats_calls(daemon)
        herd, size = await herd_scrapes(daemon.endpoint.port, rounds)
        calls = stats_calls(daemon) - calls
    finally:
        daemon.stop()
        await task
    conn = libvirt.open(uri)
    try:
        naive = []
        for _ in range(rounds):
            start = time.perf_counter()
            await asyncio.to_thread(naive_scrape, conn)
            naive.append(time.perf_counter() - start)
    finally:
        conn.close()
    return {"vms": vms, "herd": summary_ms(herd), "naive": summary_ms(naive),
            "stats_calls_per_scrape": calls / rounds, "bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    results = []
    with zookeeper() as zk, tempfile.TemporaryDirectory(prefix="herd-metrics-") as tmp:
        for vms in SIZES:
            results.append(asyncio.run(one_size(zk.hosts, Path(tmp), vms, args.rounds)))
            r = results[-1]
            print(f"{vms:>6} VMs: herd p50 {r['herd']['p50_ms']} ms, naive p50 "
                  f"{r['naive']['p50_ms']} ms, {r['stats_calls_per_scrape']} stats call(s)")
    rows = [(f"scrape of /metrics, {r['vms']:,} VMs (p50 / p99 ms; {r['bytes']:,} bytes)",
             f"{r['herd']['p50_ms']:.1f} / {r['herd']['p99_ms']:.1f}",
             f"{r['naive']['p50_ms']:.1f} / {r['naive']['p99_ms']:.1f}",
             "< 200 ms at 1,000" if r["vms"] == 1000 else "")
            for r in results]
    rows += [(f"libvirt calls per scrape, {r['vms']:,} VMs",
              f"{r['stats_calls_per_scrape']:g} (getAllDomainStats)",
              f"{1 + 2 * r['vms']:,} (list + lookup + info per VM)", "1")
             for r in results]
    save("metrics", {"rounds": args.rounds, "sizes": results}, rows)


if __name__ == "__main__":
    main()
