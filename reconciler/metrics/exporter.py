"""herd-node's /metrics, served by the node endpoint (`reconciler.endpoint`) on the
configured `metrics_address`, without a ticket (what Prometheus expects).

`MetricsExporter` is made by `reconciler.daemon.NodeDaemon` and attached to the endpoint's
app (`attach`/`detach`). A scrape (`GET /metrics`) awaits
ONE `Hypervisor.all_domain_stats()` (a single libvirt getAllDomainStats, in a worker thread,
counted in herd_node_stats_calls_total), then renders in a worker thread — this daemon's
registry (`reconciler.metrics.collector`: VMs, node status, libvirt errors, ZooKeeper
connection) followed by prometheus-client's default one (herd_reconcile_*,
herd_workqueue_depth, the event families of `reconciler.metrics.families`, process
figures) — so the daemon's loop neither blocks nor renders. Scrapes run one at a time.
The `*_created` series prometheus-client adds to counters are turned off in herd-node.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reconciler.libvirt import Hypervisor, HypervisorError
from reconciler.libvirt.connection import ERRORS
from reconciler.libvirt.interface import DomainStats
from reconciler.metrics.collector import NodeCollector, VMCollector
from reconciler.metrics.families import ZK_ERRORS, ZK_SESSION_LOSSES
from store.client import Store
from store.informer import Informer

log = logging.getLogger(__name__)


class MetricsExporter:
    """One node's /metrics."""

    def __init__(self, node: str, *, hv: Hypervisor, store: Store, nodes: Informer) -> None:
        self.node, self.hv, self.store = node, hv, store
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = CollectorRegistry()
        self.vms = VMCollector(node)
        self.registry.register(self.vms)
        self.registry.register(NodeCollector(
            node, status=lambda: self._status(nodes), libvirt_errors=lambda: ERRORS.count,
            zk_connected=lambda: store.writable))
        self.stats_calls = Counter("herd_node_stats_calls", "Bulk domain stats calls made "
                                   "(one per scrape)", ("node",), registry=self.registry)
        self.stats_calls.labels(node)
        ZK_ERRORS.labels(node)
        ZK_SESSION_LOSSES.labels(node)
        self._scrape = asyncio.Lock()
        self._render_lock = threading.Lock()

    def _status(self, nodes: Informer) -> dict[str, object] | None:
        doc = nodes.get(self.store.paths.node_status(self.node))
        return None if doc is None else dict(doc.doc)

    def attach(self, app: web.Application) -> None:
        """Serve GET /metrics on the node endpoint's `app` (`reconciler.endpoint`) and count
        ZooKeeper interruptions from now on."""
        app.router.add_get("/metrics", self._handle)
        self.store.add_session_listener(self._on_session)

    def detach(self) -> None:
        self.store.remove_session_listener(self._on_session)

    def _on_session(self, what: str) -> None:
        """kazoo's thread: count interruptions and lost sessions (no I/O)."""
        if what == "suspended":
            ZK_ERRORS.labels(self.node).inc()
        elif what == "lost":
            ZK_SESSION_LOSSES.labels(self.node).inc()

    async def scrape(self) -> bytes:
        """One bulk stats call, then the exposition text (rendered in a worker thread)."""
        async with self._scrape:
            self.stats_calls.labels(self.node).inc()
            try:
                stats = await self.hv.all_domain_stats()
            except HypervisorError as e:  # the node's figures are still worth serving
                log.warning("metrics: %s", e)
                stats = []
            return await asyncio.to_thread(self._render, stats)

    def _render(self, stats: list[DomainStats]) -> bytes:
        with self._render_lock:
            self.vms.stats = stats
            try:
                return generate_latest(self.registry) + generate_latest(REGISTRY)
            finally:
                self.vms.stats = []

    async def _handle(self, _request: web.Request) -> web.Response:
        body = await self.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
