"""Change events for `GET /watch`: a bounded ring of recent events and the live watchers.

An event is `{type: ADDED|MODIFIED|DELETED, kind: VM|Node, name, object, resourceVersion}`.
Its resourceVersion is a ZooKeeper zxid: the newest zxid the server's cache had applied
when it produced the event (never decreasing along the stream; the changes of one
transaction share one). A watch resumed with `resourceVersion=X` gets every event whose
resourceVersion is >= X, so nothing is lost across a reconnect; the last event seen may
come again (events carry whole objects, so seeing one twice is harmless). When the ring has
already dropped such an event, or X is older than the moment the server started following
ZooKeeper, the resume is refused (`Gone`, answered 410): list again, then watch.
Everything here runs on the event loop. Fed by `server.cache`; read by `server.watch`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

WATCHER_QUEUE = 10_000  # events a slow watcher may lag behind before it is cut off


class Gone(Exception):
    """The events after the requested resourceVersion are no longer all in the ring."""


@dataclass
class Event:
    rv: int
    type: str
    kind: str
    name: str
    object: dict[str, Any]
    _line: bytes | None = field(default=None, repr=False)

    def line(self) -> bytes:
        """The event as one line of newline-delimited JSON (encoded once, shared)."""
        if self._line is None:
            doc = {"type": self.type, "kind": self.kind, "name": self.name,
                   "object": self.object, "resourceVersion": str(self.rv)}
            self._line = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        return self._line


class Watcher:
    """One `GET /watch` stream: its filters and its queue (None in the queue ends it)."""

    def __init__(self, *, kind: str | None, name: str | None) -> None:
        self.kind = kind
        self.name = name
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.overflowed = False

    def wants(self, event: Event) -> bool:
        return (self.kind is None or event.kind == self.kind) and (
            self.name is None or event.name == self.name)

    def offer(self, event: Event | None) -> None:
        if self.overflowed:
            return
        if event is not None and self.queue.qsize() >= WATCHER_QUEUE:
            self.overflowed = True
            event = None
        self.queue.put_nowait(event)


class EventHub:
    """The ring of recent events and the fan-out to watchers."""

    def __init__(self, history: int) -> None:
        self.ring: deque[Event] = deque(maxlen=history)
        self.floor = 0  # resumes from below this are refused
        self.live = False
        self.watchers: set[Watcher] = set()

    def go_live(self, watermark: int) -> None:
        """From now on changes are events; the state before `watermark` is not replayable."""
        self.floor = watermark
        self.live = True

    def publish(self, event: Event) -> None:
        if self.ring.maxlen is not None and len(self.ring) == self.ring.maxlen:
            self.floor = max(self.floor, self.ring[0].rv + 1)
        self.ring.append(event)
        for watcher in self.watchers:
            if watcher.wants(event):
                watcher.offer(event)

    def since(self, rv: int) -> list[Event]:
        """Every kept event with resourceVersion >= `rv`; `Gone` if some were dropped."""
        if rv < self.floor:
            raise Gone(f"resourceVersion {rv} is too old; the oldest this server can resume "
                       f"from is {self.floor}: list again, then watch")
        return [e for e in self.ring if e.rv >= rv]

    def add(self, watcher: Watcher) -> None:
        self.watchers.add(watcher)

    def remove(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def close_all(self) -> None:
        for watcher in list(self.watchers):
            watcher.offer(None)
