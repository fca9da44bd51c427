"""herd-node's HTTP endpoint on `metrics_address` (issue #16).

One aiohttp server per node:
- `GET /metrics` for Prometheus, open (`reconciler.metrics.MetricsExporter`);
- for herd-api only, each request with a ticket signed by this start's key
  (`store.nodekeys`; the key is published in ZooKeeper when the endpoint starts):
  `GET /vm/{vm}/console` and `GET /vm/{vm}/vnc` (WebSockets, `reconciler.endpoint.consoles`),
  `GET /vm/{vm}/log` and `PUT /vm/{vm}/log/history` (`reconciler.endpoint.consolelogs`),
  `GET /figures` (`reconciler.endpoint.figures`).
Why a node endpoint rather than libvirt's remote protocol from the API host: herd-api
would need libvirt credentials for every hypervisor (a client certificate that can do
anything to every guest), the console log lives in files on the node, and the node needs a
server for Prometheus anyway. The endpoint URL goes into the node's status (`endpoint`).

`hand_over(vm, node)` sends a VM's console log to the node it went to, once the VM left
(`reconciler.daemon` calls it after a live migration or a move). Made, started and
stopped by `reconciler.daemon.NodeDaemon`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from reconciler.config import NodeConfig
from reconciler.endpoint.consolelogs import ConsoleLogs
from reconciler.endpoint.consoles import Consoles
from reconciler.endpoint.errors import refusal
from reconciler.endpoint.figures import Figures
from reconciler.libvirt import Hypervisor
from reconciler.libvirt.adapter import LibvirtHypervisor
from reconciler.metrics import MetricsExporter
from store import nodekeys
from store.client import Store
from store.informer import Informer

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN = frozenset({"/metrics"})


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class NodeEndpoint:
    """The node's server; off (nothing served, no URL published) without an address."""

    def __init__(self, node: str, address: str | None, *, store: Store, nodes: Informer,
                 metrics: MetricsExporter, logs: ConsoleLogs, consoles: Consoles | None,
                 figures: Figures, advertise: str | None = None) -> None:
        self.node, self.address, self.store, self.nodes = node, address, store, nodes
        self.metrics, self.logs, self.consoles, self.figures = metrics, logs, consoles, figures
        self.advertise = advertise  # the node's address, for a wildcard bind
        self.check: nodekeys.TicketCheck | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_node(cls, config: NodeConfig, *, hv: Hypervisor, store: Store, nodes: Informer,
                 metrics: MetricsExporter) -> NodeEndpoint:
        """The endpoint of a herd-node with `config` (consoles only on a real libvirt)."""
        logs = ConsoleLogs(config.console_log_local_dir or config.console_log_dir,
                           limit=config.console_log_bytes)
        consoles = Consoles(hv.connection) if isinstance(hv, LibvirtHypervisor) else None
        return cls(config.name, config.metrics_address, store=store, nodes=nodes,
                   metrics=metrics, logs=logs, consoles=consoles, figures=Figures(hv),
                   advertise=config.address)

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        assert self._runner is not None, "not started"
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str | None:
        """Where herd-api reaches this endpoint (None while off)."""
        if self._runner is None or self.address is None:
            return None
        host = split_address(self.address)[0]
        if host in ("0.0.0.0", "::", "") and self.advertise:
            host = self.advertise
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        if self.address is None:
            return
        key = await asyncio.to_thread(nodekeys.publish_key, self.store, self.node)
        self.check = nodekeys.TicketCheck(key)
        app = web.Application(middlewares=[self._tickets])
        self.metrics.attach(app)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        host, port = split_address(self.address)
        await web.TCPSite(self._runner, host, port).start()
        self._session = aiohttp.ClientSession()
        log.info("node endpoint on %s", self.url)

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/vm/{vm}/log", self.logs.get)
        app.router.add_put("/vm/{vm}/log/history", self.logs.put_history)
        app.router.add_get("/figures", self.figures.handle)
        if self.consoles is not None:
            app.router.add_get("/vm/{vm}/console", self.consoles.console)
            app.router.add_get("/vm/{vm}/vnc", self.consoles.vnc)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            self.metrics.detach()
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _tickets(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN or request.match_info.http_exception is not None:
            return await handler(request)  # /metrics, or a 404/405 that reveals nothing
        assert self.check is not None
        why = self.check.refusal(request.headers.get("Authorization"), request.method,
                                 request.rel_url.raw_path_qs)
        if why is not None:
            raise refusal(401, why)
        return await handler(request)

    async def hand_over(self, vm: str, node: str) -> None:
        """Send `vm`'s console log to `node`, where it runs now; then forget it here. A
        failure is logged once: the log stays here (the next hand-over takes it along)."""
        data = await asyncio.to_thread(self.logs.tail, vm)
        if not data or self._session is None:
            return
        try:
            url, header = self._signed(node, "PUT", f"/vm/{vm}/log/history")
            async with self._session.put(url, data=data, headers={"Authorization": header},
                                         timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")
        except (aiohttp.ClientError, RuntimeError, LookupError, TimeoutError) as e:
            log.warning("%s: console log not handed over to %s: %s", vm, node, e)
            return
        await asyncio.to_thread(self.logs.forget, vm)
        log.info("%s: console log (%d bytes) handed over to %s", vm, len(data), node)

    def _signed(self, node: str, method: str, path: str) -> tuple[str, str]:
        """The URL of `path` on `node`'s endpoint and its ticket (LookupError if unknown)."""
        status = self.nodes.get(self.store.paths.node_status(node))
        key = self.nodes.get(nodekeys.key_path(self.store, node))
        found = nodekeys.link_of(node, status.doc if status else None, key.doc if key else None)
        if found is None:
            raise LookupError(f"node {node} publishes no endpoint")
        url, headers = found.request(method, path)
        return url, headers["Authorization"]
