"""Group commit of defines (`server.groupcommit`) against a real ZooKeeper: requests that
reach their commit in the same loop pass share one transaction, yet each keeps its own
all-or-nothing answer; and through the API, concurrent defines with a duplicate among them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from schemas.domainxml import MAX_XML_BYTES
from server.groupcommit import GroupCommit
from server.keys import COMMITS
from store import txn, vms
from store.client import Store
from store.codec import Doc
from store.errors import AlreadyExists, Unavailable
from tests.integration.test_api import api_server, xml


def vm(name: str) -> Doc:
    return {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name, "generation": 1},
            "spec": {"state": "stopped", "xml": xml(name)}}


def prepared(store: Store, name: str) -> txn.Prepared:
    return txn.prepare(vms.define_ops(store.paths, vm(name)))


async def commit_all(group: GroupCommit, store: Store, names: list[str]) -> list[Any]:
    """Commit one define per name, all queued in the same loop pass; each outcome."""
    return await asyncio.gather(*(group.commit(prepared(store, n)) for n in names),
                                return_exceptions=True)


def defined(store: Store) -> list[str]:
    return store.children(store.paths.vms)


async def test_defines_of_one_pass_share_one_transaction(store: Store) -> None:
    group = GroupCommit(store)
    names = [f"vm{i}" for i in range(5)]
    assert await commit_all(group, store, names) == [None] * 5
    assert (group.stats.transactions, group.stats.requests, group.stats.fallbacks) == (1, 5, 0)
    assert defined(store) == names
    for name in names:  # each VM whole: object, placement and status
        assert store.get(store.paths.vm_status(name)).doc["state"] == "stopped"
        assert store.get(store.paths.vm_placement(name)).doc["node"] is None


async def test_an_existing_name_fails_only_its_own_request(store: Store) -> None:
    group = GroupCommit(store)
    txn.commit(store, vms.define_ops(store.paths, vm("taken")))
    outcomes = await commit_all(group, store, ["a", "taken", "b"])
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], AlreadyExists)
    assert group.stats.fallbacks == 1  # the group failed, then each went on its own
    assert defined(store) == ["a", "b", "taken"]


async def test_the_same_name_twice_in_one_group_is_defined_once(store: Store) -> None:
    group = GroupCommit(store)
    outcomes = await commit_all(group, store, ["twin", "other", "twin"])
    assert outcomes[1] is None
    assert sorted(type(o).__name__ for o in (outcomes[0], outcomes[2])) == [
        "AlreadyExists", "NoneType"]
    assert defined(store) == ["other", "twin"]


async def test_a_queue_over_the_size_limit_goes_in_several_transactions(store: Store) -> None:
    one = prepared(store, "x").size
    group = GroupCommit(store, max_bytes=one * 2 + one // 2, max_members=10)
    names = [f"vm{i}" for i in range(7)]
    assert await commit_all(group, store, names) == [None] * 7
    assert group.stats.transactions == 4  # 2 + 2 + 2 + 1, in arrival order
    assert defined(store) == names


async def test_max_members_bounds_a_transaction(store: Store) -> None:
    group = GroupCommit(store, max_members=3)
    assert await commit_all(group, store, [f"vm{i}" for i in range(7)]) == [None] * 7
    assert group.stats.transactions == 3


async def test_a_suspended_store_refuses_at_once(zk_hosts: str, zk_root: str,
                                                 store: Store) -> None:
    stopped = Store(zk_hosts, zk_root)
    stopped.start()
    stopped.stop()
    with pytest.raises(Unavailable):
        await GroupCommit(stopped).commit(prepared(store, "never"))
    assert defined(store) == []


async def test_concurrent_defines_through_the_api(zk_hosts: str, zk_root: str, tmp_path: Path,
                                                  store: Store) -> None:
    """Many defines at once, one a duplicate: 201 for each new name, 409 for the duplicate,
    and every defined VM readable right after its define answered."""
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        await api.define("dup")

        async def define_then_get(name: str) -> tuple[int, int]:
            status, body = await api.post("/vm", {"xml": xml(name)})
            got, again = await api.get(f"/vm/{name}")
            if status == 201:
                assert again == body
            return status, got

        names = [f"vm{i}" for i in range(20)] + ["dup"]
        answers = await asyncio.gather(*(define_then_get(n) for n in names))
        assert answers[:-1] == [(201, 200)] * 20
        assert answers[-1] == (409, 200)
        assert sorted(defined(store)) == sorted(names)
        stats = api.app[COMMITS].stats
        assert stats.requests >= 21  # (grouped or not: the loop decides; the answers hold)
        text = await (await api.raw("GET", "/metrics")).text()
        assert f"herd_api_define_requests_total {float(stats.requests)}\n" in text
        assert f"herd_api_define_transactions_total {float(stats.transactions)}\n" in text


async def test_a_define_too_large_for_a_transaction_is_413(zk_hosts: str, zk_root: str,
                                                           tmp_path: Path, store: Store) -> None:
    async with api_server(zk_hosts, zk_root, tmp_path) as api:
        small = xml("big")
        padding = "<!--" + "x" * (MAX_XML_BYTES - len(small) - 7) + "-->"
        big = small.replace("<vcpu>", padding + "<vcpu>")  # the largest XML accepted
        assert len(big) == MAX_XML_BYTES
        status, err = await api.post("/vm", {"xml": big})
        assert status == 413 and err["error"]["code"] == "too_large", err
        await api.define("small")
    assert defined(store) == ["small"]
