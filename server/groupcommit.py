"""Group commit: the define transactions that reach their commit in the same pass of the
event loop go to ZooKeeper as ONE transaction.

Why: per define, one transaction of its own cost a kazoo request (and a wake-up of kazoo's
connection thread, which fights the loop for the GIL), a reply, a completion hand-off to
the loop and ZooKeeper's per-transaction work; at a few hundred defines a second those
dominated the server's time (bench/api_bench.py).

How: `commit(prepared)` queues a request's operations (encoded once, `store.txn.prepare`);
the first one queued schedules a flush with `call_soon`, so every handler that reaches its
commit in the same loop pass joins it. Nothing waits for a timer or for another commit,
and transactions in flight still pipeline on the one connection. A flush packs the queue,
in arrival order, into transactions of at most `max_bytes` and `max_members` requests; one
request's operations are never split.

Semantics per request are those of a commit of its own:
- a transaction of several requests applies all of them or none;
- when it fails on anything but connection trouble (say one request's name exists
  already, or two requests define the same name), each of its requests is committed again
  on its own, so each gets the answer it would have had alone (409 for the duplicate,
  success for the others);
- connection trouble (`Unavailable`) is every member's answer, as it would be alone
  (a write that may or may not have been applied says so).
Made by `server.app` (app key `COMMITS`); used through `server.access.commit_grouped` by
define and create-by-PUT.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from store import txn
from store.client import Store
from store.errors import StoreError, Unavailable

Outcome = StoreError | None


@dataclass(frozen=True)
class _Member:
    prepared: txn.Prepared
    future: asyncio.Future[Outcome]


@dataclass
class GroupStats:
    """Counters for tests and metrics: transactions sent, requests they carried, and
    groups that failed and were committed again request by request."""

    transactions: int = 0
    requests: int = 0
    fallbacks: int = 0


class GroupCommit:
    """Queues prepared operations and sends those of one loop pass together (module doc)."""

    def __init__(self, store: Store, *, max_bytes: int = txn.MAX_TXN_BYTES,
                 max_members: int = 256) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.stats = GroupStats()
        self._queue: list[_Member] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def commit(self, prepared: txn.Prepared) -> None:
        """Commit `prepared` all-or-nothing, maybe in one transaction with other requests'
        operations; raises what a commit of its own would raise."""
        if not self.store.writable:
            raise Unavailable("ZooKeeper connection is suspended; not writing")
        self._loop = loop = asyncio.get_running_loop()
        member = _Member(prepared, loop.create_future())
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append(member)
        error = await member.future
        if error is not None:
            raise error

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for group in self._pack(queue):
            self._send(group)

    def _pack(self, queue: list[_Member]) -> list[list[_Member]]:
        groups: list[list[_Member]] = [[]]
        size = 0
        for member in queue:
            full = len(groups[-1]) >= self.max_members
            if groups[-1] and (full or size + member.prepared.size > self.max_bytes):
                groups.append([])
                size = 0
            groups[-1].append(member)
            size += member.prepared.size
        return [g for g in groups if g]

    def _send(self, group: list[_Member]) -> None:
        loop = self._loop
        assert loop is not None

        def done(error: Outcome) -> None:  # kazoo's completion thread
            try:
                loop.call_soon_threadsafe(self._answered, group, error)
            except RuntimeError:  # the loop is closed: the server is gone
                pass

        self.stats.transactions += 1
        self.stats.requests += len(group)
        try:
            txn.commit_prepared_async(self.store, [m.prepared for m in group], done)
        except StoreError as e:
            _settle(group, e)

    def _answered(self, group: list[_Member], error: Outcome) -> None:
        if error is None or len(group) == 1 or isinstance(error, Unavailable):
            _settle(group, error)
            return
        self.stats.fallbacks += 1
        for member in group:
            self._send([member])


def _settle(group: list[_Member], error: Outcome) -> None:
    for member in group:
        if not member.future.done():  # a request may have gone away meanwhile
            member.future.set_result(error)
