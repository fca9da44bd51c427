"""The cluster's two bounded logs, sequential znodes each: `<root>/events` and
`<root>/audit`.

The event log holds what the primary decided and why (fences, recoveries, flushes,
failures) and what the nodes report (migrations, foreign domains); the audit log holds
every write the API was asked for (`kind: audit`, `record_many_async` in one transaction
per batch, `server.audit`). They are apart so that a busy API cannot push the primary's
decisions out: each keeps its newest `KEEP` (`trim`). `GET /event` and operators list
them (`recent`). Blocking (run in threads) but for `record_many_async`.
"""

from __future__ import annotations

import enum
import time
from typing import Any

from store import txn
from store.client import Store
from store.errors import NotFound

KEEP = 1000


class Log(enum.Enum):
    EVENTS = "events"
    AUDIT = "audit"

    def folder(self, store: Store) -> str:
        return store.paths.audit if self is Log.AUDIT else store.paths.events


def record(store: Store, kind: str, message: str, **about: Any) -> str:
    """Append an event to the event log; returns its znode path."""
    doc = {"time": time.time(), "kind": kind, "message": message,
           **{k: v for k, v in about.items() if v is not None}}
    return store.create(store.paths.events + "/e-", doc, sequence=True)


def record_many_async(store: Store, docs: list[dict[str, Any]], done: txn.Done, *,
                      log: Log = Log.AUDIT) -> None:
    """Append records (each a document with its `time`, `kind` and `message`) as ONE
    transaction sent without blocking (the API's audit batches, kept within a transaction
    by their sender); `done(None | error)` runs on kazoo's thread. Raises at once
    (`Unavailable`, `StoreError`) when it cannot be sent."""
    ops: list[txn.Op] = [txn.Create(log.folder(store) + "/e-", doc, sequence=True)
                         for doc in docs]
    txn.commit_async(store, ops, done)


def recent(store: Store, *, limit: int = 100, log: Log = Log.EVENTS) -> list[dict[str, Any]]:
    """The newest `limit` records of one log, oldest first."""
    folder = log.folder(store)
    try:
        names = store.children(folder)[-limit:]
    except NotFound:  # a cluster made before the audit log had its own folder
        return []
    docs = store.get_many(f"{folder}/{n}" for n in names)
    return [docs[p].doc for p in sorted(docs)]


def trim(store: Store, *, keep: int = KEEP, log: Log = Log.EVENTS) -> int:
    """Delete all but the newest `keep` records of one log; returns how many went."""
    folder = log.folder(store)
    names = store.children(folder)
    gone = 0
    for name in names[: max(0, len(names) - keep)]:
        try:
            store.delete(f"{folder}/{name}")
            gone += 1
        except NotFound:
            pass
    return gone
