"""The watched cache against a real ZooKeeper: one watch, ordered changes, resyncs."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from store import txn
from store.addwatch import add_persistent_recursive_watch, remove_persistent_recursive_watch
from store.client import Store
from store.errors import Unavailable
from store.informer import Change, Informer
from store.layout import ensure_layout
from store.target import ZKTarget
from tests.support.zkserver import ZooKeeperCluster


@pytest.fixture
def informer(store: Store) -> Iterator[Informer]:
    inf = Informer(store, store.paths.vms)
    inf.start()
    yield inf
    inf.stop()


def zk_truth(store: Store) -> dict[str, dict[str, object]]:
    """Every znode below /vms as ZooKeeper has it now (read directly, not from the cache)."""
    return {p: v.doc for p, v in txn.read_subtree(store, store.paths.vms).items()}


def cache_view(inf: Informer) -> dict[str, dict[str, object]]:
    return {p: v.doc for p, v in inf.items()}


def wait_until_equal(store: Store, inf: Informer, timeout: float = 10.0) -> None:
    """Wait for the cache to catch up, by its own change events (no sleeping)."""
    changed = threading.Event()
    unsubscribe = inf.subscribe(lambda _c: changed.set())
    try:
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        while cache_view(inf) != zk_truth(store):
            if deadline.is_set():
                pytest.fail("the cache did not converge to ZooKeeper's state")
            changed.wait(0.2)
            changed.clear()
        timer.cancel()
    finally:
        unsubscribe()


def test_initial_sync_lists_the_whole_subtree(store: Store) -> None:
    p = store.paths
    for i in range(50):
        txn.commit(store, [txn.Create(p.vm(f"vm{i}"), {"i": i}),
                           txn.Create(p.vm_status(f"vm{i}"), {"state": "stopped"})])
    inf = Informer(store, p.vms)
    inf.start()
    try:
        assert inf.wait_synced(0)
        assert cache_view(inf) == zk_truth(store)
        assert len(inf.children(p.vms)) == 50
    finally:
        inf.stop()


def test_create_update_delete_are_seen_in_order(store: Store, informer: Informer) -> None:
    changes: queue.Queue[Change] = queue.Queue()
    informer.subscribe(changes.put)
    path = store.paths.vm("a")
    store.create(path, {"v": 1})
    for v in range(2, 6):
        store.set(path, {"v": v}, version=-1)
    store.delete(path)
    seen = [changes.get(timeout=30)]  # bounds a hang, not the speed (CI machines are busy)
    while seen[-1].kind != "deleted":
        seen.append(changes.get(timeout=30))
    # Each read fetches the znode as it is then, so quick sets may coalesce (and the last
    # ones may be overtaken by the delete); what is delivered is in order, never older than
    # what came before it, and ends with the deletion.
    assert seen[0].kind == "added"
    assert all(c.kind == "modified" for c in seen[1:-1])
    versions = [c.new.doc["v"] for c in seen[:-1] if c.new is not None]
    assert versions == sorted(set(versions)) and versions[-1] <= 5
    assert seen[-1].old is not None and seen[-1].old.doc == {"v": versions[-1]}
    assert informer.get(path) is None


def test_cache_matches_zookeeper_after_random_churn(store: Store, informer: Informer) -> None:
    rng = random.Random(7)
    p = store.paths
    live: set[str] = set()
    for step in range(400):
        name = f"vm{rng.randrange(40)}"
        if name in live and rng.random() < 0.3:
            store.delete(p.vm(name), recursive=True)
            live.discard(name)
        elif name in live:
            store.set(p.vm_status(name), {"step": step}, version=-1)
        else:
            txn.commit(store, [txn.Create(p.vm(name), {"step": step}),
                               txn.Create(p.vm_status(name), {"step": step})])
            live.add(name)
    wait_until_equal(store, informer)


def test_rename_is_seen_as_delete_and_add(store: Store, informer: Informer) -> None:
    p = store.paths
    txn.commit(store, [txn.Create(p.vm("old"), {"spec": {"state": "stopped"}}),
                       txn.Create(p.vm_status("old"), {"state": "stopped"})])
    wait_until_equal(store, informer)
    txn.rename_vm(store, "old", "new", rewrite=lambda _rel, doc: doc)
    wait_until_equal(store, informer)
    assert informer.get(p.vm("old")) is None
    assert informer.get(p.vm_status("new")) is not None


def test_one_watch_serves_the_whole_subtree(store: Store, informer: Informer,
                                            zk_cluster: ZooKeeperCluster) -> None:
    p = store.paths
    txn.commit(store, [txn.Create(p.vm(f"vm{i}"), {}) for i in range(200)])
    wait_until_equal(store, informer)
    # The session fixture's server is shared by the whole run, so count this client's
    # watches: exactly one, whatever the number of VMs.
    assert _watches_of(zk_cluster, store) == 1


def _watches_of(cluster: ZooKeeperCluster, store: Store) -> int:
    session = store.session_id
    assert session is not None, "the store has no session"
    return len(cluster.session_watches(session))


def test_addwatch_delivers_every_event_and_can_be_removed(store: Store,
                                                          zk_cluster: ZooKeeperCluster) -> None:
    client = store.client  # the kazoo extension under test takes the raw client
    root = store.paths.vms
    events: list[str] = []
    done = threading.Event()

    def on_event(ev: object) -> None:
        events.append(f"{ev.type}:{ev.path}")  # type: ignore[attr-defined]
        if len(events) == 21:
            done.set()

    add_persistent_recursive_watch(client, root, on_event)
    for i in range(10):
        client.create(f"{root}/w{i}", b"{}")
    for i in range(10):
        client.set(f"{root}/w{i}", b"{}")
    client.create(f"{root}/w0/child", b"{}")
    assert done.wait(5)
    assert events[0] == f"CREATED:{root}/w0" and events[-1] == f"CREATED:{root}/w0/child"
    assert _watches_of(zk_cluster, store) == 1
    remove_persistent_recursive_watch(client, root, on_event)
    assert _watches_of(zk_cluster, store) == 0


def test_resync_after_session_expiry(store: Store, informer: Informer, zk_hosts: str) -> None:
    """Expire the informer's session, change things meanwhile: the cache converges."""
    p = store.paths
    txn.commit(store, [txn.Create(p.vm(f"vm{i}"), {"i": i}) for i in range(20)])
    wait_until_equal(store, informer)
    resyncs = informer.resyncs
    synced = threading.Event()
    informer.on_synced(synced.set)

    other = Store(zk_hosts, p.root)
    other.start()
    try:
        _expire_session(store.client, zk_hosts)  # fault injection: the raw session
        for i in range(10):
            other.delete(p.vm(f"vm{i}"))
        other.create(p.vm("fresh"), {"new": True})
        assert synced.wait(15), "no resync after the session expired"
        assert informer.resyncs > resyncs
        wait_until_equal(store, informer)
        assert informer.get(p.vm("fresh")) is not None
        assert informer.get(p.vm("vm0")) is None
    finally:
        other.stop()


