"""Request parsing and JSON responses shared by the handlers.

- `load_body(request, schema)`: the JSON body (400 when it is not JSON, 413 over the size
  limit), validated by a marshmallow schema (422 with field-level details, through the
  error middleware);
- `load_query(request, schema)`: the query string, each key at most once;
- `path_name(request, key)`: a `{vm}` / `{node}` path component, validated as a name;
- `json_response` / `raw_json`: compact JSON out.

Untrusted input is bounded before it is parsed: the body's size (aiohttp's
`client_max_size`), its JSON nesting (`schemas.untrusted`, 422 naming where); lone
surrogates and keys given twice in one object are refused (422 naming the field). A body
over INLINE_BODY_BYTES is parsed and validated in a thread, so no large body holds the
event loop. Every parse runs inside
`parsing()`, which turns the resource errors that input can provoke in a parser
(RecursionError, OverflowError, MemoryError, UnicodeError) into `BadInput`, a 4xx of the
error middleware; any other exception stays a server error (500).
Called by every handler module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from marshmallow import Schema, ValidationError

from schemas.names import validate_name
from schemas.untrusted import (
    DuplicateKey,
    duplicate_key_error,
    json_too_deep,
    surrogate_error,
    unique_keys,
)
from server.errors import ApiError, BadInput

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


INLINE_BODY_BYTES = 64 * 1024
_INPUT_ERRORS = (RecursionError, OverflowError, MemoryError, UnicodeError)


@contextmanager
def parsing(where: str) -> Iterator[None]:
    """Around the parsing of client input (`where`: body, query, path): the errors that
    input can provoke in a parser become `BadInput` (4xx); nothing else is caught."""
    try:
        yield
    except _INPUT_ERRORS as e:
        raise BadInput(where, e) from e


def parse_json(raw: bytes) -> Any:
    """A JSON body: its nesting bounded before parsing, lone surrogates refused after."""
    if not raw.strip():
        raise ApiError(400, "bad_request", "a JSON body is required")
    with parsing("body"):
        too_deep = json_too_deep(raw)
        if too_deep is not None:
            raise ValidationError(too_deep)
        try:
            value = json.loads(raw, object_pairs_hook=unique_keys)
        except DuplicateKey:
            raise ValidationError(duplicate_key_error(raw)) from None
        except (UnicodeDecodeError, ValueError) as e:
            raise ApiError(400, "bad_json", f"the body is not valid JSON: {e}") from None
        surrogate = surrogate_error(value)
    if surrogate is not None:
        raise ValidationError(surrogate)
    return value


def validated(schema: Schema, value: Any) -> dict[str, Any]:
    """`value` loaded by `schema` (ValidationError: 422 with field-level details)."""
    with parsing("body"):
        return dict(schema.load(value))


async def _off_loop_if_large(raw: bytes, work: Callable[[], Any]) -> Any:
    if len(raw) > INLINE_BODY_BYTES:
        return await asyncio.to_thread(work)
    return work()


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body; 400 when absent or not JSON, 422 when nested too deep."""
    raw = await request.read()  # over client_max_size: aiohttp raises 413
    return await _off_loop_if_large(raw, lambda: parse_json(raw))


async def load_body(request: web.Request, schema: Schema, *,
                    prepare: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """The JSON body (given to `prepare` first, when given) validated by `schema`."""
    raw = await request.read()

    def load() -> dict[str, Any]:
        value = parse_json(raw)
        return validated(schema, value if prepare is None else prepare(value))

    result: dict[str, Any] = await _off_loop_if_large(raw, load)
    return result


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
    surrogate = surrogate_error(query)
    if surrogate is not None:
        raise ValidationError(surrogate)
    with parsing("query"):
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
