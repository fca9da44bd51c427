"""Request parsing and JSON responses shared by the handlers.

- `load_body(request, schema)`: the JSON body (400 when it is not JSON, 413 over the size
  limit), validated by a marshmallow schema (422 with field-level details, through the
  error middleware);
- `load_query(request, schema)`: the query string, each key at most once;
- `path_name(request, key)`: a `{vm}` / `{node}` path component, validated as a name;
- `json_response` / `raw_json`: compact JSON out.
Called by every handler module.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError

from schemas.names import validate_name
from server.errors import ApiError

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body; 400 when absent or not JSON."""
    raw = await request.read()  # over client_max_size: aiohttp raises 413
    if not raw.strip():
        raise ApiError(400, "bad_request", "a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {e}") from None


async def load_body(request: web.Request, schema: Schema) -> dict[str, Any]:
    return dict(schema.load(await read_json(request)))


def load_query(request: web.Request, schema: Schema) -> dict[str, Any]:
    """The query string validated by `schema`; a key given twice is an error."""
    query: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            repeated[key] = ["Given more than once; give it once."]
        query[key] = values[-1]
    if repeated:
        raise ValidationError(repeated)
    return dict(schema.load(query))


def path_name(request: web.Request, key: str) -> str:
    """The path component `key` (`vm` or `node`), which must be a valid name."""
    value = request.match_info[key]
    try:
        validate_name(value)
    except ValidationError as e:
        raise ValidationError({key: e.messages}) from None
    return value


def dumps(data: Any) -> str:
    return _encoder.encode(data)


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(text=dumps(data), status=status, content_type="application/json")


def raw_json(body: bytes, *, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")
