"""One entry of the API's route table (`server.routes`): method, path, handler, what
the OpenAPI document says of it, and the least role that may use it (`with_roles` sets
it from the table of roles declared beside the routes, refusing a route without one). A
module of its own, importing no handler, so that the OpenAPI generator
(`server.openapi`) and the app's state keys (`server.keys`) can name the type without
importing the route table (no import cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aiohttp.typedefs import Handler
from marshmallow import Schema

from vocabulary import Role

PREFIX = "/api/v1"
READ = (401, 403, 503)
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
    raw_body: bool = False  # the body is bytes (application/octet-stream), not JSON
    role: Role | None = None  # set by `with_roles`; the middleware refuses None routes


RoleTable = Mapping[tuple[str, str], Role]


def api_route(method: str, path: str, handler: Handler, summary: str, answer: type[Schema] | None,
       **kw: Any) -> Route:
    return Route(method, PREFIX + path, handler, summary, answer, **kw)


def with_roles(routes: tuple[Route, ...], roles: RoleTable) -> tuple[Route, ...]:
    """The routes, each with its role from `roles` (keyed by method and path without the
    prefix). Every route must have one, and every entry must name a route."""
    keys = {(r.method, r.path.removeprefix(PREFIX)) for r in routes}
    missing = sorted(keys - set(roles))
    unknown = sorted(set(roles) - keys)
    if missing or unknown:
        raise ValueError(f"the role table must name every route exactly: no role for "
                         f"{missing}, no route for {unknown}")
    return tuple(replace(r, role=roles[(r.method, r.path.removeprefix(PREFIX))])
                 for r in routes)
