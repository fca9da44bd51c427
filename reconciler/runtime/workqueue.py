"""The node daemon's work queue: VM names to reconcile, on the asyncio loop.

Semantics (those of Kubernetes' client-go workqueue):
- a key is queued at most once; adding a queued key does nothing (de-duplication);
- a key is handed to at most one worker at a time; adding it while it is being processed
  marks it dirty, and it is queued again when that worker finishes;
- `add_after` schedules a key for later (the earliest schedule wins);
- the handler's `Result` decides what follows: done, requeue after N seconds, or an error,
  retried with capped exponential backoff and jitter per key (reset by a success); a
  `TerminalError` is logged once and not retried: the key waits for the next change;
- `_on_error` and `_on_result` are the ONE place where an outcome becomes a queue action.
Producers (informer and libvirt callbacks, handed over with `call_soon_threadsafe`) only
call `add`; the reconciler is the handler. Wrapped by `reconciler.runtime.controller.Controller`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing (done), a look after `requeue_after` seconds."""

    requeue_after: float | None = None

    @classmethod
    def done(cls) -> Result:
        return cls(None)

    @classmethod
    def after(cls, seconds: float) -> Result:
        return cls(max(0.0, seconds))


Handler = Callable[[str], Awaitable[Result]]


BRIEF = 300  # characters of an error message in a log line


def brief(error: BaseException) -> str:
    """An error's message for a log line: its first line, at most `BRIEF` characters (a
    libvirt error may quote a whole domain XML; a log must not grow with it)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= BRIEF else text[:BRIEF] + "..."


class TerminalError(Exception):
    """A failure that retrying cannot mend (the input itself is wrong): reported once, then
    the key is forgotten until a change queues it again (controller-runtime's
    `TerminalError`). The reconcile records it where users see it before raising."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: uniform(0, min(cap, base * 2**n))."""

    base: float = 0.05
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        return rng.uniform(0, min(self.cap, self.base * 2 ** max(0, failures - 1)))


class WorkQueue:
    """Keys waiting for a worker, keys in flight, timers, and per-key failure counts."""

    def __init__(self, handler: Handler, *, workers: int = 4, backoff: Backoff | None = None,
                 rng: random.Random | None = None) -> None:
        self.handler = handler
        self.worker_count = workers
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.processed = 0

    # --- producers ---------------------------------------------------------------------------

    def add(self, key: str) -> None:
        """Queue `key` now (no-op if queued; marked dirty if in flight)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.put_nowait(key)
        self._idle.clear()

    def add_after(self, key: str, delay: float) -> None:
        """Queue `key` after `delay` seconds, unless it is due earlier anyway."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        current = self._timers.get(key)
        if current is not None:
            if current.when() <= when:
                return
            current.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)
        self._idle.clear()

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    # --- state --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._queue.qsize()

    @property
    def scheduled(self) -> set[str]:
        return set(self._timers)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def wait_idle(self) -> None:
        """Until nothing is queued, in flight or scheduled (for tests and clean shutdown)."""
        await self._idle.wait()

    def _update_idle(self) -> None:
        if self._queue.empty() and not self._active and not self._timers:
            self._idle.set()

    # --- workers ------------------------------------------------------------------------------

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._worker(), name=f"workqueue-{i}")
                         for i in range(self.worker_count)]

    async def stop(self) -> None:
        """Cancel the workers (after their current key) and every timer."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _next(self) -> str:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    async def _worker(self) -> None:
        while True:
            key = await self._next()
            try:
                result = await self.handler(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self._on_error(key, e)
            else:
                self._on_result(key, result)
            finally:
                self._finish(key)

    def _on_error(self, key: str, error: Exception) -> None:
        if isinstance(error, TerminalError):
            self._failures.pop(key, None)
            log.error("reconcile %s failed for good: %s; not retried until it changes",
                      key, brief(error))
            return
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = self.backoff.delay(failures, self.rng)
        log.warning("reconcile %s failed (%s attempt%s): %s; retrying in %.2fs", key, failures,
                    "" if failures == 1 else "s", brief(error), delay)
        self.add_after(key, delay)

    def _on_result(self, key: str, result: Result) -> None:
        self._failures.pop(key, None)
        if result.requeue_after is not None:
            self.add_after(key, result.requeue_after)

    def _finish(self, key: str) -> None:
        self.processed += 1
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)
        self._update_idle()
