"""The application factory `make_app(config)`: middlewares, routes, and the ZooKeeper
client with the watched cache and the group commit of defines in a cleanup context
(connected at start-up, stopped at cleanup). The server keeps no state beyond that cache,
so any number of herd-api processes may serve one cluster. Called by `server.main`, tests
and benchmarks.

Middlewares, outermost first: metrics (sees every final status), audit (records every
write with its final status, `server.audit`), errors (the one place that makes error
bodies), the request's deadline (`server.deadline`), auth (who the caller is, and whether
its role may use the route).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from server.audit import AUDITOR, Auditor, audit_middleware
from server.auth import ROUTE_ROLES, TOKENS, Tokens, auth_middleware
from server.cache import ClusterCache
from server.config import ServerConfig
from server.consoles.nodelink import session_ctx
from server.deadline import deadline_middleware
from server.errors import error_middleware
from server.groupcommit import GroupCommit
from server.keys import CACHE, COMMITS, CONFIG, ROUTE_TABLE, STORE
from server.metrics import METRICS, Metrics, metrics_middleware
from server.routes import ROUTES
from server.tokens import REGISTRY, TokenRegistry
from server.ui.serve import add_ui
from store.client import Store
from store.configfile import ConfigError
from store.layout import ensure_layout
from vocabulary import Role


def _connect(store: Store) -> None:
    store.start()
    try:
        ensure_layout(store)
    except Exception:
        store.stop()
        raise


async def zookeeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect, create the layout where missing, sync the cache; undo it all at cleanup."""
    config = app[CONFIG]

    store = Store(config.zk_target, config.zk_root, timeout=config.zk_timeout)
    await asyncio.to_thread(_connect, store)
    cache = ClusterCache(store, history=config.watch_history)
    try:
        await cache.start()
    except BaseException:
        await cache.stop()
        await asyncio.to_thread(store.stop)
        raise
    registry = TokenRegistry(store)
    try:
        await registry.start()
    except BaseException:
        await registry.stop()
        await cache.stop()
        await asyncio.to_thread(store.stop)
        raise
    auditor = Auditor(store)
    auditor.start()
    app[STORE] = store
    app[CACHE] = cache
    app[COMMITS] = GroupCommit(store)
    app[REGISTRY] = registry
    app[AUDITOR] = auditor
    yield
    await auditor.stop()
    await registry.stop()
    await cache.stop()
    await asyncio.to_thread(store.stop)


async def _on_shutdown(app: web.Application) -> None:
    """Waiting requests and watch streams end now instead of holding the shutdown up."""
    if CACHE in app:
        app[CACHE].close()


def make_app(config: ServerConfig) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes,
                          middlewares=[metrics_middleware, audit_middleware, error_middleware,
                                       deadline_middleware, auth_middleware])
    app[CONFIG] = config
    app[TOKENS] = Tokens(config.token_file)
    app[METRICS] = Metrics()
    app[METRICS].watch(app)  # the cache, group commit and auditor, once the context made them
    app[ROUTE_TABLE] = ROUTES
    app[ROUTE_ROLES] = {(r.method, r.path): r.role or Role.ADMIN for r in ROUTES}
    app.cleanup_ctx.append(zookeeper_ctx)
    app.cleanup_ctx.append(session_ctx)
    app.on_shutdown.append(_on_shutdown)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    add_ui(app)
    return app


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server's TLS context from `tls_cert` and `tls_key`, or None without them."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"config: tls_cert/tls_key: cannot load them: {e}") from None
    return context
