"""`GET /metrics`: herd-api's Prometheus exposition, made with prometheus-client.

Each app has its own `CollectorRegistry` (`Metrics.registry`; never the process-global
one: tests run several apps in one process). What it publishes:
- `herd_api_requests_total{method,route,status}` and the latency histogram
  `herd_api_request_duration_seconds{method,route}` (route = the route's template, e.g.
  /api/v1/vm/{vm}, so names do not explode the label space), recorded by
  `metrics_middleware` (the outermost one, so it sees the final status of every answer);
- read from the cache at scrape time (`AppCollector`): `herd_vms{state}`,
  `herd_vm_status{vm,desired,state,node}` (1 per VM: spec state, observed state, the node
  its status speaks for or ""), `herd_nodes{daemon_state,domain_state}`,
  `herd_node_alive{node}` (1 while its daemon's session holds the alive znode),
  `herd_api_watchers`, `herd_api_cache_synced`, `herd_api_resource_version`;
- the group commit of defines (`server.groupcommit`): `herd_api_define_transactions_total`,
  `herd_api_define_requests_total` (their ratio is the group size) and
  `herd_api_define_fallbacks_total` (groups committed again request by request);
- the audit trail (`server.audit`): `herd_api_audit_written_total`,
  `herd_api_audit_lost_total`.
Counters and histograms carry no `_created` series (`_Instruments` leaves them out, per
registry, instead of prometheus-client's process-wide switch).

A scrape reads the cache on the loop in one pass over VMs and nodes (the collectors only
build sample lists), then formats the text in a thread (`generate_latest` over that
snapshot: with 10,000 VMs the formatting is most of the cost, and the cache is not
touched there). Installed by `server.app`; the handler is registered by `server.routes`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Iterable, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client import Counter as CounterMetric
from prometheus_client import Histogram as HistogramMetric
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from server.audit import AUDITOR, Auditor
from server.cache import ClusterCache
from server.groupcommit import GroupStats
from server.keys import CACHE, COMMITS
from store.model import VM, Node

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Instruments:
    """The request counter and histogram as one collector, without `_created` samples."""

    def __init__(self, *metrics: CounterMetric | HistogramMetric) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            for family in metric.collect():
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
                yield family

    def describe(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield from metric.describe()


class _Snapshot:
    """Families already collected (formatted off the loop by `generate_latest`)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class Metrics:
    """An app's registry: the request instruments, and `AppCollector` once `watch`ed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = CounterMetric(
            "herd_api_requests_total", "Requests answered, by method, route and status.",
            ("method", "route", "status"), registry=None)
        self.latency = HistogramMetric(
            "herd_api_request_duration_seconds", "Time to answer, by method and route.",
            ("method", "route"), buckets=BUCKETS, registry=None)
        self.registry.register(_Instruments(self.requests, self.latency))

    def observe(self, method: str, route: str, *, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def watch(self, app: web.Application) -> None:
        """Publish `app`'s cache, group commit and auditor at every scrape."""
        self.registry.register(AppCollector(app))

    async def render(self) -> bytes:
        """The exposition text: collected on the loop, formatted in a thread."""
        families = list(self.registry.collect())
        return await asyncio.to_thread(generate_latest, _Snapshot(families))


METRICS = web.AppKey("metrics", Metrics)  # set by server.app


class AppCollector:
    """The values read at scrape time from the app's cache, group commit and auditor
    (those not there yet, before the cleanup context has made them, are left out)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        if CACHE in app:
            yield from cluster_families(app[CACHE])
        if COMMITS in app:
            yield from commit_families(app[COMMITS].stats)
        if AUDITOR in app:
            yield from audit_families(app[AUDITOR])

    def describe(self) -> Iterator[Metric]:
        """The families this collector makes (their names: the registry's clash check)."""
        yield from _vm_families([]) + _node_families([])
        for name in ("herd_api_watchers", "herd_api_cache_synced", "herd_api_resource_version"):
            yield _gauge(name, "", 0)
        yield from commit_families(GroupStats())
        yield from _audit_counters(written=0, lost=0)


def _gauge(name: str, what: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, what, value=value)


def cluster_families(cache: ClusterCache) -> list[Metric]:
    """VMs and nodes (one pass over each), watch streams and the cache's sync."""
    return _vm_families(cache.all_vms()) + _node_families(cache.all_nodes()) + [
        _gauge("herd_api_watchers", "Open watch streams.", len(cache.hub.watchers)),
        _gauge("herd_api_cache_synced", "1 while the cache is in sync with ZooKeeper.",
               int(cache.synced)),
        _gauge("herd_api_resource_version", "Newest zxid the cache has applied.",
               cache.watermark)]


def _vm_families(vms: Iterable[VM]) -> list[Metric]:
    by_state: Tally[str] = Tally()
    status = GaugeMetricFamily(
        "herd_vm_status", "1 per VM: its desired state (spec), observed state and the node "
        "its status speaks for (\"\" when none).", labels=("vm", "desired", "state", "node"))
    for rec in vms:
        state = rec.state or "unknown"
        by_state[state] += 1
        status.add_metric((rec.name, rec.want.value, state, rec.status_node or ""), 1)
    by = GaugeMetricFamily("herd_vms", "VMs by observed state.", labels=("state",))
    for state, n in sorted(by_state.items()):
        by.add_metric((state,), n)
    return [by, status]


def _node_families(nodes: Iterable[Node]) -> list[Metric]:
    by_state: Tally[tuple[str, str]] = Tally()
    alive = GaugeMetricFamily("herd_node_alive", "1 while the node's daemon holds its alive "
                              "znode (its ZooKeeper session is up), else 0.", labels=("node",))
    for node in nodes:
        by_state[(node.daemon_state or "unknown", node.domain_state or "unknown")] += 1
        alive.add_metric((node.name,), int(node.alive))
    by = GaugeMetricFamily("herd_nodes", "Nodes by daemon and domain state.",
                           labels=("daemon_state", "domain_state"))
    for (daemon, domain), n in sorted(by_state.items()):
        by.add_metric((daemon, domain), n)
    return [by, alive]


def commit_families(stats: GroupStats) -> list[Metric]:
    return [CounterMetricFamily(f"herd_api_define_{name}_total", what, value=value)
            for name, value, what in (
                ("transactions", stats.transactions,
                 "Define transactions sent (grouped or not)."),
                ("requests", stats.requests, "Define requests those transactions carried."),
                ("fallbacks", stats.fallbacks, "Groups that failed and were committed again "
                                               "request by request."))]


def audit_families(auditor: Auditor) -> list[Metric]:
    return _audit_counters(written=auditor.written, lost=auditor.lost)


def _audit_counters(*, written: int, lost: int) -> list[Metric]:
    return [CounterMetricFamily("herd_api_audit_written_total", "Audit records written.",
                                value=written),
            CounterMetricFamily("herd_api_audit_lost_total", "Audit records that could not "
                                "be written (each logged at ERROR).", value=lost)]


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        request.app[METRICS].observe(request.method, _route(request), status=status,
                                     seconds=time.perf_counter() - start)


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
