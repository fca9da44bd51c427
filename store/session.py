"""A kazoo client's session as Herd sees it: writable or not, and who to tell.

`SessionState` follows kazoo's connection states: writes are allowed only while the
session is connected (`writable`; `wait_writable` blocks until then), and every change is
told to the listeners as one word: `suspended`, `lost`, or `reconnected` (connected again
after either). Listeners run on kazoo's thread and must not block. Owned by
`store.client.Store`, which forwards its accessors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kazoo.protocol.states import KazooState

log = logging.getLogger(__name__)

SessionListener = Callable[[str], None]


class SessionState:
    """Writability and session-change listeners of one kazoo client."""

    def __init__(self) -> None:
        self._writable = threading.Event()
        self._listeners: list[SessionListener] = []
        self._was_suspended = False

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    def set_writable(self, writable: bool) -> None:
        if writable:
            self._writable.set()
        else:
            self._writable.clear()

    def wait_writable(self, timeout: float | None = None) -> bool:
        """Block until the session is connected and writes are allowed (False on timeout)."""
        return self._writable.wait(timeout)

    def add_listener(self, listener: SessionListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SessionListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def on_state(self, state: str) -> None:
        """kazoo's connection listener."""
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._writable.clear()
            self._was_suspended = True
            self._notify("suspended" if state == KazooState.SUSPENDED else "lost")
        elif state == KazooState.CONNECTED:
            self._writable.set()
            if self._was_suspended:
                self._was_suspended = False
                self._notify("reconnected")

    def _notify(self, what: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(what)
            except Exception:
                log.exception("session listener failed on %s", what)
