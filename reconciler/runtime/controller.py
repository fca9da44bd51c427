"""One controller runner: watch callbacks -> work queue -> workers, with metrics.

A `Controller` owns the whole path from "something changed about key K" to "reconcile(K)
ran and its outcome was turned into a queue action" (controller-runtime's Controller):
- producers on any thread (kazoo's informer callbacks, libvirt's event callbacks, timers)
  call `enqueue(*keys)`, which only hands the keys to the event loop; a controller made
  with `coalesce=S` runs a key at most once per S seconds however many changes ask;
- the `WorkQueue` (reconciler.runtime.workqueue) de-duplicates keys, runs one reconcile per key at
  a time on `workers` workers, and retries errors with capped backoff (never a
  `TerminalError`);
- every reconcile is measured: duration, outcome (done, requeue, error, terminal) and
  queue depth, as prometheus-client collectors labelled by controller and node
  (`ControllerMetrics`; one set per process, shared by every controller in it).
Used by the node daemon (the VM controller, `reconciler.daemon`) and the primary
coordinator (the cluster controllers, `reconciler.cluster.coordinator`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from reconciler.runtime.workqueue import Backoff, Handler, Result, TerminalError, WorkQueue

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class ControllerMetrics:
    """The collectors of every controller in one process."""

    duration: Histogram  # herd_reconcile_duration_seconds{controller,node}
    reconciles: Counter  # herd_reconcile_total{controller,node,result}
    retries: Counter  # herd_reconcile_retries_total{controller,node}
    depth: Gauge  # herd_workqueue_depth{controller,node}

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ControllerMetrics:
        labels = ("controller", "node")
        return cls(
            duration=Histogram("herd_reconcile_duration_seconds", "Time one reconcile took",
                               labels, buckets=DURATION_BUCKETS, registry=registry),
            reconciles=Counter("herd_reconcile_total", "Reconciles by outcome "
                               "(done, requeue, error, terminal)", (*labels, "result"),
                               registry=registry),
            retries=Counter("herd_reconcile_retries_total", "Reconciles that failed and "
                            "were queued again with backoff", labels, registry=registry),
            depth=Gauge("herd_workqueue_depth", "Keys waiting for a worker", labels,
                        registry=registry))


_default: ControllerMetrics | None = None


def default_metrics() -> ControllerMetrics:
    """The process's collectors, registered once in prometheus-client's default registry."""
    global _default
    if _default is None:
        _default = ControllerMetrics.create(REGISTRY)
    return _default


class Controller:
    """One reconcile function behind its own work queue and workers."""

    def __init__(self, name: str, reconcile: Handler, *, node: str, workers: int,
                 backoff: Backoff | None = None, coalesce: float = 0.0,
                 metrics: ControllerMetrics | None = None) -> None:
        self.name = name
        self.node = node
        self.reconcile = reconcile
        self.coalesce = coalesce
        self.metrics = metrics or default_metrics()
        self.queue = WorkQueue(self._measured, workers=workers, backoff=backoff)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics.depth.labels(name, node).set_function(lambda: len(self.queue))

    # --- life --------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on `enqueue` hands keys to `loop` (before `start`, they wait there)."""
        self._loop = loop

    def start(self) -> None:
        """Start the workers on the running loop (bound to it, if not yet)."""
        if self._loop is None:
            self.bind(asyncio.get_running_loop())
        self.queue.start()

    async def stop(self) -> None:
        """Stop the workers (after their current key) and every timer; enqueue no more."""
        self._loop = None
        await self.queue.stop()

    async def wait_idle(self) -> None:
        await self.queue.wait_idle()

    def __len__(self) -> int:
        return len(self.queue)

    # --- producers -------------------------------------------------------------------------

    def enqueue(self, *keys: str) -> None:
        """Queue `keys` from any thread (watch and event callbacks only call this)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        for key in keys:
            if self.coalesce > 0:
                loop.call_soon_threadsafe(self.queue.add_after, key, self.coalesce)
            else:
                loop.call_soon_threadsafe(self.queue.add, key)

    def add(self, key: str) -> None:
        """Queue `key` now; on the loop."""
        self.queue.add(key)

    # --- one reconcile, measured ----------------------------------------------------------

    async def _measured(self, key: str) -> Result:
        began = time.perf_counter()
        try:
            result = await self.reconcile(key)
        except TerminalError:
            self._count(began, "terminal")
            raise
        except Exception:
            self._count(began, "error")
            self.metrics.retries.labels(self.name, self.node).inc()
            raise
        self._count(began, "done" if result.requeue_after is None else "requeue")
        return result

    def _count(self, began: float, outcome: str) -> None:
        self.metrics.duration.labels(self.name, self.node).observe(time.perf_counter() - began)
        self.metrics.reconciles.labels(self.name, self.node, outcome).inc()
