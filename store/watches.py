"""Watching one document or one znode's children (kazoo's DataWatch and ChildrenWatch).

For whoever waits on a single znode without an informer's copy of a subtree: the test
helpers (tests/support/waits.py) and the benchmarks (bench/) wait by watch, never by
polling. Each watch is one-shot and re-armed after every change, so a burst of changes
may be seen as its last state only. Callbacks run on kazoo's thread and must not block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from store import codec
from store.client import Store
from store.codec import Doc

DocCallback = Callable[[Doc | None], bool]
"""Called with the document (None while the znode is absent); False stops the watch."""


def watch_doc(store: Store, path: str, on_change: DocCallback) -> None:
    """`on_change(doc)` now and on every change of the document at `path`, until it
    returns False."""

    def on_data(data: bytes | None, stat: ZnodeStat | None) -> bool:
        return on_change(codec.decode(data) if stat is not None else None)

    DataWatch(store.client, path, on_data)


def watch_children(store: Store, path: str,
                   on_change: Callable[[list[str]], None]) -> Callable[[], None]:
    """`on_change(children)` now and on every change of `path`'s children; returns the
    function that stops it (kazoo's way: the callback returns False at the next change)."""
    stopped = threading.Event()

    def on_children(children: list[str]) -> bool:
        if stopped.is_set():
            return False
        on_change(children)
        return True

    ChildrenWatch(store.client, path, on_children)
    return stopped.set
