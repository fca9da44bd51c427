"""Benchmark: the watched cache (informer) over 10,000 VMs.

- Initial sync: Herd's informer (one recursive watch, pipelined reads per level) against
  a naive listing (synchronous get_children and get, one znode at a time).
- Change latency: from just before a `set` to the subscriber's callback, p50/p99 over 500
  changes; the naive alternative is a one-shot data watch on the znode, re-armed per change.
- Watches held: the informer's session holds one watch whatever the VM count.
Goals (issue #2): sync <= 2 s; change seen <= 5 ms after the write (p50).
Run: `.venv/bin/python -m bench.informer_bench [count]`.
"""

from __future__ import annotations

import sys
import threading
import time

from kazoo.client import KazooClient

from bench.common import Timer, save, summary_ms, zookeeper
from bench.fixtures import create_ops
from store import txn
from store.client import Store
from store.informer import Change, Informer
from store.layout import ensure_layout


def naive_list(client: KazooClient, root: str) -> tuple[float, int]:
    with Timer() as t:
        count = 0
        stack = [root]
        while stack:
            path = stack.pop()
            client.get(path)
            count += 1
            stack.extend(f"{path}/{c}" for c in client.get_children(path))
    return t.seconds, count


def informer_latency(store: Store, inf: Informer, samples: int) -> list[float]:
    path = store.paths.vm_status("vm00000")
    seen = threading.Event()
    target: dict[str, int] = {"n": -1}

    def on_change(change: Change) -> None:
        if change.path == path and change.new is not None and \
                change.new.doc.get("n") == target["n"]:
            seen.set()

    inf.subscribe(on_change)
    out = []
    for n in range(samples):
        seen.clear()
        target["n"] = n
        start = time.perf_counter()
        store.set(path, {"state": "running", "n": n}, version=-1)
        assert seen.wait(5)
        out.append(time.perf_counter() - start)
    return out


def oneshot_latency(client: KazooClient, path: str, samples: int) -> list[float]:
    out = []
    for n in range(samples):
        seen = threading.Event()
        client.get(path, watch=lambda _e, s=seen: s.set())
        start = time.perf_counter()
        client.set(path, b'{"n": %d}' % n)
        assert seen.wait(5)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with zookeeper() as zk:
        store = Store(zk.hosts, "/bench")
        store.start()
        ensure_layout(store)
        errors = txn.commit_pipelined(
            store, [create_ops(store.paths, f"vm{i:05d}") for i in range(count)])
        assert not any(errors)
        inf = Informer(store, store.paths.vms)
        with Timer() as sync:
            inf.start()
        znodes = len(inf)
        session = store.session_id
        assert session is not None, "the store has no session"
        watches = len(zk.session_watches(session))
        lat = summary_ms(informer_latency(store, inf, 500))
        inf.stop()
        naive_client = KazooClient(hosts=zk.hosts)
        naive_client.start()
        naive_s, naive_znodes = naive_list(naive_client, store.paths.vms)
        naive_lat = summary_ms(oneshot_latency(naive_client, store.paths.vm_status("vm00001"), 500))
        naive_client.stop()
        naive_client.close()
        store.stop()
    assert naive_znodes == znodes, (naive_znodes, znodes)
    figures = {"vms": count, "znodes": znodes, "sync_seconds": round(sync.seconds, 3),
               "naive_sync_seconds": round(naive_s, 3), "watches": watches,
               "change_latency": lat, "naive_change_latency": naive_lat}
    save("informer", figures, [
        (f"initial sync, {count:,} VMs ({znodes:,} znodes)", f"{sync.seconds:.2f} s",
         f"{naive_s:.2f} s (sync get per znode)", "<= 2 s"),
        ("write -> subscriber, p50 / p99", f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} ms",
         f"{naive_lat['p50_ms']:.2f} / {naive_lat['p99_ms']:.2f} ms (one-shot watch per znode)",
         "p50 <= 5 ms"),
        ("watches held by the session", f"{watches}", f"{znodes:,} (one per znode)",
         "constant"),
    ])


if __name__ == "__main__":
    main()
