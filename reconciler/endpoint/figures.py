"""The current figures of this node's VMs, as rates (issue #16: `herdctl node info`,
`vm info`).

libvirt reports counters (CPU nanoseconds, bytes and requests since the guest started);
a rate needs two samples. `Figures.current()` takes one bulk stats call
(`Hypervisor.all_domain_stats`, the call a Prometheus scrape makes) and compares it with
the previous one when that is between MIN_WINDOW and MAX_AGE seconds old; otherwise it
measures over MIN_WINDOW itself. `rates` is pure. Served as `GET /figures` by the node
endpoint (`reconciler.endpoint.server`), which herd-api asks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from aiohttp import web

from reconciler.libvirt import Hypervisor
from reconciler.libvirt.interface import DomainStats

MIN_WINDOW = 1.0  # seconds: the shortest window a rate is measured over
MAX_AGE = 300.0  # seconds: an older sample is no base for "current"


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic()
    stats: dict[str, DomainStats]


@dataclass(frozen=True)
class VMFigures:
    """One VM's figures, named as the API shows them."""

    state: str
    cpuPercent: float
    memoryBytes: int | None
    rssBytes: int | None
    diskReadBytesPerSecond: float
    diskWriteBytesPerSecond: float
    diskReadsPerSecond: float
    diskWritesPerSecond: float
    networkReceiveBytesPerSecond: float
    networkTransmitBytesPerSecond: float


def _per_second(before: float, after: float, window: float) -> float:
    return round(max(0.0, after - before) / window, 1)


def _figures(old: DomainStats | None, new: DomainStats, window: float) -> VMFigures:
    def total(s: DomainStats | None, attr: str, devices: str) -> float:
        return float(sum(getattr(d, attr) for d in getattr(s, devices))) if s else 0.0

    def rate(attr: str, devices: str) -> float:
        return _per_second(total(old, attr, devices), total(new, attr, devices), window)

    cpu_old = old.cpu_seconds if old and old.cpu_seconds is not None else None
    cpu = (0.0 if cpu_old is None or new.cpu_seconds is None
           else _per_second(cpu_old, new.cpu_seconds, window) * 100)
    return VMFigures(
        state=str(new.state), cpuPercent=round(cpu, 1), memoryBytes=new.balloon_current_bytes,
        rssBytes=new.balloon_rss_bytes,
        diskReadBytesPerSecond=rate("read_bytes", "disks"),
        diskWriteBytesPerSecond=rate("write_bytes", "disks"),
        diskReadsPerSecond=rate("read_requests", "disks"),
        diskWritesPerSecond=rate("write_requests", "disks"),
        networkReceiveBytesPerSecond=rate("rx_bytes", "interfaces"),
        networkTransmitBytesPerSecond=rate("tx_bytes", "interfaces"))


def rates(before: Sample, after: Sample) -> dict[str, VMFigures]:
    """Every VM of `after`, its counters as rates over the window since `before` (a VM
    new since then counts from zero)."""
    window = max(after.at - before.at, 1e-3)
    return {name: _figures(before.stats.get(name), stats, window)
            for name, stats in sorted(after.stats.items())}


class Figures:
    """The node's current figures, measured on demand."""

    def __init__(self, hv: Hypervisor) -> None:
        self.hv = hv
        self.previous: Sample | None = None
        self._lock = asyncio.Lock()

    async def _sample(self) -> Sample:
        stats = await self.hv.all_domain_stats()
        return Sample(time.monotonic(), {s.name: s for s in stats})

    async def current(self) -> dict[str, VMFigures]:
        async with self._lock:
            now = await self._sample()
            before = self.previous
            if before is None or not MIN_WINDOW <= now.at - before.at <= MAX_AGE:
                before = now
                await asyncio.sleep(MIN_WINDOW)  # the measuring window, not a wait for news
                now = await self._sample()
            self.previous = now
            return rates(before, now)

    async def handle(self, _request: web.Request) -> web.Response:
        found = await self.current()
        return web.json_response({"vms": {name: asdict(f) for name, f in found.items()}})
