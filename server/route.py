"""One entry of the API's route table (`server.routes`): method, path, handler, and what
the OpenAPI document says of it. A module of its own, importing no handler, so that the
OpenAPI generator (`server.openapi`) and the app's state keys (`server.keys`) can name
the type without importing the route table (no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp.typedefs import Handler
from marshmallow import Schema

PREFIX = "/api/v1"
READ = (401, 503)
WRITE = (400, 401, 403, 409, 413, 422, 503)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    answer: type[Schema] | None
    status: int = 200
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    errors: tuple[int, ...] = READ
    content_type: str = "application/json"


def api_route(method: str, path: str, handler: Handler, summary: str, answer: type[Schema] | None,
       **kw: Any) -> Route:
    return Route(method, PREFIX + path, handler, summary, answer, **kw)
