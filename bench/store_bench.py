"""Benchmark: creating VM objects through the store.

Herd: one transaction per VM (its spec, placement and status znodes together), many
transactions pipelined. Naive: one synchronous `create` per znode, as a straightforward
kazoo program would. Goal (issue #2): >= 3,000 VMs/s on a 2-core machine.
Run: `.venv/bin/python -m bench.store_bench [count]`.
"""

from __future__ import annotations

import sys

from kazoo.client import KazooClient

from bench.common import Timer, save, zookeeper
from bench.fixtures import create_ops
from store import codec, txn
from store.client import Store
from store.layout import ensure_layout
from store.paths import Paths


def herd_create(store: Store, count: int) -> float:
    batches = [create_ops(store.paths, f"vm{i:05d}") for i in range(count)]
    with Timer() as t:
        errors = txn.commit_pipelined(store, batches)
    assert not any(errors), next(e for e in errors if e)
    assert len(store.children(store.paths.vms)) == count
    return t.seconds


def naive_create(hosts: str, root: str, count: int) -> float:
    paths = Paths(root)
    client = KazooClient(hosts=hosts)
    client.start()
    client.ensure_path(paths.vms)
    try:
        with Timer() as t:
            for i in range(count):
                for op in create_ops(paths, f"vm{i:05d}"):
                    assert isinstance(op, txn.Create)
                    client.create(op.path, codec.encode(op.doc))
        return t.seconds
    finally:
        client.stop()
        client.close()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    naive_count = min(count, 3_000)
    with zookeeper() as zk:
        store = Store(zk.hosts, "/bench-herd")
        store.start()
        ensure_layout(store)
        herd_s = herd_create(store, count)
        store.stop()
        naive_s = naive_create(zk.hosts, "/bench-naive", naive_count)
    herd_rate, naive_rate = count / herd_s, naive_count / naive_s
    figures = {"vms": count, "herd_seconds": round(herd_s, 3), "herd_vms_per_s": round(herd_rate),
               "naive_vms": naive_count, "naive_seconds": round(naive_s, 3),
               "naive_vms_per_s": round(naive_rate)}
    save("store_create", figures, [
        (f"create {count:,} VMs (3 znodes each)", f"{herd_rate:,.0f} VMs/s ({herd_s:.2f} s)",
         f"{naive_rate:,.0f} VMs/s (sync create per znode, {naive_count:,} VMs)",
         ">= 3,000 VMs/s"),
    ])


if __name__ == "__main__":
    main()