def _expire_session(client: KazooClient, hosts: str) -> None:
    """Expire `client`'s session the way ZooKeeper's own tests do: close it from a twin."""
    lost = threading.Event()

    def listener(state: str) -> None:
        if state == "LOST":
            lost.set()

    client.add_listener(listener)
    twin = KazooClient(client_id=client.client_id, **ZKTarget.parse(hosts).kazoo_args())
    twin.start()
    twin.stop()
    twin.close()
    assert lost.wait(15), "the session did not expire"
    client.remove_listener(listener)


def write_when_possible(store: Store, path: str, *, attempts: int = 5) -> None:
    """A returning ensemble may re-elect once more: wait for writability, retry a refusal."""
    for _ in range(attempts):
        assert store.wait_writable(30), "the session never became writable again"
        try:
            store.create(path, {})
            return
        except Unavailable:
            continue
    raise AssertionError(f"could not write {path} after the quorum came back")


@pytest.mark.ensemble
def test_quorum_loss_stops_writes_and_the_cache_recovers(zk_ensemble: ZooKeeperCluster,
                                                         zk_root: str) -> None:
    store = Store(zk_ensemble.dsn, zk_root, timeout=4.0)
    store.start()
    inf: Informer | None = None
    try:
        ensure_layout(store)
        p = store.paths
        inf = Informer(store, p.vms)
        inf.start()
        store.create(p.vm("before"), {})
        suspended = threading.Event()
        store.add_session_listener(lambda what: suspended.set() if what == "suspended" else None)
        zk_ensemble.kill(0)
        zk_ensemble.kill(1)
        assert suspended.wait(15), "the client never noticed the quorum loss"
        with pytest.raises(Unavailable):
            store.create(p.vm("during"), {})
        synced = threading.Event()
        inf.on_synced(synced.set)
        zk_ensemble.restart_members(0, 1)
        assert synced.wait(30), "the informer did not resync after the quorum came back"
        write_when_possible(store, p.vm("after"))
        # "during" may exist now: a write that reached a leader which had just lost its
        # quorum sits in that leader's log and may commit once quorum returns (ZooKeeper
        # answers such a write with ConnectionLoss: its outcome is unknown, and the store
        # says so). Whatever happened, the cache must match ZooKeeper exactly.
        wait_until_equal(store, inf)
        assert inf.get(p.vm("after")) is not None
    finally:
        if inf is not None:
            inf.stop()
        store.stop()
