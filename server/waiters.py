"""Waiters on cached objects: `wait=true` requests and the read-your-writes settle.

`Waiters.wait_for(key, check)` answers the first non-None result of `check`, asked now
and again each time the cache's drain touches the object `key` (`wake`), or after a
resync (`wake_all`): the waits follow the watch, never a poll. Owned by
`server.cache.ClusterCache`, on the event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from store.errors import Unavailable

T = TypeVar("T")
Key = tuple[str, str]  # ("VM" | "Node", name)
Check = Callable[[], Any]


class Waiters:
    """Futures waiting on objects of the cache, keyed by object."""

    def __init__(self) -> None:
        self._waiters: dict[Key, list[tuple[Check, asyncio.Future[Any]]]] = {}

    async def wait_for(self, key: Key, check: Callable[[], T | None], *,
                       timeout: float) -> T | None:
        """The first non-None answer of `check`, re-asked whenever the object `key` changes;
        None after `timeout` seconds. An exception raised by `check` is raised here."""
        first = check()
        if first is not None:
            return first
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry = (check, future)
        self._waiters.setdefault(key, []).append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            entries = self._waiters.get(key, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self._waiters.pop(key, None)

    def wake(self, key: Key) -> None:
        for check, future in list(self._waiters.get(key, ())):
            if future.done():
                continue
            try:
                answer = check()
            except Exception as e:
                future.set_exception(e)
                continue
            if answer is not None:
                future.set_result(answer)

    def wake_all(self) -> None:
        for key in list(self._waiters):
            self.wake(key)

    def fail_all(self) -> None:
        """The server is shutting down: every waiter gets 503."""
        for entries in self._waiters.values():
            for _check, future in entries:
                if not future.done():
                    future.set_exception(Unavailable("the API server is shutting down"))
