"""kazoo's connection reading through `store.bufferedreads.BufferedReads`, against a real
ZooKeeper: bursts of many small messages per receive, replies larger than one receive,
and a dropped connection (the buffer of the old socket is dropped with it). The reader
serves plain sockets (TLS has its own buffering), so these tests connect to the plain
client port, as Herd's identity.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from store import txn
from store.bufferedreads import BufferedReads
from store.client import Store
from store.informer import Informer
from store.layout import ensure_layout
from store.target import ZKTarget
from tests.support.zkserver import ZooKeeperCluster

DOC = {"pad": "x" * 1000}


@pytest.fixture
def store(zk_cluster: ZooKeeperCluster, zk_hosts: str, zk_root: str) -> Iterator[Store]:
    """The suite's store, over the plain port (the buffered reader's case)."""
    target = replace(ZKTarget.parse(zk_hosts), hosts=zk_cluster.hosts, tls=None)
    s = Store(target, zk_root, timeout=5.0)
    s.start()
    ensure_layout(s)
    yield s
    s.stop()


def test_the_reader_is_installed(store: Store) -> None:
    conn = store.client._connection
    assert isinstance(conn._read.__self__, BufferedReads)


def test_a_burst_of_events_and_replies_over_one_receive(store: Store) -> None:
    """600 creates: a burst of watch events, and multiRead replies of ~256 KiB (more than
    one receive of 64 KiB) for the informer and for `get_many`."""
    p = store.paths
    informer = Informer(store, p.vms)
    informer.start()
    seen = threading.Event()
    names = [f"vm{i:03d}" for i in range(600)]
    want = {p.vm(n) for n in names}
    informer.subscribe(lambda _c: seen.set() if want <= {k for k, _ in informer.items()}
                       else None)
    try:
        errors = txn.commit_pipelined(store, [[txn.Create(p.vm(n), {**DOC, "n": n})]
                                              for n in names])
        assert not any(errors)
        assert seen.wait(20), "the informer missed creates"
        assert all(informer.get(p.vm(n)).doc["n"] == n for n in names)  # type: ignore[union-attr]
        got = store.get_many([p.vm(n) for n in names])
        assert [got[p.vm(n)].doc["n"] for n in names] == names
    finally:
        informer.stop()


def test_reads_go_on_after_the_connection_drops(store: Store) -> None:
    p = store.paths
    store.create(p.vm("before"), DOC)
    reconnected = threading.Event()
    store.add_session_listener(lambda what: reconnected.set() if what == "reconnected"
                               else None)
    store.client._connection._socket.shutdown(socket.SHUT_RDWR)
    assert reconnected.wait(20), "kazoo did not reconnect"
    store.create(p.vm("after"), DOC)
    assert set(store.get_many([p.vm("before"), p.vm("after")])) == {p.vm("before"),
                                                                     p.vm("after")}
    assert store.get(p.vm("after")).doc == DOC
