"""`Pipe`: the bounded bridge between the event loop (an aiohttp handler reading a request
body or writing a response) and the ONE worker thread that drives a libvirt stream
(`server.storage.volstream`), for a volume's data (issue #15).

At most `depth` chunks wait between the two sides, so memory stays bounded whatever the
size of the transfer: the side that runs ahead waits (the loop side on a future, without
holding the loop; the thread side on a condition). The chunks sit in a deque under one
lock, so a hand-off costs a lock and, only when the other side waits, a wake-up: the
thread never goes through the loop to take or give a chunk (an earlier version ran a
coroutine on the loop per chunk, about 1 CPU-s per 256 MiB of 64 KiB chunks). Either
side may give up: the loop side (`abort`: the client went away, a check failed) wakes
the thread, whose current or next `take` or `give` raises `Aborted`; the thread ends
with its count or its exception (`finish`), which the loop side awaits (`result`) and
which wakes a loop side waiting on a full or empty pipe. A side that makes no progress
for `idle` seconds is given up on. No libvirt here: tests/unit/test_volume_pipe.py
drives it with a plain thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class Aborted(Exception):
    """The other side gave up (or made no progress in time): stop, undo nothing more."""


class Pipe:
    """See the module doc. Made on the loop; `take`, `give`, `finish` are the thread's."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, depth: int, idle: float) -> None:
        self._loop = loop
        self._depth = depth
        self._items: deque[bytes | None] = deque()
        self._cond = threading.Condition()  # guards the three below
        self._stopped = False
        self._waiter: asyncio.Future[None] | None = None  # the loop side's wait, if any
        self.idle = idle
        self.ended: asyncio.Future[int] = loop.create_future()
        self.ended.add_done_callback(_seen)  # an abandoned transfer's error is not an alarm

    def qsize(self) -> int:
        """Chunks waiting now."""
        with self._cond:
            return len(self._items)

    # --- the worker thread's side -------------------------------------------------------

    def take(self) -> bytes | None:
        """The next chunk the loop side put (None: the end)."""
        with self._cond:
            self._until(lambda: bool(self._items))
            item = self._items.popleft()
            self._wake_loop()
        return item

    def give(self, item: bytes | None) -> None:
        """Hand a chunk (None: the end) to the loop side; waits while the pipe is full."""
        with self._cond:
            self._until(lambda: len(self._items) < self._depth)
            self._items.append(item)
            self._wake_loop()

    def _until(self, ready: Callable[[], bool]) -> None:
        """Wait (holding the condition) until `ready()`; `Aborted` once the loop side
        aborted, or after `idle` seconds."""
        if not self._cond.wait_for(lambda: self._stopped or ready(), timeout=self.idle):
            raise Aborted(f"no progress for {self.idle:g} s")
        if self._stopped:
            raise Aborted("the transfer was aborted")

    def _wake_loop(self) -> None:
        """The loop side waits for what just changed: wake it (holding the condition)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                self._loop.call_soon_threadsafe(_release, waiter)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def finish(self, count: int | None, error: BaseException | None) -> None:
        """The thread's end: bytes moved, or why not."""
        try:
            self._loop.call_soon_threadsafe(self._end, count, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _end(self, count: int | None, error: BaseException | None) -> None:
        if self.ended.done():
            return
        if error is not None:
            self.ended.set_exception(error)
        else:
            self.ended.set_result(count or 0)

    # --- the loop's side ------------------------------------------------------------------

    async def put(self, item: bytes | None) -> bool:
        """Queue a chunk (None: the end) for the thread; False when it has ended already
        (then `result` says why)."""
        while not self.ended.done():
            with self._cond:
                if len(self._items) < self._depth:
                    self._items.append(item)
                    self._cond.notify()
                    return True
                waiter = self._waiter = self._loop.create_future()
            await self._wait(waiter)
        return False

    async def get(self) -> bytes | None:
        """The thread's next chunk (None: the end); raises the thread's error if it ended
        without one."""
        while True:
            with self._cond:
                if self._items:
                    item = self._items.popleft()
                    self._cond.notify()
                    return item
                if self.ended.done():
                    break
                waiter = self._waiter = self._loop.create_future()
            await self._wait(waiter)
        await self.ended  # raises the thread's error
        raise Aborted("the stream ended early")

    async def _wait(self, waiter: asyncio.Future[None]) -> None:
        """Until the thread moved (`waiter`) or ended; `Aborted` after `idle` seconds."""
        try:
            async with asyncio.timeout(self.idle):
                either: set[asyncio.Future[Any]] = {waiter, self.ended}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise Aborted(f"no progress for {self.idle:g} s") from None
        finally:
            with self._cond:
                if self._waiter is waiter:
                    self._waiter = None

    def abort(self) -> None:
        """Stop the thread: its wait, if any, ends now (`Aborted`), and so does its next
        step; what is queued is dropped."""
        with self._cond:
            self._stopped = True
            self._items.clear()
            self._cond.notify_all()

    async def settled(self) -> None:
        """Return once the thread has ended (at most `idle` seconds), however it ended."""
        await asyncio.wait({self.ended}, timeout=self.idle)

    async def result(self) -> int:
        """The thread's count, or its exception."""
        return await self.ended


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _seen(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()
