"""Benchmark: the node daemon (`herd-node`) on libvirt's test driver, goals of issue #3.

1. Convergence latency: from a spec write (`store.update` of `/vms/<name>` toggling
   spec.state between running and stopped) to the status znode showing the new state, as a
   watch on a separate client sees it; p50/p99 over 500 changes with 10, 1,000 and 10,000
   VMs in the cluster (five on the daemon's node hv1, the rest on nodes without a daemon).
   The daemon is idle before each size and between changes. Goal p50 <= 10 ms,
   p99 <= 50 ms, flat as the cluster grows.
2. Bring-up of 1,000 VMs on one node: defined (pipelined) while the daemon runs, and
   defined before it starts (cold boot); time until every status shows running. Goal 5 s.
3. Footprint with 10,000 VMs in the cluster: RSS of a real herd-node process, and the
   ZooKeeper watches of its session. Goal <= 150 MB and a constant (3) number of watches.
The daemons of 1 and 2 run in this process (their libvirt connection handed in), so the
figures include sharing the GIL with the benchmark's own ZooKeeper clients.
Run: `.venv/bin/python -m bench.node_bench [--quick]` (quick: smaller sizes, smoke run).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import (
    NODE,
    InProcessNode,
    LoopThread,
    NodeProcess,
    StatusWatch,
    bench_vm,
    cluster_vms,
    define,
    node_config,
    set_state,
    wait_doc,
)
from bench.common import save, summary_ms, zookeeper
from store.client import Store
from store.layout import ensure_layout
from tests.support.zkserver import ZooKeeperCluster

MEASURED = 5  # VMs on hv1 whose state the latency benchmark toggles
WATCHED_SUBTREES = 3  # /vms, /nodes, /config: one recursive watch each


@dataclass(frozen=True)
class Sizes:
    clusters: tuple[int, ...]
    changes: int
    boot: int
    footprint: int


FULL = Sizes(clusters=(10, 1_000, 10_000), changes=500, boot=1_000, footprint=10_000)
QUICK = Sizes(clusters=(10, 200, 1_000), changes=100, boot=200, footprint=1_000)


@dataclass
class Bench:
    """What every scenario needs: ZooKeeper, the daemons' loop and a scratch directory."""

    zk: ZooKeeperCluster
    loop: LoopThread
    workdir: Path

    def store(self, root: str) -> Store:
        store = Store(self.zk.hosts, root)
        store.start()
        ensure_layout(store)
        return store


# --- 1. convergence latency -------------------------------------------------------------------

def toggle_changes(node: InProcessNode, store: Store, watch: StatusWatch, names: list[str],
                   changes: int) -> dict[str, list[float]]:
    """Toggle the VMs round-robin; seconds from the write to the watched status, per kind."""
    states = dict.fromkeys(names, "running")
    out: dict[str, list[float]] = {"start": [], "stop": []}
    for k in range(changes):
        name = names[k % len(names)]
        want = "stopped" if states[name] == "running" else "running"
        arrival = watch.expect([name], want)
        start = time.perf_counter()
        set_state(store, name, want)
        out["start" if want == "running" else "stop"].append(arrival.wait(10) - start)
        states[name] = want
        node.wait_idle()
    return out


def convergence(bench: Bench, size: int, changes: int) -> dict[str, Any]:
    root = f"/conv-{size}"
    store = bench.store(root)
    mine = [f"mine{i}" for i in range(MEASURED)]
    define(store, cluster_vms(size, mine))
    watch = StatusWatch(bench.zk.hosts, root)
    node = InProcessNode(bench.loop, node_config(bench.zk.hosts, root, bench.workdir))
    try:
        node.start()
        watch.expect(mine, "running").wait(60)
        node.wait_idle()
        toggle_changes(node, store, watch, mine, 2 * MEASURED)  # warm-up, not counted
        samples = toggle_changes(node, store, watch, mine, changes)
    finally:
        node.stop()
        watch.stop()
        store.stop()
    both = samples["start"] + samples["stop"]
    return {"vms": size, "on_node": MEASURED, "changes": changes, "all": summary_ms(both),
            "start": summary_ms(samples["start"]), "stop": summary_ms(samples["stop"])}


# --- 2. bring-up ------------------------------------------------------------------------------

def boot_live(bench: Bench, count: int) -> dict[str, Any]:
    """The daemon runs; `count` VMs are defined on hv1, running: until all run."""
    root = "/boot-live"
    store = bench.store(root)
    watch = StatusWatch(bench.zk.hosts, root)
    node = InProcessNode(bench.loop, node_config(bench.zk.hosts, root, bench.workdir))
    names = [f"boot{i:05d}" for i in range(count)]
    try:
        node.start()
        node.wait_idle()
        arrival = watch.expect(names, "running")
        start = time.perf_counter()
        define_s = define(store, [bench_vm(n, NODE) for n in names])
        seconds = arrival.wait(120) - start
    finally:
        node.stop()
        watch.stop()
        store.stop()
    return {"vms": count, "seconds": round(seconds, 3), "define_seconds": round(define_s, 3)}


