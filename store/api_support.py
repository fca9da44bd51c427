"""Non-blocking commits for the asyncio API server (`server`), beside `store.txn`.

`commit_async(store, ops, done)` sends `ops` as ONE ZooKeeper transaction through kazoo's
asynchronous API and returns at once; `done` is called with None or the `StoreError` the
transaction met (mapped as `txn.commit` maps it), on kazoo's completion thread. A server
that waits on many commits at once this way pipelines them on its one connection, rather
than parking a thread per commit (kazoo's blocking calls cost a thread hand-off each).
Called by `server.access`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from store import codec, txn
from store.client import UNAVAILABLE, Store
from store.errors import StoreError, Unavailable

Done = Callable[[StoreError | None], None]


def commit_async(store: Store, ops: Sequence[txn.Op], done: Done) -> None:
    """Send `ops` as one transaction; `done(None | error)` runs when ZooKeeper answers.

    Raises at once (nothing sent) when the connection is suspended, or when the operations
    need more than one transaction (`StoreError`; `txn.commit` would split them).
    """
    if not store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    result = _transaction(store, ops).commit_async()

    def finished(res: Any) -> None:
        try:
            txn._check_results(ops, res.get_nowait())
        except StoreError as e:
            done(e)
            return
        except UNAVAILABLE as e:
            done(Unavailable(f"ZooKeeper unavailable: {type(e).__name__}"))
            return
        except Exception as e:  # connection loss and the like: kazoo's own errors
            done(Unavailable(f"ZooKeeper unavailable: {type(e).__name__}: {e}"))
            return
        done(None)

    result.rawlink(finished)


def _transaction(store: Store, ops: Sequence[txn.Op]) -> Any:
    """kazoo's transaction of `ops`, each document encoded once; refuses one too large."""
    t = store.client.transaction()
    size = 0
    for op in ops:
        data = codec.encode(op.doc) if isinstance(op, txn.Create | txn.Set) else b""
        size += len(op.path.encode()) + len(data) + txn._OP_OVERHEAD
        if isinstance(op, txn.Create):
            t.create(op.path, data, ephemeral=op.ephemeral)
        elif isinstance(op, txn.Set):
            t.set_data(op.path, data, version=op.version)
        elif isinstance(op, txn.Delete):
            t.delete(op.path, version=op.version)
        else:
            t.check(op.path, op.version)
    if size > txn.MAX_TXN_BYTES:
        raise StoreError(f"the operations take {size} bytes, more than one ZooKeeper "
                         f"transaction ({txn.MAX_TXN_BYTES})")
    return t
