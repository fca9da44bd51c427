"""Every request has a deadline: `deadline_middleware` bounds each request by the server's
`request_timeout` and answers 503 (`deadline_exceeded`, with Retry-After) when it runs out,
through the error middleware. Handlers that wait on purpose move their own deadline:
`wait=true` requests by their wait timeout (`extend_deadline`), the watch stream lifts it
(`lift_deadline`; the stream ends at its own `timeout`, or when the client leaves).

A write cut by its deadline may still land in ZooKeeper (the thread that sends it is not
stopped): the answer says its effect is unknown. `deadline_left` gives work done in a
thread the time it may take. Installed by `server.app.make_app`, inside the error
middleware; called by the handlers of `server.vm_verbs`, `server.node_handlers`,
`server.vm_handlers` and `server.watch`.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from server.config import ServerConfig
from server.errors import ApiError
from server.keys import CONFIG

DEADLINE = web.RequestKey("deadline", asyncio.Timeout)


@web.middleware
async def deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the handler within the request's deadline; 503 when it expires."""
    config = request.app[CONFIG]
    try:
        async with asyncio.timeout(config.request_timeout) as deadline:
            request[DEADLINE] = deadline
            return await handler(request)
    except TimeoutError:
        if not deadline.expired():
            raise  # a timeout of the handler's own: not the deadline's
        raise ApiError(
            503, "deadline_exceeded",
            f"the request did not finish within {config.request_timeout:g} s "
            "(request_timeout); if it was a write, its effect is unknown: read the object "
            "before retrying", headers={"Retry-After": str(config.retry_after)}) from None


def extend_deadline(request: web.Request, seconds: float) -> None:
    """The request waits on purpose for up to `seconds` more: its deadline moves by that."""
    deadline = request.get(DEADLINE)
    if deadline is not None:
        loop = asyncio.get_running_loop()
        limit = request.app[CONFIG].request_timeout
        deadline.reschedule(loop.time() + seconds + limit)


def wait_limit(config: ServerConfig, timeout: float | None) -> float:
    """How long a `wait=true` request waits: its timeout, at most `max_wait_timeout`."""
    return min(timeout or config.max_wait_timeout, config.max_wait_timeout)


def lift_deadline(request: web.Request) -> None:
    """A stream with its own end (the watch): no deadline from here on."""
    deadline = request.get(DEADLINE)
    if deadline is not None:
        deadline.reschedule(None)


def deadline_left(request: web.Request) -> float | None:
    """Seconds left before the request's deadline (None: no deadline)."""
    deadline = request.get(DEADLINE)
    when = None if deadline is None else deadline.when()
    return None if when is None else max(0.0, when - asyncio.get_running_loop().time())