def boot_cold(bench: Bench, count: int) -> dict[str, Any]:
    """`count` VMs are defined on hv1, running; then the daemon starts: until all run."""
    root = "/boot-cold"
    store = bench.store(root)
    define(store, [bench_vm(f"boot{i:05d}", NODE) for i in range(count)])
    watch = StatusWatch(bench.zk.hosts, root)
    node = InProcessNode(bench.loop, node_config(bench.zk.hosts, root, bench.workdir))
    try:
        arrival = watch.expect([f"boot{i:05d}" for i in range(count)], "running")
        start = time.perf_counter()
        node.start()
        ready_s = time.perf_counter() - start
        seconds = arrival.wait(120) - start
    finally:
        node.stop()
        watch.stop()
        store.stop()
    return {"vms": count, "seconds": round(seconds, 3), "ready_seconds": round(ready_s, 3)}


# --- 3. footprint -----------------------------------------------------------------------------

def daemon_session(store: Store) -> int:
    stat = store.exists(store.paths.node_alive(NODE))
    if stat is None:
        raise RuntimeError(f"{NODE} is not registered")
    return int(stat.ephemeralOwner)


def footprint(bench: Bench, count: int) -> dict[str, Any]:
    """A herd-node process: RSS and watches once synced, and again with `count` VMs."""
    root = "/footprint"
    store = bench.store(root)
    proc = NodeProcess(bench.zk.hosts, root, bench.workdir)
    watch: StatusWatch | None = None
    try:
        wait_doc(store, store.paths.node_status(NODE),
                 lambda d: bool(d and d.get("daemonState") == "run"))
        session = daemon_session(store)
        empty = {**proc.memory_kib(), "watches": len(bench.zk.session_watches(session))}
        mine = [f"mine{i}" for i in range(MEASURED)]
        watch = StatusWatch(bench.zk.hosts, root)
        arrival = watch.expect(mine, "running")
        define(store, cluster_vms(count, mine))  # hv1's last: seen running, all are synced
        arrival.wait(120)
        full = {**proc.memory_kib(), "watches": len(bench.zk.session_watches(session))}
    finally:
        code = proc.terminate()
        if watch is not None:
            watch.stop()
        store.stop()
    return {"vms": count, "empty": empty, "full": full, "exit_code": code,
            "znodes": 3 * count + 1}


# --- report -----------------------------------------------------------------------------------

def latency_rows(conv: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    rows = []
    for c in conv:
        lat = c["all"]
        rows.append((f"spec write -> status, {c['vms']:,} VMs, p50 / p99 ({c['changes']} changes)",
                     f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms "
                     f"(start {c['start']['p50_ms']:.1f} / {c['start']['p99_ms']:.1f}, "
                     f"stop {c['stop']['p50_ms']:.1f} / {c['stop']['p99_ms']:.1f})",
                     "—", "p50 <= 10 ms, p99 <= 50 ms, flat"))
    return rows


def rows(figures: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    live, cold, fp = figures["boot_live"], figures["boot_cold"], figures["footprint"]
    mib = 1024
    return [
        *latency_rows(figures["convergence"]),
        (f"{live['vms']:,} VMs defined while running -> all running",
         f"{live['seconds']:.2f} s (define {live['define_seconds']:.2f} s)", "—", "<= 5 s"),
        (f"{cold['vms']:,} VMs defined, then daemon started -> all running",
         f"{cold['seconds']:.2f} s (ready {cold['ready_seconds']:.2f} s)", "—", "<= 5 s"),
        (f"herd-node RSS, empty / {fp['vms']:,} VMs (peak)",
         f"{fp['empty']['VmRSS'] / mib:.0f} / {fp['full']['VmRSS'] / mib:.0f} MiB "
         f"({fp['full']['VmHWM'] / mib:.0f})", "—", "<= 150 MB"),
        (f"ZooKeeper watches of herd-node's session, empty / {fp['vms']:,} VMs",
         f"{fp['empty']['watches']} / {fp['full']['watches']}",
         f"{fp['znodes']:,} (one per znode)", f"constant ({WATCHED_SUBTREES})"),
    ]


def run(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    with zookeeper() as zk:
        bench = Bench(zk, LoopThread(), workdir)
        try:
            conv = [convergence(bench, size, sizes.changes) for size in sizes.clusters]
            for c in conv:
                print(f"convergence, {c['vms']:,} VMs: {c['all']}", flush=True)
            live = boot_live(bench, sizes.boot)
            print(f"bring-up while running: {live}", flush=True)
            cold = boot_cold(bench, sizes.boot)
            print(f"cold bring-up: {cold}", flush=True)
            fp = footprint(bench, sizes.footprint)
            print(f"footprint: {fp}", flush=True)
        finally:
            bench.loop.close()
    return {"convergence": conv, "boot_live": live, "boot_cold": cold, "footprint": fp}


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.node_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args()
    load_before = os.getloadavg()  # the machine may be shared: other load skews the figures
    with tempfile.TemporaryDirectory(prefix="herd-node-bench-") as tmp:
        figures = run(QUICK if args.quick else FULL, Path(tmp))
    figures |= {"quick": bool(args.quick), "loadavg_before": load_before,
                "loadavg_after": os.getloadavg()}
    save("node-quick" if args.quick else "node", figures, rows(figures))


if __name__ == "__main__":
    main()
