"""The watched cache (informer): an in-memory copy of one ZooKeeper subtree, kept current
by ONE persistent recursive watch, with an event fan-out to subscribers.

How it stays correct:
- the watch is added *before* the subtree is listed, so no change after the listing
  started is missed;
- every read, whether from the listing or triggered by watch events (which carry only a
  path), is an async `multiRead` batch whose completion is applied to the cache in the
  order the reads were sent (send and link happen under one lock; kazoo completes replies
  in order on one thread); a reply keeps the newest document by `mzxid`, and `NoNode`
  means deleted;
- a burst of watch events is read as one batch: each event queues its path, and one flush
  queued behind them on kazoo's callback thread reads them all (no timer);
- a (re)sync ends with a sweep queued behind all its reads: cached paths that neither the
  listing nor any event since the sync began has seen are gone, and are dropped;
- after any reconnect (same session or a new one) the watch is added again and the whole
  subtree relisted: ZooKeeper does not restore persistent watches for kazoo.

Subscribers are called on kazoo's completion thread with each change and must not block
(the daemon and the API hand events to their asyncio loop). Used by the node daemon and the
API server, one informer per subtree (`/vms`, `/nodes`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from kazoo.exceptions import (
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.protocol.states import Callback, WatchedEvent

from store import codec
from store.addwatch import add_persistent_recursive_watch, remove_persistent_recursive_watch
from store.client import Store, Versioned
from store.errors import CorruptDocument, Unavailable
from store.multiread import GET_CHILDREN, GET_DATA, multi_read_async

log = logging.getLogger(__name__)

# What a listing meets when the connection goes: wait for it to come back, then list again.
CONNECTION_TROUBLE = (ConnectionLoss, SessionExpiredError, OperationTimeoutError,
                      TimeoutError, Unavailable)

ChangeKind = Literal["added", "modified", "deleted"]


@dataclass(frozen=True)
class Change:
    """One change of the cache: `old` is None when added, `new` is None when deleted."""

    kind: ChangeKind
    path: str
    old: Versioned | None
    new: Versioned | None


Subscriber = Callable[[Change], None]
SyncListener = Callable[[], None]


class Informer:
    """A cache of every znode below `prefix` (the prefix itself included)."""

    def __init__(self, store: Store, prefix: str, *, sync_timeout: float = 60.0) -> None:
        self.store = store
        self.prefix = prefix
        self.sync_timeout = sync_timeout
        self._cache: dict[str, Versioned] = {}
        self._subscribers: list[Subscriber] = []
        self._sync_listeners: list[SyncListener] = []
        self._send_lock = threading.Lock()
        self._seen: set[str] | None = None  # paths seen since the current (re)sync began
        self._pending: dict[str, None] = {}  # paths changed since the last flush, in order
        self._flush_queued = False
        self._synced = threading.Event()
        # Session changes seen: a sync started before the latest one does not make the
        # cache synced (its last reply may land after a suspension cleared the flag).
        self._session_epoch = 0
        self._epoch_lock = threading.Lock()
        self._resync_wanted = threading.Event()
        self._stopping = threading.Event()
        self._resyncer: threading.Thread | None = None
        self.resyncs = 0

    # --- public API ----------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every change from now on; returns the unsubscribe function."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def on_synced(self, listener: SyncListener) -> None:
        """Call `listener` after every completed (re)sync (a level-triggered full pass is due)."""
        self._sync_listeners.append(listener)

    def start(self) -> None:
        """Add the watch, list the subtree, and return once the cache is in sync. A
        connection lost during that first listing (ZooKeeper down as a daemon starts) is
        no failure: the resync loop lists again, with backoff, once it is back (issue #20:
        a herd-node started just before an outage exited)."""
        self.store.add_session_listener(self._on_session)
        self._resyncer = threading.Thread(target=self._resync_loop, name="informer-resync",
                                          daemon=True)
        self._resyncer.start()
        try:
            self._sync()
        except CONNECTION_TROUBLE as e:
            log.warning("first sync of %s failed (%r); syncing once ZooKeeper is back",
                        self.prefix, e)
            self._resync_wanted.set()
            while not self._synced.wait(1.0):
                if self._stopping.is_set():
                    raise

    def stop(self) -> None:
        self._stopping.set()
        self._resync_wanted.set()
        self.store.remove_session_listener(self._on_session)
        if self._resyncer is not None:
            self._resyncer.join(timeout=10)
        try:
            remove_persistent_recursive_watch(self.store.client, self.prefix, self._on_watch)
        except Exception as e:  # the connection may be gone already; the watch dies with it
            log.debug("removing the watch on %s: %s", self.prefix, e)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def get(self, path: str) -> Versioned | None:
        return self._cache.get(path)

    def __len__(self) -> int:
        return len(self._cache)

    def items(self) -> Iterator[tuple[str, Versioned]]:
        """A consistent snapshot of (path, document) pairs."""
        return iter(list(self._cache.items()))

    def children(self, path: str) -> list[str]:
        """Names of the cached direct children of `path`."""
        prefix = path.rstrip("/") + "/"
        return sorted(p[len(prefix):] for p in list(self._cache)
                      if p.startswith(prefix) and "/" not in p[len(prefix):])

    # --- sync ------------------------------------------------------------------------------

    def _on_session(self, what: str) -> None:
        """Suspended or lost: the cache may be stale. Reconnected: watch again and relist."""
        with self._epoch_lock:
            self._session_epoch += 1
            self._synced.clear()
        if what == "reconnected":
            self._resync_wanted.set()

    def _resync_loop(self) -> None:
        failures = 0
        while True:
            self._resync_wanted.wait()
            if self._stopping.is_set():
                return
            self._resync_wanted.clear()
            try:
                self._sync()
                failures = 0
            except Exception as e:
                failures += 1
                delay = min(0.1 * 2**failures, 5.0)
                log.warning("resync of %s failed (%r); retrying in %.1fs", self.prefix, e, delay)
                if not self._stopping.wait(delay):
                    self._resync_wanted.set()

    def _sync(self) -> None:
        """Watch, then list: the sweep at the end drops what no read has seen."""
        with self._send_lock:
            self._seen = set()
        epoch = self._session_epoch
        add_persistent_recursive_watch(self.store.client, self.prefix, self._on_watch)
        self._list()
        done = threading.Event()
        with self._send_lock:
            self.store.client.exists_async(self.prefix).rawlink(
                lambda _r: self._sweep(done, epoch=epoch))
        if not done.wait(self.sync_timeout):
            raise TimeoutError(f"sync of {self.prefix} did not finish in {self.sync_timeout}s")

    def _list(self) -> None:
        """Breadth-first: read every znode of a level, then list children where there are any.

        Reads go in `multiRead` batches; a batch's reply is applied in order like any read.
        """
        level = [self.prefix]
        while level:
            reads = [(batch, self._read_batch(batch)) for batch in _batches(level)]
            parents = [
                path
                for batch, result in reads
                for path, res in zip(batch, result.get(timeout=self.sync_timeout), strict=True)
                if isinstance(res, tuple) and res[1].numChildren
            ]
            listings = [(batch, multi_read_async(self.store.client,
                                                 [(GET_CHILDREN, p) for p in batch]))
                        for batch in _batches(parents)]
            level = [
                f"{path}/{child}"
                for batch, result in listings
                for path, res in zip(batch, result.get(timeout=self.sync_timeout), strict=True)
                if isinstance(res, list)
                for child in res
            ]

    def _sweep(self, done: threading.Event, *, epoch: int) -> None:
        with self._send_lock:
            seen, self._seen = self._seen or set(), None
        for path in [p for p in self._cache if p not in seen]:
            self._remove(path)
        self.resyncs += 1
        with self._epoch_lock:
            if epoch == self._session_epoch:  # else: the session changed meanwhile; the
                self._synced.set()  # resync after the reconnect says when it is synced
        done.set()
        for listener in list(self._sync_listeners):
            self._safely(listener)

    # --- reads and their application (kazoo's completion thread) ----------------------------

    def _on_watch(self, event: WatchedEvent) -> None:
        """Queue the path; one flush, queued behind the events already waiting on kazoo's
        callback thread, reads the whole burst in `multiRead` batches (in event order)."""
        with self._send_lock:
            self._pending[event.path] = None
            if self._flush_queued:
                return
            self._flush_queued = True
        self.store.client.handler.dispatch_callback(Callback("watch", self._flush, ()))

    def _flush(self) -> None:
        with self._send_lock:
            paths, self._pending = list(self._pending), {}
            self._flush_queued = False
        for batch in _batches(paths):
            self._read_batch(batch)

    def _read_batch(self, paths: list[str]) -> Any:
        with self._send_lock:
            result = multi_read_async(self.store.client, [(GET_DATA, p) for p in paths])
            result.rawlink(lambda r: self._apply_batch(paths, r))
            return result

    def _apply_batch(self, paths: list[str], result: Any) -> None:
        try:
            replies = result.get_nowait()
        except Exception as e:  # connection trouble: the resync after reconnect repairs it
            log.debug("batch read under %s failed: %s", self.prefix, e)
            return
        for path, reply in zip(paths, replies, strict=True):
            self._apply_reply(path, reply)

    def _apply_reply(self, path: str, reply: Any) -> None:
        if self._seen is not None:
            self._seen.add(path)
        if isinstance(reply, NoNodeError):
            self._remove(path)
            return
        if isinstance(reply, Exception):
            log.debug("read of %s failed: %r", path, reply)
            return
        data, stat = reply
        try:
            new = Versioned(codec.decode(data, path=path), stat)
        except CorruptDocument as e:
            log.error("ignoring %s", e)
            return
        old = self._cache.get(path)
        if old is not None and old.mzxid >= new.mzxid:
            return
        self._cache[path] = new
        self._emit(Change("added" if old is None else "modified", path, old, new))

    def _remove(self, path: str) -> None:
        old = self._cache.pop(path, None)
        if old is not None:
            self._emit(Change("deleted", path, old, None))

    def _emit(self, change: Change) -> None:
        for subscriber in list(self._subscribers):
            self._safely(subscriber, change)

    @staticmethod
    def _safely(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer subscriber failed")


BATCH = 256


def _batches(paths: list[str]) -> list[list[str]]:
    return [paths[i:i + BATCH] for i in range(0, len(paths), BATCH)]
