"""The store against a real ZooKeeper: version checks, atomic commits, rename, layout."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from kazoo.client import KazooClient

from store import txn
from store.client import Store
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, LayoutTooNew, NotFound, Refused
from store.layout import LAYOUT_VERSION, check_layout, ensure_layout
from store.target import ZKTarget


def make_vm(store: Store, name: str, *, state: str = "stopped", status: str = "stopped") -> None:
    p = store.paths
    txn.commit(store, [
        txn.Create(p.vm(name), {"kind": "VM", "metadata": {"name": name},
                                "spec": {"state": state, "xml": f"<name>{name}</name>"}}),
        txn.Create(p.vm_placement(name), {"node": "hv1", "lastNode": None}),
        txn.Create(p.vm_status(name), {"state": status, "node": None}),
    ])


def tree_docs(store: Store, path: str) -> dict[str, Doc]:
    return {p: v.doc for p, v in txn.read_subtree(store, path).items()}


def rename_doc(rel: str, doc: Doc, new: str = "new") -> Doc:
    if rel == "":
        doc = dict(doc, metadata=dict(doc["metadata"], name=new))
    return doc


# --- version-checked updates ---------------------------------------------------------------

def test_update_with_stale_resource_version_conflicts_and_writes_nothing(store: Store) -> None:
    path = store.paths.vm("a")
    store.create(path, {"n": 1})
    seen = store.get(path)
    store.update(path, lambda d: {**d, "n": 2})
    with pytest.raises(Conflict):
        store.update(path, lambda d: {**d, "n": 99}, expect_mzxid=seen.mzxid)
    assert store.get(path).doc == {"n": 2}


def test_update_with_current_resource_version_writes(store: Store) -> None:
    path = store.paths.vm("a")
    store.create(path, {"n": 1})
    seen = store.get(path)
    out = store.update(path, lambda d: {**d, "n": 5}, expect_mzxid=seen.mzxid)
    assert out.doc == {"n": 5}
    assert store.get(path).version == seen.version + 1


def test_concurrent_updates_lose_nothing(store: Store) -> None:
    """Four writers incrementing one counter: every increment survives the races."""
    path = store.paths.vm("counter")
    store.create(path, {"n": 0})

    def bump() -> None:
        for _ in range(25):
            store.update(path, lambda d: {"n": d["n"] + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(path).doc == {"n": 100}


def test_set_with_old_version_conflicts(store: Store) -> None:
    path = store.paths.vm("a")
    store.create(path, {"n": 1})
    v = store.get(path).version
    store.set(path, {"n": 2}, version=v)
    with pytest.raises(Conflict):
        store.set(path, {"n": 3}, version=v)
    assert store.get(path).doc == {"n": 2}


def test_get_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get(store.paths.vm("nope"))


# --- atomic commit ----------------------------------------------------------------------------

def test_commit_is_all_or_nothing(store: Store) -> None:
    p = store.paths
    store.create(p.vm("exists"), {})
    ops: list[txn.Op] = [txn.Create(p.vm(f"v{i}"), {"i": i}) for i in range(5)]
    ops.append(txn.Create(p.vm("exists"), {"clobber": True}))
    with pytest.raises(AlreadyExists) as e:
        txn.commit(store, ops)
    assert "exists" in str(e.value)
    assert store.children(p.vms) == ["exists"]
    assert store.get(p.vm("exists")).doc == {}


def test_commit_with_stale_set_changes_nothing(store: Store) -> None:
    p = store.paths
    store.create(p.vm("a"), {"n": 1})
    stale = store.get(p.vm("a")).version
    store.set(p.vm("a"), {"n": 2}, version=stale)
    with pytest.raises(Conflict):
        txn.commit(store, [txn.Create(p.vm("b"), {}), txn.Set(p.vm("a"), {"n": 3}, stale)])
    assert store.exists(p.vm("b")) is None
    assert store.get(p.vm("a")).doc == {"n": 2}


def test_commit_splits_only_above_request_size_and_says_so(store: Store) -> None:
    p = store.paths
    small = [txn.Create(p.vm(f"s{i}"), {"i": i}) for i in range(100)]
    assert txn.commit(store, small).transactions == 1
    blob = "x" * 200_000
    big = [txn.Create(p.vm(f"b{i}"), {"blob": blob}) for i in range(6)]
    result = txn.commit(store, big)
    assert result.split and result.transactions == 2
    assert len(store.children(p.vms)) == 106


# --- rename -----------------------------------------------------------------------------------

def test_rename_moves_the_whole_subtree(store: Store) -> None:
    make_vm(store, "old")
    before = tree_docs(store, store.paths.vm("old"))
    txn.rename_vm(store, "old", "new", rewrite=rename_doc)
    assert store.exists(store.paths.vm("old")) is None
    after = tree_docs(store, store.paths.vm("new"))
    assert set(after) == {store.paths.vm("new"), store.paths.vm_placement("new"),
                          store.paths.vm_status("new")}
    assert after[store.paths.vm("new")]["metadata"]["name"] == "new"
    assert after[store.paths.vm_placement("new")] == before[store.paths.vm_placement("old")]
    assert after[store.paths.vm_status("new")] == before[store.paths.vm_status("old")]


def test_rename_refuses_an_existing_target(store: Store) -> None:
    make_vm(store, "old")
    make_vm(store, "new")
    with pytest.raises(AlreadyExists):
        txn.rename_vm(store, "old", "new", rewrite=rename_doc)
    assert store.exists(store.paths.vm("old")) is not None


@pytest.mark.parametrize(("spec_state", "status_state"), [("running", "stopped"),
                                                          ("stopped", "running"),
                                                          ("stopped", "shutting-down")])
def test_rename_refuses_a_running_vm(store: Store, spec_state: str, status_state: str) -> None:
    make_vm(store, "old", state=spec_state, status=status_state)
    with pytest.raises(Refused):
        txn.rename_vm(store, "old", "new", rewrite=rename_doc)
    assert store.exists(store.paths.vm("new")) is None


def test_rename_refuses_while_a_node_owns_the_vm(store: Store) -> None:
    make_vm(store, "old")
    store.create(store.paths.vm_owner("old"), {"node": "hv2"}, ephemeral=True)
    with pytest.raises(Refused, match="hv2"):
        txn.rename_vm(store, "old", "new", rewrite=rename_doc)


def test_rename_fails_cleanly_when_a_child_changes_between_read_and_commit(store: Store) -> None:
    make_vm(store, "old")
    ops = txn.plan_rename(store, "old", "new", rewrite=rename_doc)
    store.update(store.paths.vm_status("old"), lambda d: {**d, "reason": "changed meanwhile"})
    before = tree_docs(store, store.paths.vm("old"))
    with pytest.raises(Conflict):
        txn.commit(store, ops)
    assert tree_docs(store, store.paths.vm("old")) == before
    assert store.exists(store.paths.vm("new")) is None


def test_rename_fails_cleanly_when_a_node_takes_ownership_meanwhile(store: Store) -> None:
    make_vm(store, "old")
    ops = txn.plan_rename(store, "old", "new", rewrite=rename_doc)
    store.create(store.paths.vm_owner("old"), {"node": "hv1"}, ephemeral=True)
    with pytest.raises(AlreadyExists):
        txn.commit(store, ops)
    assert store.exists(store.paths.vm("new")) is None
    assert store.get(store.paths.vm_owner("old")).doc == {"node": "hv1"}


def test_rename_fails_cleanly_when_a_child_appears_meanwhile(store: Store) -> None:
    make_vm(store, "old")
    ops = txn.plan_rename(store, "old", "new", rewrite=rename_doc)
    store.create(store.paths.vm("old") + "/extra", {"x": 1})
    with pytest.raises(Refused):
        txn.commit(store, ops)
    assert store.exists(store.paths.vm("new")) is None
    assert store.get(store.paths.vm("old") + "/extra").doc == {"x": 1}


def test_rename_of_a_missing_vm_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        txn.rename_vm(store, "ghost", "new", rewrite=rename_doc)


# --- layout -------------------------------------------------------------------------------------

def test_layout_is_created_idempotently(zk_hosts: str, zk_root: str) -> None:
    with Store(zk_hosts, zk_root) as s:
        assert ensure_layout(s) == LAYOUT_VERSION
        assert ensure_layout(s) == LAYOUT_VERSION
        assert s.get(s.paths.config).doc["selector"] == "mem"
        assert s.get(s.paths.schema).doc == {"version": LAYOUT_VERSION}


def test_a_newer_layout_is_refused(zk_hosts: str, zk_root: str) -> None:
    with Store(zk_hosts, zk_root) as s:
        s.create(s.paths.schema, {"version": LAYOUT_VERSION + 1}, makepath=True)
        with pytest.raises(LayoutTooNew, match="upgrade"):
            ensure_layout(s)
        with pytest.raises(LayoutTooNew):
            check_layout(s)
        assert s.exists(s.paths.vms) is None


def test_store_root_isolation(store: Store, zk_hosts: str) -> None:
    anonymous = replace(ZKTarget.parse(zk_hosts), user=None, password=None)
    raw = KazooClient(**anonymous.kazoo_args())  # exists() needs no right
    raw.start()
    try:
        assert raw.exists(store.paths.vms) is not None
        assert raw.exists("/herd/vms/should-not-exist-here") is None
    finally:
        raw.stop()
        raw.close()


# --- multiRead extension ---------------------------------------------------------------------

def test_multiread_returns_each_read_or_its_own_error(store: Store) -> None:
    from kazoo.exceptions import NoNodeError

    from store.multiread import GET_CHILDREN, GET_DATA, multi_read_async

    make_vm(store, "a")
    p = store.paths
    reads = [(GET_DATA, p.vm("a")), (GET_DATA, p.vm("missing")), (GET_CHILDREN, p.vm("a")),
             (GET_CHILDREN, p.vm("missing")), (GET_DATA, p.vm_status("a"))]
    replies = multi_read_async(store.client, reads).get(timeout=5)
    assert len(replies) == 5
    data, stat = replies[0]
    assert stat.numChildren == 2 and b'"name":"a"' in data
    assert isinstance(replies[1], NoNodeError)
    assert sorted(replies[2]) == ["placement", "status"]
    assert isinstance(replies[3], NoNodeError)
    assert replies[4][0] == b'{"state":"stopped","node":null}'


def test_get_many_skips_missing_paths(store: Store) -> None:
    make_vm(store, "a")
    p = store.paths
    got = store.get_many([p.vm("a"), p.vm("zzz"), p.vm_placement("a")] * 200)
    assert set(got) == {p.vm("a"), p.vm_placement("a")}
    assert got[p.vm_placement("a")].doc == {"node": "hv1", "lastNode": None}


# --- VM-level operations --------------------------------------------------------------------

def test_define_then_rename_a_vm_renames_its_domain_xml(store: Store) -> None:
    from store import vms

    xml = "<domain type='test'>\n  <name>web1</name>\n  <memory unit='MiB'>64</memory>\n</domain>"
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "web1"},
          "spec": {"state": "stopped", "node": "hv2", "xml": xml}}
    txn.commit(store, vms.define_ops(store.paths, vm))
    assert store.get(store.paths.vm_placement("web1")).doc["node"] == "hv2"
    vms.rename_vm(store, "web1", "web2")
    renamed = store.get(store.paths.vm("web2")).doc
    assert renamed["metadata"]["name"] == "web2"
    assert renamed["spec"]["xml"] == xml.replace("web1", "web2")
    assert store.get(store.paths.vm_placement("web2")).doc["node"] == "hv2"
    assert store.get(store.paths.vm_status("web2")).doc["state"] == "stopped"
    assert store.exists(store.paths.vm("web1")) is None
