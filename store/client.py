"""The ZooKeeper client wrapper: connection, session states, version-checked reads/writes.

`Store` owns one kazoo client rooted at a cluster root (default `/herd`). It
- tracks the session: SUSPENDED stops writes (they raise `Unavailable`), CONNECTED again
  re-enables them; after SUSPENDED or LOST it tells its session listeners, which re-add
  watches, re-create ephemerals and resync (kazoo itself re-establishes the session);
  tells the session id (`session_id`, `session_owns`) and the newest zxid seen, so that
  no module outside `store` needs the raw kazoo client;
- retries reads and writes on connection loss only (a retried write that had gone through
  shows up as a version conflict or an existing node, and callers treat it so);
- reads and writes JSON documents (`store.codec`) with their znode version, and offers a
  read-modify-write loop that sets with the version it read;
- reads ZooKeeper's replies and watch events through a buffer (`store.bufferedreads`):
  kazoo reads every message with a poll and a recv for its 4-byte length, then again for
  its body, each a GIL hand-off; a burst of watch events now costs one recv per 64 KiB.

Blocking: asyncio callers (daemon, API) run these methods in threads. Called by the
reconciler, the server, `store.txn`, `store.informer` and `store.layout`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import ZnodeStat
from kazoo.retry import KazooRetry, RetryFailedError

from store import codec
from store.bufferedreads import BufferedReads
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, NotFound, Refused, Unavailable
from store.multiread import GET_DATA, multi_read_async
from store.paths import Paths
from store.pollhandler import PollHandler
from store.session import SessionListener, SessionState
from store.target import ZKTarget

log = logging.getLogger(__name__)

"""Called with "suspended", "reconnected" (same session) or "lost" (a new session follows)."""

UNAVAILABLE = (ConnectionClosedError, SessionExpiredError, OperationTimeoutError, RetryFailedError,
               KazooTimeoutError)


@dataclass(frozen=True)
class Versioned:
    """A document with the znode stat it was read with."""

    doc: Doc
    stat: ZnodeStat

    @property
    def version(self) -> int:
        return int(self.stat.version)

    @property
    def mzxid(self) -> int:
        return int(self.stat.mzxid)


Modifier = Callable[[Doc], Doc | None]
"""Returns the new document, or None for "no change"; must be a pure function of its input."""


class Store:
    """A kazoo client under one cluster root, with the project's error model."""

    def __init__(
        self, hosts: str | ZKTarget, root: str = "/herd", *, timeout: float = 10.0,
        conflict_retries: int = 20
    ) -> None:
        self.paths = Paths(root)
        # Where, and as whom: every znode this client creates is Herd's identity's alone.
        self.target = hosts if isinstance(hosts, ZKTarget) else ZKTarget.parse(hosts)
        handler = PollHandler()
        # Reconnect at least every quarter of the session timeout: kazoo's default backoff
        # grows to an hour, so after a ZooKeeper outage of ten seconds a client knocked only
        # every ~6 s and came back after its (restored) session had expired (issue #8,
        # tests/integration/test_store_reconnect.py).
        reconnect = KazooRetry(max_tries=-1, delay=0.05, backoff=2, max_jitter=0.2,
                               max_delay=max(0.05, timeout / 4), sleep_func=handler.sleep_func)
        # The raw kazoo client: for `store`'s own modules (and tests that poke ZooKeeper
        # from outside); everyone else uses this class's methods and accessors.
        self.client = KazooClient(timeout=timeout, handler=handler, connection_retry=reconnect,
                                  default_acl=self.target.acl, **self.target.kazoo_args())
        BufferedReads.install(self.client)
        self.conflict_retries = conflict_retries
        # How long a pipelined batch may wait for its reply; generous, since replies queue
        # behind a reconnect; past it, ZooKeeper counts as unavailable.
        self._op_timeout = max(timeout, 10.0)
        self._retry = KazooRetry(max_tries=8, delay=0.05, backoff=2, max_delay=1.0,
                                 ignore_expire=False)
        self.session = SessionState()
        self.client.add_listener(self.session.on_state)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, *, timeout: float = 15.0) -> None:
        try:
            self.client.start(timeout=timeout)
        except Exception as e:
            self.client.stop()
            self.client.close()
            raise Unavailable(f"cannot connect to ZooKeeper at {self.client.hosts}: {e}") from e
        self.session.set_writable(True)

    def stop(self) -> None:
        self.session.set_writable(False)
        self.client.stop()
        self.client.close()

    def __enter__(self) -> Store:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def writable(self) -> bool:
        return self.session.writable

    def wait_writable(self, timeout: float | None = None) -> bool:
        """Block until the session is connected and writes are allowed (False on timeout)."""
        return self.session.wait_writable(timeout)

    def add_session_listener(self, listener: SessionListener) -> None:
        """Register a callback for session changes; it runs on kazoo's thread and must not block."""
        self.session.add_listener(listener)

    def remove_session_listener(self, listener: SessionListener) -> None:
        self.session.remove_listener(listener)

    @property
    def session_id(self) -> int | None:
        """This client's ZooKeeper session id; None while it has none (connecting)."""
        client_id = self.client.client_id
        return None if client_id is None or client_id[0] is None else int(client_id[0])

    def session_owns(self, stat: ZnodeStat) -> bool:
        """The znode is an ephemeral of this very session (nothing is while there is none)."""
        session = self.session_id
        return session is not None and stat.ephemeralOwner == session

    @property
    def last_zxid(self) -> int:
        """The newest zxid this connection has seen (0 before any)."""
        return int(self.client.last_zxid or 0)

    # --- primitives --------------------------------------------------------------------------

    def _bounded(self, fn_async: Callable[..., Any], *, write: bool = False
                 ) -> Callable[..., Any]:
        """A kazoo `*_async` call made synchronous with a bound: a request queued while the
        connection is down must never block its caller forever.

        A write is only queued while the session is writable (checked again on every retry).
        Past the bound, a request kazoo has not sent yet is withdrawn from its queue, so
        `Unavailable` then means "not done"; one already sent may or may not have been
        applied, and the error says so.
        """
        sent = False  # a write that reached a server before the connection dropped

        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal sent
            if write and sent and not self.session.writable:
                raise Unavailable("the connection was lost after the write was sent; it may "
                                  "or may not have been applied")
            if write:
                self._check_writable()
            result = fn_async(*args, **kwargs)
            try:
                return result.get(timeout=self._op_timeout)
            except ConnectionLoss:
                sent = True
                raise
            except KazooTimeoutError:
                if _withdraw(self.client, result):
                    raise Unavailable("ZooKeeper unavailable: request not sent") from None
                raise Unavailable("ZooKeeper did not answer in time; the request may or may "
                                  "not have been applied") from None
        return call

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """For `store`'s recipes: a kazoo call, retried on connection loss, errors mapped."""
        return self._call(fn, *args, **kwargs)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a kazoo call, retrying on connection loss; map kazoo errors to ours."""
        try:
            return self._retry(fn, *args, **kwargs)
        except NoNodeError as e:
            raise NotFound(_path_of(args)) from e
        except NodeExistsError as e:
            raise AlreadyExists(_path_of(args)) from e
        except BadVersionError as e:
            raise Conflict(f"{_path_of(args)} changed since it was read") from e
        except NotEmptyError as e:
            raise Refused(f"{_path_of(args)} has children") from e
        except (ConnectionLoss, *UNAVAILABLE) as e:
            raise Unavailable(f"ZooKeeper unavailable: {type(e).__name__}") from e

    def _check_writable(self) -> None:
        if not self.session.writable:
            raise Unavailable("ZooKeeper connection is suspended; not writing")

    def get(self, path: str) -> Versioned:
        data, stat = self._call(self._bounded(self.client.get_async), path)
        return Versioned(codec.decode(data, path=path), stat)

    def exists(self, path: str) -> ZnodeStat | None:
        return self._call(self._bounded(self.client.exists_async), path)

    def exists_watched(self, path: str, on_change: Callable[[], None]) -> ZnodeStat | None:
        """`exists` plus a one-shot watch: `on_change()` runs on kazoo's thread when the znode
        is next created, changed or deleted. One plain attempt (no retry), kazoo's errors
        as they are: as the node registration (`reconciler.node.registration`) has always
        made it."""
        return self.client.exists(path, watch=lambda _event: on_change())

    def children(self, path: str) -> list[str]:
        return sorted(self._call(self._bounded(self.client.get_children_async), path))

    def get_many(self, paths: Iterable[str], *, batch: int = 256) -> dict[str, Versioned]:
        """Batched, pipelined reads (`multiRead`): every batch is sent before any reply is
        awaited. Paths that do not exist are left out of the result.
        """
        todo = list(paths)
        batches = [todo[i:i + batch] for i in range(0, len(todo), batch)]
        try:
            pending = [(b, multi_read_async(self.client, [(GET_DATA, p) for p in b]))
                       for b in batches]
            out: dict[str, Versioned] = {}
            for b, result in pending:
                for path, reply in zip(b, result.get(timeout=self._op_timeout), strict=True):
                    if isinstance(reply, NoNodeError):
                        continue
                    if isinstance(reply, Exception):
                        raise reply
                    out[path] = Versioned(codec.decode(reply[0], path=path), reply[1])
            return out
        except (ConnectionLoss, *UNAVAILABLE) as e:
            raise Unavailable(f"ZooKeeper unavailable: {type(e).__name__}") from e

    def create(
        self, path: str, doc: Doc, *, ephemeral: bool = False, makepath: bool = False,
        sequence: bool = False,
    ) -> str:
        """The path created (with `sequence`, `path` plus ZooKeeper's sequence number)."""
        self._check_writable()
        create = self._bounded(self.client.create_async, write=True)
        return str(self._call(create, path, codec.encode(doc), ephemeral=ephemeral,
                              makepath=makepath, sequence=sequence))

    def set(self, path: str, doc: Doc, *, version: int) -> ZnodeStat:
        """Write `doc` only if the znode still has `version` (-1: unconditionally)."""
        self._check_writable()
        return self._call(self._bounded(self.client.set_async, write=True), path, codec.encode(doc),
                          version=version)

    def delete(self, path: str, *, version: int = -1, recursive: bool = False) -> None:
        self._check_writable()
        if recursive:  # kazoo has no async recursive delete; admin and tests only
            self._call(self.client.delete, path, version=version, recursive=True)
        else:
            self._call(self._bounded(self.client.delete_async, write=True), path, version=version)

    def ensure(self, path: str, doc: Doc | None = None) -> None:
        """Create `path` (and its parents) if missing; an existing znode is left as it is."""
        if self.exists(path) is not None:
            return
        try:
            self.create(path, doc or {}, makepath=True)
        except AlreadyExists:
            pass

    # --- read-modify-write -------------------------------------------------------------------

    def update(self, path: str, modify: Modifier, *, expect_mzxid: int | None = None) -> Versioned:
        """Read, apply `modify`, write back with the version read; retry on conflict.

        With `expect_mzxid` (a caller's resourceVersion) nothing is retried: if the znode
        changed since the caller read it, `Conflict` is raised and nothing is written.
        """
        for attempt in range(self.conflict_retries):
            if attempt:
                _backoff(attempt)
            current = self.get(path)
            if expect_mzxid is not None and current.mzxid != expect_mzxid:
                raise Conflict(f"{path} is at resourceVersion {current.mzxid}, not {expect_mzxid}")
            new = modify(_copy(current.doc))
            if new is None or new == current.doc:
                return current
            try:
                stat = self.set(path, new, version=current.version)
            except Conflict:
                if expect_mzxid is not None:
                    raise
                continue
            return Versioned(new, stat)
        raise Conflict(f"{path}: still conflicting after {self.conflict_retries} attempts")


def _withdraw(client: KazooClient, result: Any) -> bool:
    """Remove a request kazoo has queued but not sent; True if it was still there."""
    for entry in list(client._queue):
        if entry[1] is result:
            try:
                client._queue.remove(entry)
            except ValueError:  # the connection thread took it meanwhile: it was sent
                return False
            return True
    return False


def _backoff(attempt: int) -> None:
    """Capped exponential backoff with full jitter between conflicting writers (no livelock)."""
    time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.1)))


def _copy(doc: Doc) -> Doc:
    """A deep copy of a JSON document (cheaper than copy.deepcopy for JSON shapes)."""
    return codec.decode(codec.encode(doc)) if doc else {}


def _path_of(args: tuple[Any, ...]) -> str:
    return str(args[0]) if args else "?"
