"""Benchmark: live migration on a real 3-host QEMU cluster (`herdctl dev up --hypervisor
qemu` machinery, in-process), disk-less 32 MiB guests.

- Herd: POST /vm/{vm}/node migrate -> the VM's status says running on the target (followed
  through GET /watch), alternating hosts; libvirt: the same migration of a guest Herd does
  not manage, by `migrateToURI3` (peer to peer, persist, undefine source) straight to the
  source host's libvirtd, in the same run, interleaved. Goal: Herd adds <= 100 ms (p50).
  Also libvirt's own figures of Herd's migrations (the `migrated` events: the job's time
  on the destination and the guest's downtime).
- Flush of a host running 10 guests (to the other two hosts, live), for outbound
  migration concurrency 1, 2 and 4 (herd-node `migration_concurrency`; the nodes are
  restarted with each setting, which leaves their guests running): flush -> all 10 run
  elsewhere, and ready -> all 10 back.
Run: `.venv/bin/python -m bench.migration_bench` (root). Writes bench/results/migration.*.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libvirt
import yaml

from bench.common import percentile, save
from ctl.client import Client
from ctl.dev import cluster
from ctl.dev.guest import guest_xml
from ctl.dev.qemu import QemuHosts
from ctl.dev.state import DevState

FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
         | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
NODES = ("hv1", "hv2", "hv3")


def until(client: Client, check: Callable[[dict[str, Any]], bool], *,
          timeout: float = 120.0) -> float:
    """Follow GET /watch (VMs) until check(all VMs by name) holds; the time it did."""
    listing = client.get("/vm")
    vms = {v["metadata"]["name"]: v for v in listing["items"]}
    version = listing["resourceVersion"]
    deadline = time.monotonic() + timeout
    while not check(vms):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the cluster did not get there in time")
        for event in client.watch(timeout=min(left, 10.0), kind="VM", resourceVersion=version):
            version = event.get("resourceVersion", version)
            if event.get("object"):
                vms[event["name"]] = event["object"]
            if check(vms):
                break
    return time.perf_counter()


def running_on(vms: dict[str, Any], name: str, node: str) -> bool:
    status = (vms.get(name) or {}).get("status") or {}
    return status.get("state") == "running" and status.get("node") == node


def herd_migration(client: Client, name: str, target: str) -> float:
    start = time.perf_counter()
    client.post(f"/vm/{name}/node", {"action": "migrate", "node": target, "force": True})
    return until(client, lambda vms: running_on(vms, name, target)) - start


def libvirt_migration(hosts: QemuHosts, name: str, source: str, target: str) -> float:
    conn = libvirt.open(hosts[source].uri)
    try:
        dom = conn.lookupByName(name)
        start = time.perf_counter()
        dom.migrateToURI3(hosts[target].migration_uri, {}, FLAGS)
        return time.perf_counter() - start
    finally:
        conn.close()


def single_migrations(dev: DevState, client: Client, rounds: int) -> dict[str, Any]:
    hosts = cluster.hosts_of(dev)
    client.post("/vm", {"xml": guest_xml("bench-herd"), "node": "hv1"})
    client.post("/vm/bench-herd/state", {"state": "start", "wait": True})
    conn = libvirt.open(hosts["hv1"].uri)
    conn.defineXML(guest_xml("bench-plain")).create()  # not Herd's: left alone by it
    conn.close()
    herd, plain = [], []
    for i in range(rounds):
        source, target = ("hv1", "hv2") if i % 2 == 0 else ("hv2", "hv1")
        herd.append(herd_migration(client, "bench-herd", target))
        plain.append(libvirt_migration(hosts, "bench-plain", source, target))
    with_stats = migrated_events(dev, "bench-herd")
    calls = [e["libvirtCallMs"] / 1000 for e in with_stats if "libvirtCallMs" in e]
    return {"herd_s": herd, "libvirt_s": plain, "herd_call_s": calls,
            "herd_overhead_s": [h - c for h, c in zip(herd, calls, strict=True)],
            "libvirt_job_ms": [e["libvirtMs"] for e in with_stats if "libvirtMs" in e],
            "downtime_ms": [e["downtimeMs"] for e in with_stats if "downtimeMs" in e]}


def migrated_events(dev: DevState, vm: str) -> list[dict[str, Any]]:
    from store import events
    from store.client import Store

    store = Store(dev.zk_hosts, dev.zk_root)
    store.start()
    try:
        return [e for e in events.recent(store, limit=1000)
                if e.get("vm") == vm and e.get("kind") == "migrated"]
    finally:
        store.stop()


def set_concurrency(dev: DevState, concurrency: int) -> None:
    """Restart every herd-node with `migration_concurrency` (SIGTERM leaves guests up)."""
    for name in dev.nodes:
        path = Path(dev.dir) / "nodes" / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["migration_concurrency"] = concurrency
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        record = next(p for p in dev.processes if p.role == f"node/{name}")
        os.kill(record.pid, signal.SIGTERM)
        os.waitpid(record.pid, 0)
        cluster.start_node(dev, name)


def flush_round(client: Client, names: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    client.post("/node/hv1/domain-state", {"state": "flush"})
    away = until(client, lambda vms: all(
        (vms[n].get("status") or {}).get("state") == "running"
        and vms[n]["status"].get("node") not in (None, "hv1") for n in names)) - start
    start = time.perf_counter()
    client.post("/node/hv1/domain-state", {"state": "ready"})
    back = until(client, lambda vms: all(running_on(vms, n, "hv1") for n in names)) - start
    return away, back


def flushes(dev: DevState, client: Client, *, guests: int,
            settings: tuple[int, ...]) -> dict[str, Any]:
    names = [f"bench-f{i}" for i in range(guests)]
    for name in names:
        client.post("/vm", {"xml": guest_xml(name), "node": "hv1"})
        client.post(f"/vm/{name}/state", {"state": "start", "wait": True})
    out: dict[str, Any] = {}
    for concurrency in settings:
        set_concurrency(dev, concurrency)
        until(client, lambda vms: all(running_on(vms, n, "hv1") for n in names))
        _wait_nodes(client)
        away, back = flush_round(client, names)
        out[str(concurrency)] = {"flush_s": round(away, 2), "ready_s": round(back, 2)}
        print(f"concurrency {concurrency}: flush {away:.2f} s, ready {back:.2f} s")
    return out


def _wait_nodes(client: Client) -> None:
    """Every node alive, running and ready (after the restarts)."""
    deadline = time.monotonic() + 60
    while not all(cluster.node_ready(n) for n in client.get("/node")["items"]):
        if time.monotonic() > deadline:
            raise TimeoutError("nodes did not come back")
        for _event in client.watch(timeout=1.0, kind="Node"):
            break


def report(f: dict[str, Any]) -> None:
    single = f["single"]
    herd = statistics.median(single["herd_s"]) * 1000
    plain = statistics.median(single["libvirt_s"]) * 1000
    downtime = single["downtime_ms"]
    overhead = statistics.median(single["herd_overhead_s"]) * 1000
    call = statistics.median(single["herd_call_s"]) * 1000
    rows = [
        (f"live migration, API call -> running on target, p50 of {len(single['herd_s'])}",
         f"{herd:.0f} ms", f"{plain:.0f} ms (migrateToURI3 straight to libvirtd)", "-"),
        ("Herd's own time in it (total minus its migrateToURI3 call, per migration), p50",
         f"{overhead:.0f} ms (call {call:.0f} ms)", "-", "<= 100 ms"),
        ("libvirt's job time on the destination / guest downtime, p50",
         f"{percentile(single['libvirt_job_ms'], 50):.0f} / "
         f"{percentile(downtime, 50):.0f} ms" if downtime else "-", "-", "-"),
    ]
    for concurrency, r in f["flush"].items():
        rows.append((f"flush of a host running {f['guests']} guests, concurrency "
                     f"{concurrency}: flush / ready", f"{r['flush_s']} / {r['ready_s']} s",
                     "-", "-"))
    save("migration", f, rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.migration_bench")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--guests", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--dir", type=Path, help="keep the cluster's files (logs) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herd-bench-qemu-") as tmp:
        directory = args.dir or Path(tmp)
        dev = cluster.up(directory, nodes=3, timeout=180, say=print, hypervisor="qemu")
        try:
            client = Client(dev.url, token=dev.token, timeout=120)
            single = single_migrations(dev, client, args.rounds)
            flush = flushes(dev, client, guests=args.guests, settings=tuple(args.concurrency))
        finally:
            cluster.down(directory, say=lambda _message: None)
    report({"single": single, "flush": flush, "guests": args.guests})


if __name__ == "__main__":
    main()
