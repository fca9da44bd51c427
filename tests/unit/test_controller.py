"""The controller runner on a real asyncio loop: keys enqueued from other threads reach
the reconcile, a terminal error is not retried, and every outcome is counted in its own
prometheus-client registry (no I/O)."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry

from reconciler.runtime.controller import Controller, ControllerMetrics
from reconciler.runtime.workqueue import Backoff, Result, TerminalError


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"controller": "vm", "node": "hv1", **labels})
    return 0.0 if value is None else value


async def test_keys_from_another_thread_are_reconciled_and_counted() -> None:
    registry = CollectorRegistry()
    seen: list[str] = []
    all_seen = asyncio.Event()

    async def reconcile(key: str) -> Result:
        seen.append(key)
        if len(seen) == 3:
            all_seen.set()
        return Result.done() if key != "later" else Result.after(3600)

    ctl = Controller("vm", reconcile, node="hv1", workers=2,
                     metrics=ControllerMetrics.create(registry))
    ctl.start()
    producer = threading.Thread(target=ctl.enqueue, args=("a", "b", "later"))
    producer.start()
    producer.join()
    await asyncio.wait_for(all_seen.wait(), 5)  # the keys cross with call_soon_threadsafe
    await ctl.stop()
    assert sorted(seen) == ["a", "b", "later"]
    assert sample(registry, "herd_reconcile_total", result="done") == 2
    assert sample(registry, "herd_reconcile_total", result="requeue") == 1
    assert sample(registry, "herd_reconcile_duration_seconds_count") == 3
    assert sample(registry, "herd_workqueue_depth") == 0


async def test_an_error_is_retried_and_a_terminal_error_is_not() -> None:
    registry = CollectorRegistry()
    calls = {"flaky": 0, "broken": 0}

    async def reconcile(key: str) -> Result:
        calls[key] += 1
        if key == "broken":
            raise TerminalError("the domain XML is refused by libvirt")
        if calls[key] < 3:
            raise RuntimeError("libvirt is busy")
        return Result.done()

    ctl = Controller("vm", reconcile, node="hv1", workers=1,
                     backoff=Backoff(base=0.001, cap=0.002),
                     metrics=ControllerMetrics.create(registry))
    ctl.start()
    ctl.add("flaky")
    ctl.add("broken")
    await asyncio.wait_for(ctl.wait_idle(), 5)
    await ctl.stop()
    assert calls == {"flaky": 3, "broken": 1}
    assert ctl.queue.failures("flaky") == 0 and ctl.queue.failures("broken") == 0
    assert sample(registry, "herd_reconcile_retries_total") == 2
    assert sample(registry, "herd_reconcile_total", result="error") == 2
    assert sample(registry, "herd_reconcile_total", result="terminal") == 1
    assert sample(registry, "herd_reconcile_total", result="done") == 1


async def test_a_coalescing_controller_runs_a_burst_once() -> None:
    seen: list[str] = []

    async def reconcile(key: str) -> Result:
        seen.append(key)
        return Result.done()

    ctl = Controller("cluster", reconcile, node="hv1", workers=1, coalesce=0.05,
                     metrics=ControllerMetrics.create(CollectorRegistry()))
    ctl.start()
    for _ in range(50):
        ctl.enqueue("schedule")
    await asyncio.sleep(0)  # the hand-overs run; the key is now scheduled, not yet due
    assert ctl.queue.scheduled == {"schedule"}
    await asyncio.wait_for(ctl.wait_idle(), 5)
    await ctl.stop()
    assert seen == ["schedule"]
