"""Waiting on ZooKeeper state in tests by watches, never by polling.

`wait_doc` resolves when the document at a path satisfies a predicate (checked at once,
then on every change `store.watches.watch_doc` reports). Called by integration and e2e tests.
`poll_until` is the one exception, for process-level conditions that no watch or event
reports (a child's log line, a whole cluster's convergence judged from a snapshot): it
looks again at an interval until a deadline. Called by the fault suite
(tests/support/chaos).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from store.client import Store
from store.watches import watch_children, watch_doc

Predicate = Callable[[dict[str, Any] | None], bool]


async def wait_doc(store: Store, path: str, predicate: Predicate, *,
                   timeout: float = 10.0) -> dict[str, Any] | None:
    """The first document at `path` (None while absent) for which `predicate` holds."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[dict[str, Any] | None] = loop.create_future()
    last: list[dict[str, Any] | None] = [None]

    def settle(doc: dict[str, Any] | None) -> None:
        if not found.done():
            found.set_result(doc)

    def on_change(doc: dict[str, Any] | None) -> bool:
        last[0] = doc
        if predicate(doc):
            loop.call_soon_threadsafe(settle, doc)
            return False  # stop watching
        return not found.done()

    watch_doc(store, path, on_change)
    try:
        return await asyncio.wait_for(found, timeout)
    except TimeoutError:
        raise AssertionError(f"{path} never satisfied the condition; last: {last[0]}") from None
    finally:
        if not found.done():
            found.cancel()


def state_is(*states: str) -> Predicate:
    return lambda doc: doc is not None and doc.get("state") in states


async def wait_children(store: Store, path: str, check: Callable[[list[str]], Any], *,
                        timeout: float = 10.0) -> Any:
    """The first truthy `check(children of path)`, re-evaluated on every child change."""
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def on_children(_children: list[str]) -> None:
        loop.call_soon_threadsafe(changed.set)

    stop_watching = watch_children(store, path, on_children)
    try:
        async with asyncio.timeout(timeout):
            while True:
                changed.clear()
                found = await asyncio.to_thread(check, store.children(path))
                if found:
                    return found
                await changed.wait()
    finally:
        stop_watching()


def poll_until(check: Callable[[], Any], *, timeout: float, interval: float = 0.2,
               what: str = "the condition") -> Any:
    """The first truthy `check()`, looked at every `interval` seconds; AssertionError naming
    `what` after `timeout`. Only for conditions no watch or event reports."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)  # no event to wait on (see the module docstring)
