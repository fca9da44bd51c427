"""The typed keys of the application's shared state (`web.AppKey`): the configuration,
the store, the cache and the group commit, which every part of `server` reaches, and the
request's audit object (`AUDIT_OBJECT`, named by handlers, read by `server.audit`). A key
whose value belongs to one module (the tokens of `server.auth`, the counters of
`server.metrics`) is defined there, beside its type, so that this module imports no
module that imports it (no import cycle). Set by `server.app.make_app` and its cleanup
context; read by handlers and middlewares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from server.config import ServerConfig
from server.route import Route
from store.client import Store

if TYPE_CHECKING:
    from server.cache import ClusterCache
    from server.groupcommit import GroupCommit

CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", Store)
CACHE: web.AppKey[ClusterCache] = web.AppKey("cache")
COMMITS: web.AppKey[GroupCommit] = web.AppKey("commits")
ROUTE_TABLE = web.AppKey("routes", tuple[Route, ...])
AUDIT_OBJECT = web.RequestKey("herd_audit_object", str)
