"""`GET /openapi.json`: the OpenAPI 3 document, generated from the marshmallow schemas
(apispec with its MarshmallowPlugin) and the route table (`server.routes`, kept in the app's state).

Project fields get what apispec cannot infer: `Choice` its enum, `Name` the name pattern.
Every error answer has the one error body (`ErrorBody`); every operation names the least
role that may use it (`x-herd-role`, `server.routes.ROLES`). Built once per application.
Called by `server.status.openapi`, tests and the fuzz test.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from schemas.common import Choice
from schemas.names import MAX_NAME_LEN, NAME_RE, Name
from schemas.netaddr import MAC_RE
from schemas.operations import ErrorBody
from server.config import ServerConfig
from server.http import json_response
from server.keys import CONFIG, ROUTE_TABLE
from server.route import Route

VERSION = "0.1.0"
_DOCS: dict[int, dict[str, Any]] = {}
BINARY = "application/octet-stream"

ERROR_TEXT = {400: "Bad request (not JSON, or refused for a reason the message names)",
              401: "No valid bearer token",
              403: "Anonymous requests may only read, or the token's role is below the "
                   "route's (the message names the role needed)",
              404: "No such object", 409: "Conflict with the current state (or a stale write)",
              410: "The events to resume from are gone: list again, then watch",
              411: "A Content-Length is required",
              413: "Too large", 422: "Invalid input: field-level details",
              503: "ZooKeeper is unreachable, or the request passed its deadline "
                   "(deadline_exceeded): retry after Retry-After seconds",
              502: "The libvirt of the node that holds the volume failed or cannot be reached",
              504: "Not reached before the timeout: details hold the current state",
              507: "No node has room for it in the pool"}


def _project_fields(_converter: Any, field: fields.Field[Any], **_kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(field, Choice):
        out["enum"] = list(field.choices)
    if isinstance(field, Name):
        out.update(pattern=NAME_RE, maxLength=MAX_NAME_LEN, minLength=1)
    return out


def _name_param(name: str) -> dict[str, Any]:
    return {"in": "path", "name": name, "required": True,
            "schema": {"type": "string", "pattern": NAME_RE, "maxLength": MAX_NAME_LEN}}


def _answer(route: Route) -> dict[str, Any]:
    if route.answer is None:
        schema: dict[str, Any] = (
            {"type": "string"} if route.content_type == "text/plain"
            else {"type": "string", "format": "binary"} if route.content_type == BINARY
            else {"type": "object"})
        return {"description": route.summary, "content": {route.content_type: {"schema": schema}}}
    return {"description": route.summary,
            "content": {route.content_type: {"schema": route.answer}}}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": route.summary,
                          "operationId": f"{route.method.lower()}_{route.handler.__name__}",
                          "responses": {str(route.status): _answer(route)},
                          "x-herd-role": route.role.value if route.role else None}
    params = [_name_param(n) for n in ("vm", "node", "token", "net", "rule", "pool", "vol")
              if "{" + n + "}" in route.path]
    if "{mac}" in route.path:
        params.append({"in": "path", "name": "mac", "required": True,
                       "schema": {"type": "string", "pattern": MAC_RE}})
    if route.query is not None:
        params.append({"in": "query", "schema": route.query})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": route.body}}}
    if route.raw_body:
        op["requestBody"] = {"required": True, "content": {
            BINARY: {"schema": {"type": "string", "format": "binary"}}}}
    for status in sorted(set(route.errors)):
        op["responses"][str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": "ErrorBody"}}}
    return op


def build(config: ServerConfig, routes: tuple[Route, ...]) -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(title="Herd API", version=VERSION, openapi_version="3.0.3",
                   plugins=[plugin],
                   info={"description": "Herd keeps VMs running across KVM hypervisors."})
    plugin.converter.add_attribute_function(_project_fields)  # type: ignore[union-attr]
    spec.components.schema("ErrorBody", schema=ErrorBody)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    doc = spec.to_dict()
    doc["security"] = [{"bearer": []}, {}] if config.anonymous_reads else [{"bearer": []}]
    return doc


def document(app: web.Application) -> dict[str, Any]:
    """The document of `app` (built on first use, then kept)."""
    key = id(app)
    if key not in _DOCS:
        _DOCS[key] = build(app[CONFIG], app[ROUTE_TABLE])
    return _DOCS[key]


async def openapi_json(request: web.Request) -> web.Response:
    """`GET /openapi.json`."""
    return json_response(document(request.app))
