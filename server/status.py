"""`GET /status`: the cluster summary (primary, nodes and VMs by state, the cluster
defaults, the cache's resourceVersion). Registered by `server.routes`.
"""

from __future__ import annotations

from aiohttp import web

from server.access import reading
from server.http import json_response
from server.node_handlers import current_primary
from server.views import summary
from store.layout import DEFAULT_CONFIG as DEFAULTS


async def cluster_status(request: web.Request) -> web.Response:
    c = reading(request)
    body = summary(c.cache.all_vms(), c.cache.all_nodes(), primary=await current_primary(c))
    body["config"] = {key: c.cache.setting(key, default) for key, default in DEFAULTS.items()}
    body["resourceVersion"] = str(c.cache.watermark)
    return json_response(body)

