"""The cluster's event log: a bounded list of sequential znodes under `<root>/events`.

The primary records what it decided and why (fences, recoveries, flushes, failures);
the API records every write it was asked for (`kind: audit`, `record_many` in one
transaction per batch, `server.audit`); `GET /event` and operators list them. `trim`
keeps the newest `keep`. Blocking (run in threads).
"""

from __future__ import annotations

import time
from typing import Any

from store import txn
from store.client import Store
from store.errors import NotFound

KEEP = 1000


def record(store: Store, kind: str, message: str, **about: Any) -> str:
    """Append an event; returns its znode path."""
    doc = {"time": time.time(), "kind": kind, "message": message,
           **{k: v for k, v in about.items() if v is not None}}
    return store.create(store.paths.events + "/e-", doc, sequence=True)


def record_many(store: Store, docs: list[dict[str, Any]]) -> int:
    """Append events (each a document with its `time`, `kind` and `message`) in as few
    transactions as fit, in order; returns how many transactions it took."""
    ops = [txn.Create(store.paths.events + "/e-", doc, sequence=True) for doc in docs]
    return txn.commit(store, ops).transactions


def record_many_async(store: Store, docs: list[dict[str, Any]],
                      done: txn.Done) -> None:
    """`record_many` as ONE transaction sent without blocking (the API's audit batches,
    kept within a transaction by their sender); `done(None | error)` runs on kazoo's
    thread. Raises at once (`Unavailable`, `StoreError`) when it cannot be sent."""
    ops: list[txn.Op] = [txn.Create(store.paths.events + "/e-", doc, sequence=True)
                         for doc in docs]
    txn.commit_async(store, ops, done)


def recent(store: Store, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest `limit` events, oldest first."""
    names = store.children(store.paths.events)[-limit:]
    docs = store.get_many(f"{store.paths.events}/{n}" for n in names)
    return [docs[p].doc for p in sorted(docs)]


def trim(store: Store, *, keep: int = KEEP) -> int:
    """Delete all but the newest `keep` events; returns how many went."""
    names = store.children(store.paths.events)
    gone = 0
    for name in names[: max(0, len(names) - keep)]:
        try:
            store.delete(f"{store.paths.events}/{name}")
            gone += 1
        except NotFound:
            pass
    return gone
