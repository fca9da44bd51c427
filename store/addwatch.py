"""Persistent recursive watches (ZooKeeper >= 3.6 `addWatch`) for kazoo 2.11.

kazoo 2.11 has no `addWatch` (python-zk/kazoo#715 is still open). This module adds the
two pieces it needs, and nothing else, so that it can be dropped once kazoo ships them:

- `AddWatch`, a request with opcode 106 (the path, then an int mode; the reply is empty),
  sent through the client's own request queue, and `RemoveWatches` (opcode 18) to drop it;
- a wrapper around the connection's watch-event reader that hands every event under a
  registered prefix to its callbacks before kazoo's own dispatch (which pops one-shot
  watchers; persistent ones must never be popped).

ZooKeeper does not restore persistent watches that kazoo re-sends after a reconnect, so
the caller re-adds the watch after every reconnect (the informer does, then relists).
Callbacks run on kazoo's callback thread, in the order the server sent the events.
Called by `store.informer`.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Watch, int_struct, write_string
from kazoo.protocol.states import EVENT_TYPE_MAP, Callback, WatchedEvent

MODE_PERSISTENT = 0
MODE_PERSISTENT_RECURSIVE = 1
# ZooKeeper 3.8 accepts only Children(1), Data(2) and Any(3) in removeWatches; Any is the
# one that drops a persistent watch (it also drops one-shot watches on that exact path).
WATCHER_TYPE_ANY = 3

WatchCallback = Callable[[WatchedEvent], None]


class AddWatch(namedtuple("AddWatch", "path mode")):
    """The `addWatch` request (opcode 106): path, then mode; empty reply."""

    type = 106

    def serialize(self) -> bytearray:
        b = bytearray(write_string(self.path))
        b.extend(int_struct.pack(self.mode))
        return b

    @classmethod
    def deserialize(cls, _bytes: bytes, _offset: int) -> bool:
        return True


class RemoveWatches(namedtuple("RemoveWatches", "path watcher_type")):
    """The `removeWatches` request (opcode 18): path, then the watcher type."""

    type = 18

    def serialize(self) -> bytearray:
        b = bytearray(write_string(self.path))
        b.extend(int_struct.pack(self.watcher_type))
        return b

    @classmethod
    def deserialize(cls, _bytes: bytes, _offset: int) -> bool:
        return True


class _Registry:
    """Persistent watch callbacks of one client, keyed by chrooted path prefix."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.callbacks: dict[str, list[WatchCallback]] = {}
        conn = client._connection
        self.original_reader = conn._read_watch_event
        conn._read_watch_event = self.read_watch_event

    def matching(self, path: str) -> list[WatchCallback]:
        with self.lock:
            return [
                cb
                for prefix, cbs in self.callbacks.items()
                if path == prefix or path.startswith(prefix.rstrip("/") + "/")
                for cb in cbs
            ]

    def read_watch_event(self, buffer: bytes, offset: int) -> Any:
        watch, _ = Watch.deserialize(buffer, offset)
        callbacks = self.matching(watch.path)
        if callbacks and watch.type in EVENT_TYPE_MAP and not self.client._stopped.is_set():
            ev = WatchedEvent(
                EVENT_TYPE_MAP[watch.type], self.client._state, self.client.unchroot(watch.path)
            )
            for cb in callbacks:
                self.client.handler.dispatch_callback(Callback("watch", cb, (ev,)))
        return self.original_reader(buffer, offset)


_registries: dict[int, _Registry] = {}
_registries_lock = threading.Lock()


def _registry(client: KazooClient) -> _Registry:
    with _registries_lock:
        reg = _registries.get(id(client))
        if reg is None or reg.client is not client:
            reg = _registries[id(client)] = _Registry(client)
        return reg


def _full_path(client: KazooClient, path: str) -> str:
    return str(client.chroot + path) if client.chroot else path


def add_persistent_recursive_watch(
    client: KazooClient, path: str, callback: WatchCallback, *, timeout: float = 10.0
) -> None:
    """Watch `path` and everything below it until removed or the connection drops.

    The callback is registered before the request is sent, so no event after the server
    accepted the watch is missed. Raises kazoo's errors (e.g. ConnectionLoss).
    """
    reg = _registry(client)
    full = _full_path(client, path)
    with reg.lock:
        cbs = reg.callbacks.setdefault(full, [])
        if callback not in cbs:
            cbs.append(callback)
    result = client.handler.async_result()
    client._call(AddWatch(full, MODE_PERSISTENT_RECURSIVE), result)
    result.get(timeout=timeout)


def remove_persistent_recursive_watch(
    client: KazooClient, path: str, callback: WatchCallback, *, timeout: float = 10.0
) -> None:
    """Drop `callback`; when it was the last one for `path`, remove the server's watch."""
    reg = _registry(client)
    full = _full_path(client, path)
    with reg.lock:
        cbs = reg.callbacks.get(full, [])
        if callback in cbs:
            cbs.remove(callback)
        last = not cbs
        if last:
            reg.callbacks.pop(full, None)
    if last and client.connected:
        result = client.handler.async_result()
        client._call(RemoveWatches(full, WATCHER_TYPE_ANY), result)
        result.get(timeout=timeout)
