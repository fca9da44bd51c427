"""The API's errors and the ONE middleware that turns every failure into a response.

Every error body has one shape, `{"error": {"code", "message", "details"}}`:
- `ApiError` (raised by handlers and the auth middleware) carries its status and code;
- marshmallow's `ValidationError` is bad input: 422 with its field-level messages as
  `details`, unchanged;
- the store's errors map to 404 (NotFound), 409 (AlreadyExists, Conflict, Refused), 413
  (TooLarge) and 503 with `Retry-After` (Unavailable, LayoutTooNew);
- aiohttp's own HTTP errors (unknown route 404, method 405, body too large 413) keep
  their status and get the same body;
- `BadInput` is input that made a parser fail in a way it does not report as a
  validation error (too deep, too large a number, not encodable: `server.http.parsing`
  raises it only around the parsing of client input): 422, or 413 for MemoryError,
  logged as a warning;
- anything else is a bug: logged, answered 500 without internals.
Installed by `server.app.make_app`; `error_body` is also used by the OpenAPI document.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from marshmallow import ValidationError

from server.keys import CONFIG
from store.errors import (
    AlreadyExists,
    Conflict,
    LayoutTooNew,
    NotFound,
    Refused,
    StoreError,
    TooLarge,
    Unavailable,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as `status` with a code, a message and optional details."""

    def __init__(self, status: int, code: str, message: str, *,
                 details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class BadInput(Exception):
    """Client input (`where`: body, query, path) that a parser failed on with `error`."""

    def __init__(self, where: str, error: BaseException) -> None:
        super().__init__(f"{where}: {type(error).__name__}: {error}")
        self.where = where
        self.error = error


def bad_request(message: str, **details: Any) -> ApiError:
    return ApiError(400, "bad_request", message, details=details)


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "not_found", f"{kind} {name!r} does not exist")


def conflict(message: str, **details: Any) -> ApiError:
    return ApiError(409, "conflict", message, details=details)


_STORE_ERRORS: tuple[tuple[type[StoreError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (AlreadyExists, 409, "already_exists"),
    (Conflict, 409, "conflict"),
    (Refused, 409, "refused"),
    (TooLarge, 413, "too_large"),
    (Unavailable, 503, "unavailable"),
    (LayoutTooNew, 503, "unavailable"),
)

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type"}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status: int, code: str, message: str, *,
                   details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(error_body(code, message, details), default=str)
    return web.Response(status=status, text=body, content_type="application/json",
                        headers=headers)


def validation_details(messages: Any) -> dict[str, Any]:
    """marshmallow's messages as a JSON object (a bare list goes under `_schema`)."""
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _from_store(request: web.Request, e: StoreError) -> web.Response:
    for cls, status, code in _STORE_ERRORS:
        if isinstance(e, cls):
            headers = None
            if status == 503:
                headers = {"Retry-After": str(request.app[CONFIG].retry_after)}
            return error_response(status, code, str(e) or code, headers=headers)
    log.error("store error on %s %s: %r", request.method, request.path, e)
    return error_response(500, "internal", "internal error in the store; see the server log")


def _from_bad_input(request: web.Request, e: BadInput) -> web.Response:
    log.warning("refused input on %s %s: %s", request.method, request.path, e)
    if isinstance(e.error, MemoryError):
        return error_response(413, "too_large", f"the {e.where} is too large to parse",
                              details={e.where: ["Too large to parse; make it smaller."]})
    what = ("is nested too deeply" if isinstance(e.error, RecursionError)
            else "holds a number too large" if isinstance(e.error, OverflowError)
            else "is not valid Unicode")
    return error_response(422, "invalid", f"the {e.where} {what}; see details",
                          details={e.where: [f"Cannot be parsed: it {what} "
                                             f"({type(e.error).__name__})."]})


def _from_http(e: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "www-authenticate")}
    code = _HTTP_CODES.get(e.status, "http_error")
    return error_response(e.status, code, e.reason, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The single place where failures become error responses."""
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.code, e.message, details=e.details, headers=e.headers)
    except ValidationError as e:
        return error_response(422, "invalid", "the request is not valid; see details",
                              details=validation_details(e.messages))
    except StoreError as e:
        return _from_store(request, e)
    except BadInput as e:
        return _from_bad_input(request, e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _from_http(e)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error; see the server log")
