"""The coordinator election under `<root>/election` (kazoo's Lock recipe, whose contenders
are the coordinator nodes, each identified by `identifier(node)`, a JSON document
`{"node": <name>}`).

The primary is the first contender: the lock znode with the lowest sequence number.
`Campaign` runs one node's candidacy, term after term (`reconciler.cluster.coordinator` leads
while a term lasts). `primary()` asks ZooKeeper (blocking: run it in a thread);
`primary_of()` answers from a watched copy of the election's znodes (the API's cache).

Safety: the lock is an ephemeral znode of the store's session. When the session is
SUSPENDED or LOST, the term ends at once, before ZooKeeper can expire the session and let
another coordinator win; the lock is given up once the holder has stopped acting, and the
campaign contends again once connected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from kazoo.exceptions import CancelledError as KazooCancelled

from store.client import Store

log = logging.getLogger(__name__)

SEQUENCE_DIGITS = 10  # kazoo's lock znodes end in a 10-digit sequence number


def identifier(node: str) -> str:
    """What a coordinator's lock znode holds: JSON, so that watched caches can read it."""
    return json.dumps({"node": node})


def contender_node(raw: str) -> str:
    """The node name of a contender's identifier (a bare name from older daemons too)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    return str(doc.get("node")) if isinstance(doc, dict) else raw


def contenders(store: Store) -> list[str]:
    """Coordinator node names in the order they would lead."""
    lock = store.client.Lock(store.paths.election)
    return [contender_node(str(c)) for c in store.call(lock.contenders)]


def primary(store: Store) -> str | None:
    found = contenders(store)
    return found[0] if found else None


def primary_of(lock_znodes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The primary from the election's lock znodes (child name -> document)."""
    if not lock_znodes:
        return None
    first = min(lock_znodes, key=lambda name: name[-SEQUENCE_DIGITS:])
    node = lock_znodes[first].get("node")
    return str(node) if node is not None else None


class Term:
    """One term as primary: over as soon as the session is in doubt or the campaign stops."""

    def __init__(self, ended: asyncio.Event) -> None:
        self._ended = ended

    @property
    def over(self) -> bool:
        return self._ended.is_set()

    async def wait(self) -> None:
        """Until the term is over."""
        await self._ended.wait()


class Campaign:
    """One node's candidacy for the primary role, on one event loop (see module doc).

    `async for term in campaign.terms():` runs the body once per term won; the body acts
    as primary until `term.wait()` returns, then stops acting; the lock is released when
    the body is done (also when it raises: iterate under `contextlib.aclosing`). `stop()`
    ends the current term and the iteration, and withdraws a pending candidacy.
    """

    def __init__(self, store: Store, node: str) -> None:
        self.store = store
        self.node = node
        self._ended = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = store.client.Lock(store.paths.election, identifier(node))

    async def terms(self) -> AsyncGenerator[Term, None]:
        """A term each time this node wins, until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self.store.add_session_listener(self._on_session)
        try:
            while not self._stopping.is_set():
                if not await self._acquire():
                    continue
                try:
                    self._ended = asyncio.Event()  # what ended the last term is forgotten
                    self._failures = 0
                    if self.store.writable and not self._stopping.is_set():
                        yield Term(self._ended)
                finally:
                    await self._release()
        finally:
            self.store.remove_session_listener(self._on_session)

    def stop(self) -> None:
        self._stopping.set()
        self._ended.set()
        self._lock.cancel()

    def _on_session(self, what: str) -> None:
        """Kazoo thread: any doubt about the session ends the term at once."""
        if self._loop is None or self._loop.is_closed():
            return
        if what in ("suspended", "lost"):
            self._loop.call_soon_threadsafe(self._end_term)
        elif what == "reconnected":
            self._loop.call_soon_threadsafe(self._reconnected.set)

    def _end_term(self) -> None:
        """The term current when this runs on the loop (not when the session changed)."""
        self._ended.set()

    async def _acquire(self) -> bool:
        """Block until this node leads (True), or the attempt was cancelled or failed."""
        while not self.store.writable and not self._stopping.is_set():
            self._reconnected.clear()
            await _first(self._reconnected, self._stopping)
        if self._stopping.is_set():
            return False
        try:
            return bool(await asyncio.to_thread(self._lock.acquire))
        except KazooCancelled:
            return False
        except Exception as e:  # connection trouble: contend again once connected
            log.warning("election: %r", e)
            self._failures += 1
            await asyncio.sleep(min(0.1 * 2**self._failures, 5.0))  # capped backoff
            return False

    async def _release(self) -> None:
        try:
            await asyncio.to_thread(self._lock.release)
        except Exception as e:  # the session may be gone; so is the lock znode then
            log.debug("releasing the election lock: %s", e)


async def _first(*events: asyncio.Event) -> None:
    """Until any of the events is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
