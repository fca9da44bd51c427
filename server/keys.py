"""The typed keys of the application's state (`web.AppKey`), in one module so that every
part of `server` can reach the store, the cache and the rest without import cycles.
Set by `server.app.make_app` and its cleanup context; read by handlers and middlewares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from server.config import ServerConfig
from store.client import Store

if TYPE_CHECKING:
    from server.auth import Tokens
    from server.cache import ClusterCache
    from server.groupcommit import GroupCommit
    from server.metrics import Metrics

CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", Store)
CACHE: web.AppKey[ClusterCache] = web.AppKey("cache")
COMMITS: web.AppKey[GroupCommit] = web.AppKey("commits")
TOKENS: web.AppKey[Tokens] = web.AppKey("tokens")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
