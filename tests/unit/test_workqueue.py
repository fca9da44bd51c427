"""The work queue's semantics on a real asyncio loop (no I/O)."""

from __future__ import annotations

import asyncio
import random

from reconciler.runtime.workqueue import Backoff, Result, WorkQueue


async def test_a_key_added_many_times_is_processed_once() -> None:
    seen: list[str] = []

    async def handler(key: str) -> Result:
        seen.append(key)
        return Result.done()

    q = WorkQueue(handler, workers=2)
    for _ in range(5):
        q.add("a")
    q.add("b")
    q.start()
    await asyncio.wait_for(q.wait_idle(), 2)
    await q.stop()
    assert sorted(seen) == ["a", "b"]


async def test_one_key_is_never_processed_concurrently_and_dirty_keys_rerun() -> None:
    running: set[str] = set()
    overlaps = 0
    calls = 0
    release = asyncio.Event()
    entered = asyncio.Event()

    async def handler(key: str) -> Result:
        nonlocal overlaps, calls
        calls += 1
        if key in running:
            overlaps += 1
        running.add(key)
        if calls == 1:
            entered.set()
            await release.wait()
        running.discard(key)
        return Result.done()

    q = WorkQueue(handler, workers=4)
    q.start()
    q.add("vm")
    await asyncio.wait_for(entered.wait(), 2)
    q.add("vm")  # arrives while "vm" is in flight: marked dirty, not run beside it
    q.add("vm")
    await asyncio.sleep(0)
    assert calls == 1
    release.set()
    await asyncio.wait_for(q.wait_idle(), 2)
    await q.stop()
    assert overlaps == 0
    assert calls == 2  # the in-flight run, then one more for the (coalesced) dirty adds


async def test_requeue_after_brings_the_key_back() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def handler(key: str) -> Result:
        times.append(loop.time())
        return Result.after(0.05) if len(times) < 3 else Result.done()

    q = WorkQueue(handler, workers=1)
    q.start()
    q.add("vm")
    await asyncio.wait_for(q.wait_idle(), 2)
    await q.stop()
    assert len(times) == 3
    assert times[1] - times[0] >= 0.045 and times[2] - times[1] >= 0.045


async def test_errors_back_off_exponentially_with_a_cap_and_reset_on_success() -> None:
    attempts = 0

    async def handler(key: str) -> Result:
        nonlocal attempts
        attempts += 1
        if attempts < 5:
            raise RuntimeError("libvirt said no")
        return Result.done()

    q = WorkQueue(handler, workers=1, backoff=Backoff(base=0.001, cap=0.004),
                  rng=random.Random(1))
    q.start()
    q.add("vm")
    await asyncio.wait_for(q.wait_idle(), 2)
    await q.stop()
    assert attempts == 5
    assert q.failures("vm") == 0


def test_backoff_delays_grow_and_are_capped() -> None:
    b = Backoff(base=0.1, cap=1.0)

    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    rng = Top()
    assert [b.delay(n, rng) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_earliest_schedule_wins_and_add_cancels_the_timer() -> None:
    seen: list[str] = []

    async def handler(key: str) -> Result:
        seen.append(key)
        return Result.done()

    q = WorkQueue(handler, workers=1)
    q.add_after("vm", 60)
    q.add_after("vm", 120)  # later than the one scheduled: ignored
    assert q.scheduled == {"vm"}
    q.add("vm")  # due now: the timer is dropped
    assert q.scheduled == set()
    q.start()
    await asyncio.wait_for(q.wait_idle(), 2)
    await q.stop()
    assert seen == ["vm"]


async def test_stop_cancels_timers_and_workers() -> None:
    async def handler(key: str) -> Result:
        return Result.done()

    q = WorkQueue(handler, workers=3)
    q.start()
    q.add_after("later", 30)
    await q.stop()
    assert q.scheduled == set()
