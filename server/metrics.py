"""`GET /metrics`: Prometheus text exposition, written by hand.

- `herd_api_requests_total{method,route,status}` and the latency histogram
  `herd_api_request_duration_seconds{method,route}` (route = the route's template, e.g.
  /api/v1/vm/{vm}, so names do not explode the label space), recorded by
  `metrics_middleware` (the outermost one, so it sees the final status of every answer);
- `herd_vms{state}` and `herd_nodes{daemon_state,domain_state}` from the cache;
- `herd_api_watchers`, `herd_api_cache_synced`, `herd_api_resource_version`;
- the group commit of defines (`server.groupcommit`): `herd_api_define_transactions_total`,
  `herd_api_define_requests_total` (their ratio is the group size) and
  `herd_api_define_fallbacks_total` (groups committed again request by request);
- the audit trail (`server.audit`): `herd_api_audit_written_total`,
  `herd_api_audit_lost_total`.
Installed and registered by `server.app` / `server.routes`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from server.audit import AUDITOR
from server.cache import ClusterCache
from server.groupcommit import GroupStats
from server.keys import CACHE, COMMITS

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
        self.total += seconds
        self.n += 1


class Metrics:
    """Request counters and latency histograms (updated on the loop only)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, *, status: int, seconds: float) -> None:
        self.requests[(method, route, status)] += 1
        self.latency.setdefault((method, route), Histogram()).observe(seconds)

    def render(self, cache: ClusterCache, commits: GroupStats) -> str:
        lines = _requests(self) + _latency(self) + _cluster(cache) + _commits(commits)
        return "\n".join(lines) + "\n"


METRICS = web.AppKey("metrics", Metrics)  # set by server.app


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _requests(m: Metrics) -> list[str]:
    lines = ["# HELP herd_api_requests_total Requests answered, by method, route and status.",
             "# TYPE herd_api_requests_total counter"]
    for (method, route, status), n in sorted(m.requests.items()):
        lines.append(f"herd_api_requests_total{_labels(method=method, route=route, status=status)}"
                     f" {n}")
    return lines


def _latency(m: Metrics) -> list[str]:
    name = "herd_api_request_duration_seconds"
    lines = [f"# HELP {name} Time to answer, by method and route.", f"# TYPE {name} histogram"]
    for (method, route), h in sorted(m.latency.items()):
        for bound, count in zip(BUCKETS, h.counts, strict=True):
            lines.append(f"{name}_bucket{_labels(method=method, route=route, le=bound)} {count}")
        lines.append(f"{name}_bucket{_labels(method=method, route=route, le='+Inf')} {h.n}")
        lines.append(f"{name}_sum{_labels(method=method, route=route)} {h.total:.6f}")
        lines.append(f"{name}_count{_labels(method=method, route=route)} {h.n}")
    return lines


def _cluster(cache: ClusterCache) -> list[str]:
    vms = Counter(rec.state or "unknown" for rec in cache.all_vms())
    nodes = Counter((n.daemon_state or "unknown", n.domain_state or "unknown")
                    for n in cache.all_nodes())
    lines = ["# HELP herd_vms VMs by observed state.", "# TYPE herd_vms gauge"]
    lines += [f"herd_vms{_labels(state=s)} {n}" for s, n in sorted(vms.items())]
    lines += ["# HELP herd_nodes Nodes by daemon and domain state.", "# TYPE herd_nodes gauge"]
    lines += [f"herd_nodes{_labels(daemon_state=d, domain_state=s)} {n}"
              for (d, s), n in sorted(nodes.items())]
    lines += ["# HELP herd_api_watchers Open watch streams.", "# TYPE herd_api_watchers gauge",
              f"herd_api_watchers {len(cache.hub.watchers)}",
              "# HELP herd_api_cache_synced 1 while the cache is in sync with ZooKeeper.",
              "# TYPE herd_api_cache_synced gauge", f"herd_api_cache_synced {int(cache.synced)}",
              "# HELP herd_api_resource_version Newest zxid the cache has applied.",
              "# TYPE herd_api_resource_version gauge",
              f"herd_api_resource_version {cache.watermark}"]
    return lines


def _commits(stats: GroupStats) -> list[str]:
    lines = []
    for name, value, what in (
            ("transactions", stats.transactions, "Define transactions sent (grouped or not)."),
            ("requests", stats.requests, "Define requests those transactions carried."),
            ("fallbacks", stats.fallbacks, "Groups that failed and were committed again "
                                           "request by request.")):
        lines += [f"# HELP herd_api_define_{name}_total {what}",
                  f"# TYPE herd_api_define_{name}_total counter",
                  f"herd_api_define_{name}_total {value}"]
    return lines


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
    app = request.app
    body = app[METRICS].render(app[CACHE], app[COMMITS].stats) + app[AUDITOR].metric_lines()
    return web.Response(body=body.encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
