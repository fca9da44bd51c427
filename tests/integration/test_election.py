"""`store.election.Campaign` against a real ZooKeeper: the first contender leads, a pending
candidacy is withdrawn on stop, the next contender leads once the primary stops, and a
term ends at once when the session is lost, after which the campaign contends again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import aclosing

import pytest

from store import election
from store.client import Store
from store.election import Campaign, Term
from tests.integration.test_informer import _expire_session
from tests.support.waits import wait_children

WAIT = 10.0


class Candidate:
    """A campaign run as the coordinator runs it: each term is handed to the test."""

    def __init__(self, store: Store, node: str) -> None:
        self.campaign = Campaign(store, node)
        self.terms: asyncio.Queue[Term] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aclosing(self.campaign.terms()) as terms:
            async for term in terms:
                self.terms.put_nowait(term)
                await term.wait()

    async def next_term(self) -> Term:
        return await asyncio.wait_for(self.terms.get(), WAIT)

    async def stop(self) -> None:
        self.campaign.stop()
        await asyncio.wait_for(self.task, WAIT)


@pytest.fixture
def sessions(zk_hosts: str, zk_root: str) -> Iterator[list[Store]]:
    stores = [Store(zk_hosts, zk_root, timeout=4.0) for _ in range(3)]
    for s in stores:
        s.start()
    yield stores
    for s in stores:
        s.stop()


async def contenders(store: Store) -> list[str]:
    return await asyncio.to_thread(election.contenders, store)


async def test_one_leads_at_a_time_and_the_next_once_it_stops(
        store: Store, sessions: list[Store]) -> None:
    path = store.paths.election
    hv1 = Candidate(sessions[0], "hv1")
    first = await hv1.next_term()
    hv2 = Candidate(sessions[1], "hv2")
    await wait_children(store, path, lambda c: len(c) == 2)
    hv3 = Candidate(sessions[2], "hv3")
    await wait_children(store, path, lambda c: len(c) == 3)
    assert await contenders(store) == ["hv1", "hv2", "hv3"]
    assert hv2.terms.empty() and hv3.terms.empty() and not first.over

    await hv3.stop()  # a pending candidacy: withdrawn, its lock znode gone
    assert await contenders(store) == ["hv1", "hv2"]
    await hv1.stop()  # the primary: its term is over and the lock goes to hv2
    assert first.over
    second = await hv2.next_term()
    assert await contenders(store) == ["hv2"] and not second.over
    await hv2.stop()
    assert second.over
    assert await contenders(store) == []


async def test_a_lost_session_ends_the_term_and_the_campaign_contends_again(
        store: Store, sessions: list[Store], zk_hosts: str) -> None:
    node = Candidate(sessions[0], "hv1")
    try:
        first = await node.next_term()
        await asyncio.to_thread(_expire_session, sessions[0].client, zk_hosts)
        await asyncio.wait_for(first.wait(), WAIT)  # at once, on the lost session
        again = await node.next_term()  # a new session, a new lock znode
        assert not again.over
        assert await contenders(store) == ["hv1"]
    finally:
        await node.stop()
