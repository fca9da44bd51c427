"""`Pipe`: the bounded bridge between the event loop (an aiohttp handler reading a request
body or writing a response) and the ONE worker thread that drives a libvirt stream
(`server.storage.volstream`), for a volume's data (issue #15).

At most `depth` chunks wait between the two sides, so memory stays bounded whatever the
size of the transfer: the side that runs ahead waits (the loop side without holding the
loop, the thread side blocked on the loop's queue). Either side may give up: the loop
side (`abort`: the client went away, a check failed) cancels the thread's wait on the
queue and makes its next `take` or `give` raise `Aborted`; the thread ends with its count
or its exception (`finish`), which the loop side awaits (`result`) and which wakes a loop
side waiting on a full or empty queue. A side that makes no progress for `idle` seconds
is given up on. No libvirt here: tests/unit/test_volume_pipe.py drives it with a plain thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Aborted(Exception):
    """The other side gave up (or made no progress in time): stop, undo nothing more."""


class Pipe:
    """See the module doc. Made on the loop; `take`, `give`, `finish` are the thread's."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, depth: int, idle: float) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(depth)
        self._stopped = threading.Event()
        self._waiting: concurrent.futures.Future[Any] | None = None  # the thread's wait
        self.idle = idle
        self.ended: asyncio.Future[int] = loop.create_future()
        self.ended.add_done_callback(_seen)  # an abandoned transfer's error is not an alarm

    # --- the worker thread's side -------------------------------------------------------

    def take(self) -> bytes | None:
        """The next chunk the loop side put (None: the end)."""
        return self._call(self._queue.get())

    def give(self, item: bytes | None) -> None:
        """Hand a chunk (None: the end) to the loop side; waits while the pipe is full."""
        self._call(self._queue.put(item))

    def finish(self, count: int | None, error: BaseException | None) -> None:
        """The thread's end: bytes moved, or why not."""
        try:
            self._loop.call_soon_threadsafe(self._end, count, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for it: `Aborted` once the loop side aborted
        (before or while waiting), or after `idle` seconds."""
        if self._stopped.is_set():
            coro.close()
            raise Aborted("the transfer was aborted")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:
            coro.close()
            raise Aborted("the server is stopping") from None
        self._waiting = future
        if self._stopped.is_set():  # `abort` may have missed the future just published
            future.cancel()
        try:
            return future.result(timeout=self.idle)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Aborted(f"no progress for {self.idle:g} s") from None
        except concurrent.futures.CancelledError:
            raise Aborted("the transfer was aborted") from None
        finally:
            self._waiting = None

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
        if not self._queue.full() and not self.ended.done():
            self._queue.put_nowait(item)
            return True
        return await self._either(self._queue.put(item)) is not _ENDED

    async def get(self) -> bytes | None:
        """The thread's next chunk (None: the end); raises the thread's error if it ended
        without one."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        got = await self._either(self._queue.get())
        if got is _ENDED:
            if not self._queue.empty():
                return self._queue.get_nowait()
            await self.ended  # raises the thread's error
            raise Aborted("the stream ended early")
        return got  # type: ignore[return-value]

    async def _either(self, coro: Coroutine[Any, Any, T]) -> T | object:
        task = asyncio.ensure_future(coro)
        either: set[asyncio.Future[Any]] = {task, self.ended}
        try:
            async with asyncio.timeout(self.idle):
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise Aborted(f"no progress for {self.idle:g} s") from None
        finally:
            if not task.done():
                task.cancel()
        return task.result() if task.done() and not task.cancelled() else _ENDED

    def abort(self) -> None:
        """Stop the thread: its wait on the queue, if any, ends now (`Aborted`), and so
        does its next step; what is queued is dropped."""
        self._stopped.set()
        waiting = self._waiting
        if waiting is not None:
            waiting.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()

    async def settled(self) -> None:
        """Return once the thread has ended (at most `idle` seconds), however it ended."""
        await asyncio.wait({self.ended}, timeout=self.idle)

    async def result(self) -> int:
        """The thread's count, or its exception."""
        return await self.ended


_ENDED = object()


def _seen(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()
