"""Benchmark: the primary's controllers on a cluster of real herd-node processes.

- Flush of a node running 1,000 VMs (test-driver nodes, so the shutdown method): from the
  node's spec set to `flushed` until every VM runs on another node and the node reports
  `flushed`. Goal (issue #4): <= 10 s.
- Crash (kill -9) of a node running 100 VMs, default timings (session 8 s, fenceTimeout
  8 s, status every 5 s): until all 100 run elsewhere. Goal <= 12 s. The timeline comes
  from the event log (fence, recovery) and the VMs' status changes.
Run: `.venv/bin/python -m bench.controllers_bench [--quick]`.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.cluster import StatusWatch, wait_doc
from bench.common import save, zookeeper
from store import election, events, txn, vms
from store.client import Store
from store.layout import ensure_layout
from store.watches import watch_children
from tests.support.cluster import LocalCluster
from tests.support.libvirt_nodes import simple_domain_xml

NODES = ("hv1", "hv2", "hv3")


def vm_doc(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
            "spec": {"state": "running", "node": node, "shutdownTimeout": 30,
                     "meta": {"limits": [], "selector": "vms", "autorestart": False,
                              "migrationMethod": "any"},
                     "xml": simple_domain_xml(name, memory_mib=16)}}


def define_on(store: Store, names: list[str], node: str) -> None:
    errors = txn.commit_pipelined(store, [vms.define_ops(store.paths, vm_doc(n, node))
                                          for n in names])
    assert not any(errors), next(e for e in errors if e)


def wait_nodes(store: Store, cluster: LocalCluster) -> None:
    for name in cluster.names:
        wait_doc(store, store.paths.node_status(name),
                 lambda d: bool(d and d.get("daemonState") == "run"), timeout=60)


def primary_of(store: Store) -> str:
    """The primary, once elected (a watch on the election's contenders, no polling)."""
    changed = threading.Event()
    watch_children(store, store.paths.election, lambda _c: changed.set())
    deadline = time.monotonic() + 60
    while (found := election.primary(store)) is None:
        changed.clear()
        if not changed.wait(max(0.0, deadline - time.monotonic())):
            raise RuntimeError("no primary was elected")
    return found


def flush_1000(hosts: str, workdir: Path, count: int) -> dict[str, Any]:
    root = "/bench-flush"
    store = Store(hosts, root)
    store.start()
    ensure_layout(store)
    cluster = LocalCluster(workdir, zk_hosts=hosts, zk_root=root, zk_timeout=8.0,
                           status_interval=5.0, cpus=256, memory_mib=1 << 20)
    watch = StatusWatch(hosts, root)
    try:
        cluster.start_all()
        wait_nodes(store, cluster)
        # The worst case on purpose: the flushed node is the primary, so its controllers and
        # its 1,000 outgoing VMs share one process.
        node = primary_of(store)
        names = [f"f{i:04d}" for i in range(count)]
        define_on(store, names, node)
        watch.expect(names, "running").wait(120)
        moved = watch.expect(names, "running", away_from=node)
        start = time.perf_counter()
        store.update(store.paths.node(node),
                     lambda d: {**d, "spec": {**d["spec"], "domainState": "flushed"}})
        all_moved = moved.wait(300)
        return {"vms": count, "node": node, "primary": True,
                "seconds": round(all_moved - start, 2)}
    finally:
        watch.stop()
        cluster.stop_all()
        store.stop()


def crash_100(hosts: str, workdir: Path, count: int) -> dict[str, Any]:
    root = "/bench-crash"
    store = Store(hosts, root)
    store.start()
    ensure_layout(store)
    cluster = LocalCluster(workdir, zk_hosts=hosts, zk_root=root, zk_timeout=8.0,
                           status_interval=5.0)
    watch = StatusWatch(hosts, root)
    try:
        cluster.start_all()
        wait_nodes(store, cluster)
        victim = next(n for n in NODES if n != election.primary(store))
        names = [f"c{i:03d}" for i in range(count)]
        define_on(store, names, victim)
        watch.expect(names, "running").wait(120)
        recovered = watch.expect(names, "running", away_from=victim)
        unknown = watch.expect(names[:1], "unknown")
        killed_wall, killed = time.time(), time.perf_counter()
        cluster.signal(victim, signal.SIGKILL)
        cluster.reap(victim)
        done = recovered.wait(120)
        return _timeline(store, victim, killed_wall, killed, unknown.wait(1), done, count)
    finally:
        watch.stop()
        cluster.stop_all()
        store.stop()


def _timeline(store: Store, victim: str, killed_wall: float, killed: float,
              unknown_at: float, done: float, count: int) -> dict[str, Any]:
    log = {e["kind"]: e["time"] - killed_wall for e in events.recent(store, limit=50)
           if e.get("node") == victim}
    return {"vms": count, "detected_s": round(unknown_at - killed, 2),
            "fenced_s": round(log.get("fenced", float("nan")), 2),
            "placed_s": round(log.get("recovered", float("nan")), 2),
            "all_running_s": round(done - killed, 2)}


def main() -> None:
    quick = "--quick" in sys.argv
    with zookeeper() as zk, tempfile.TemporaryDirectory(prefix="herd-ctl-bench-") as tmp:
        flush_dir, crash_dir = Path(tmp) / "flush", Path(tmp) / "crash"
        flush_dir.mkdir()
        crash_dir.mkdir()
        flush = flush_1000(zk.hosts, flush_dir, 100 if quick else 1000)
        crash = crash_100(zk.hosts, crash_dir, 20 if quick else 100)
    timeline = (f"detected {crash['detected_s']} s, fenced {crash['fenced_s']} s, "
                f"placed {crash['placed_s']} s, all running {crash['all_running_s']} s")
    save("controllers-quick" if quick else "controllers", {"flush": flush, "crash": crash}, [
        (f"flush of a node running {flush['vms']:,} VMs (the primary) -> all running elsewhere",
         f"{flush['seconds']} s", "—", "<= 10 s"),
        (f"kill -9 of a node running {crash['vms']} VMs -> all running elsewhere",
         f"{crash['all_running_s']} s ({timeline})", "—", "<= 12 s"),
    ])


if __name__ == "__main__":
    main()
