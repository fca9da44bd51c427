"""libvirt's events on herd-node's asyncio loop: the bridge to libvirt-python's `libvirtaio`.

`reconciler.libvirt.adapter` (its `start_events`) and `reconciler.daemon` call
`bind_event_loop()` and `settle_events()`; `reconciler.libvirt.connection` delivers its
callbacks with `call_on_loop()`. Two facts of `libvirtaio` (checked with libvirt-python 12.8
on libvirt 9.0) shape the glue below:

- It is not thread-safe. libvirt calls the event implementation from whichever thread makes
  a libvirt call (the test driver updates its dispatch timer inside `create()`, the remote
  driver toggles its socket watch around every RPC), and libvirtaio then creates tasks and
  readers on the loop from that thread: asyncio's debug mode raises "Non-thread-safe
  operation invoked on an event loop other than the current one" inside `create()` and the
  event is lost; without debug mode the loop is not even woken up for it.
- libvirt-python accepts one event implementation per process ("Event loop is already
  registered" on a second `virEventRegisterImpl`), so `virEventRegisterAsyncIOImpl()` binds
  the process to one asyncio loop for good; tests get a new loop per test.

So `_EventBridge` is registered with libvirt once per process, by the first
`bind_event_loop()` (importing this module does nothing to libvirt); it hands out its own
watch and timer ids at once (under a lock, from any thread) and applies every operation, in
call order, on the loop thread to a `libvirtaio.virEventAsyncIOImpl`. It can be rebound to a
new loop when libvirt holds none of its handles or timers (tests: after `stop_events()`).
Call `bind_event_loop()` before opening a connection: the remote driver adds its socket
watch (for events, keepalive and the close callback) only when the connection is opened;
the test driver only needs timers, which it adds when events are registered. After closing
a remote connection, `await settle_events()` before the loop ends (libvirt removes its watch
then).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import libvirt
import libvirtaio

from reconciler.libvirt.interface import HypervisorError

log = logging.getLogger(__name__)


class _AsyncIOImpl(libvirtaio.virEventAsyncIOImpl):  # type: ignore[misc]
    """libvirtaio's implementation on one loop, driven by `_EventBridge` on the loop thread.

    It maps bridge ids to libvirtaio's ids, owns the duplicated descriptors it watches, and
    keeps the tasks libvirtaio leaves behind (cancelled timer tasks, the tasks that call
    libvirt's free callbacks) so that `settle()` can wait for them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.ids: dict[int, int] = {}
        self.fds: dict[int, int] = {}
        self.settling: set[asyncio.Future[Any]] = set()

    def _track(self, task: asyncio.Future[Any] | None) -> None:
        if task is not None and not task.done():
            self.settling.add(task)
            task.add_done_callback(self.settling.discard)

    def schedule_ff_callback(self, iden: int, opaque: object) -> None:
        self._track(asyncio.ensure_future(self._ff_callback(iden, opaque), loop=self.loop))

    def _timer_op(self, timer: int, op: Callable[[], object]) -> None:
        """Run op on a timer, keeping the task libvirtaio drops when it stops the timer."""
        callback = self.callbacks.get(timer)
        task = getattr(callback, "_task", None)  # libvirtaio's TimeoutCallback._task
        op()
        if task is not None and getattr(callback, "_task", None) is not task:
            self._track(task)

    def add_handle(self, bid: int, fd: int, event: int, cb: Any, opaque: Any) -> None:
        self.fds[bid] = fd
        self.ids[bid] = self._add_handle(fd, event, cb, opaque)

    def add_timeout(self, bid: int, timeout: int, cb: Any, opaque: Any) -> None:
        self.ids[bid] = self._add_timeout(timeout, cb, opaque)

    def update_handle(self, bid: int, event: int) -> None:
        if bid in self.ids:
            self._update_handle(self.ids[bid], event)

    def update_timeout(self, bid: int, timeout: int) -> None:
        iden = self.ids.get(bid)
        if iden is not None:
            self._timer_op(iden, lambda: self._update_timeout(iden, timeout))

    def remove_handle(self, bid: int) -> None:
        iden, fd = self.ids.pop(bid, None), self.fds.pop(bid, None)
        try:
            if iden is not None:
                self._remove_handle(iden)
        finally:
            if fd is not None:
                os.close(fd)

    def remove_timeout(self, bid: int) -> None:
        iden = self.ids.pop(bid, None)
        if iden is not None:
            self._timer_op(iden, lambda: self._remove_timeout(iden))

    async def settle(self) -> None:
        """Wait until every operation issued so far ran and its leftover tasks finished."""
        barrier = self.loop.create_future()
        self.loop.call_soon_threadsafe(barrier.set_result, None)
        await barrier
        while self.settling:
            await asyncio.gather(*list(self.settling), return_exceptions=True)


class _EventBridge:
    """libvirt's event implementation for this process (registered once), thread-safe.

    libvirt calls the six functions from any thread. Ids are handed out at once; the work is
    queued with `call_soon_threadsafe` (FIFO, so in call order) onto the bound loop. A handle
    or timer that libvirt removed is never dispatched again, even while its removal is still
    queued. The loop watches a duplicate of each descriptor, closed only once the removal has
    run: libvirt may close its descriptor right after removing the handle, and the number
    must not be reused under the loop's feet in the meantime.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._live: dict[int, _AsyncIOImpl] = {}
        self._impl: _AsyncIOImpl | None = None
        self._registered = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._impl is not None and self._impl.loop is loop:
                return
            if self._live:
                raise HypervisorError(
                    f"libvirt events are bound to another asyncio loop and libvirt still holds "
                    f"{len(self._live)} of its handles/timers: stop events and close those "
                    "connections first")
            self._impl = _AsyncIOImpl(loop)
            if not self._registered:
                libvirt.virEventRegisterImpl(
                    self._add_handle, self._update_handle, self._remove_handle,
                    self._add_timeout, self._update_timeout, self._remove_timeout)
                self._registered = True

    def bound_loop(self) -> asyncio.AbstractEventLoop | None:
        impl = self._impl
        return None if impl is None or impl.loop.is_closed() else impl.loop

    async def settle(self) -> None:
        impl = self._impl
        if impl is not None and impl.loop is asyncio.get_running_loop():
            await impl.settle()

    def _add(self, schedule: Callable[[_AsyncIOImpl, int], None]) -> int:
        with self._lock:
            impl = self._impl
            if impl is None or impl.loop.is_closed():
                return -1  # no loop: libvirt goes on without events
            bid = next(self._ids)
            self._live[bid] = impl
            try:
                schedule(impl, bid)
            except RuntimeError:  # the loop closed just now
                del self._live[bid]
                return -1
            return bid

    def _queue(self, bid: int, op: Callable[[_AsyncIOImpl], Callable[..., None]],
               *args: Any, remove: bool = False) -> int:
        """Queue op(impl)(bid, *args) on the loop of the live id bid; -1 if it is not live."""
        with self._lock:
            impl = self._live.pop(bid, None) if remove else self._live.get(bid)
            if impl is None:
                return -1
            with suppress(RuntimeError):  # its loop is closed: nothing left to undo
                impl.loop.call_soon_threadsafe(op(impl), bid, *args)
            return 0

    def _fire_handle(self, bid: int, fd: int, cb: Any) -> Callable[[int, int, int, Any], None]:
        def fire(_iden: int, _watched: int, events: int, opaque: Any) -> None:
            if bid in self._live:
                cb(bid, fd, events, opaque)
        return fire

    def _fire_timeout(self, bid: int, cb: Any) -> Callable[[int, Any], None]:
        def fire(_iden: int, opaque: Any) -> None:
            if bid in self._live:
                cb(bid, opaque)
        return fire

    def _add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        watched = os.dup(fd)

        def schedule(impl: _AsyncIOImpl, bid: int) -> None:
            fire = self._fire_handle(bid, fd, cb)
            impl.loop.call_soon_threadsafe(impl.add_handle, bid, watched, event, fire, opaque)

        bid = self._add(schedule)
        if bid < 0:
            os.close(watched)
        return bid

    def _add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        def schedule(impl: _AsyncIOImpl, bid: int) -> None:
            fire = self._fire_timeout(bid, cb)
            impl.loop.call_soon_threadsafe(impl.add_timeout, bid, timeout, fire, opaque)

        return self._add(schedule)

    def _update_handle(self, watch: int, event: int) -> None:
        self._queue(watch, lambda impl: impl.update_handle, event)

    def _update_timeout(self, timer: int, timeout: int) -> None:
        self._queue(timer, lambda impl: impl.update_timeout, timeout)

    def _remove_handle(self, watch: int) -> int:
        return self._queue(watch, lambda impl: impl.remove_handle, remove=True)

    def _remove_timeout(self, timer: int) -> int:
        return self._queue(timer, lambda impl: impl.remove_timeout, remove=True)


_BRIDGE = _EventBridge()  # nothing registered with libvirt until the first bind


def bind_event_loop(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Run libvirt's events on `loop` (default: the running loop). Call it on the loop before
    opening the connections that deliver events; again with a new loop only once libvirt
    holds nothing of the old one (events stopped, remote connections closed). The first
    call registers the bridge with libvirt (once per process)."""
    _BRIDGE.bind(loop or asyncio.get_running_loop())


def bound_loop() -> asyncio.AbstractEventLoop | None:
    """The loop libvirt's events run on now; None before the first bind or once it closed."""
    return _BRIDGE.bound_loop()


async def settle_events() -> None:
    """Wait until libvirt's event operations so far are applied and their tasks have ended."""
    await _BRIDGE.settle()


def call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Call fn on the loop's thread: now if this is it, else queued. Its errors are logged
    (they must not unwind into libvirt's dispatch)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _guarded(fn, *args)
    else:
        with suppress(RuntimeError):  # loop closed: nobody left to tell
            loop.call_soon_threadsafe(_guarded, fn, *args)


def _guarded(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("libvirt event handler %r failed", fn)

