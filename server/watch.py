"""`GET /watch`: a stream of change events as newline-delimited JSON.

Filters: `kind` (VM, Node, Network, Pool, Volume or Rule) and `name`. Without
`resourceVersion` the stream starts with an ADDED event for every object that exists now,
then follows changes; with one, it replays the kept events from that version on (see
`server.events` for the exact rule) and answers 410 when they are no longer all kept.
`timeout` ends the stream after that many seconds (default: never). A watcher that falls
too far behind is cut off; it resumes with the last resourceVersion it saw. Registered
by `server.routes`.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from marshmallow import RAISE, Schema, fields, validate

from schemas.common import MAX_WAIT_TIMEOUT, Choice
from schemas.names import Name
from server.access import Ctx, reading
from server.cache import render
from server.deadline import lift_deadline
from server.errors import ApiError
from server.events import Event, Gone, Watcher
from server.http import load_query
from server.views import node_object, vm_object
from vocabulary import Kind


class WatchQuery(Schema):
    """Query string of GET /watch."""

    class Meta:
        unknown = RAISE

    kind = Choice(Kind, load_default=None)
    name = Name(load_default=None)
    resourceVersion = fields.String(load_default=None, validate=validate.Regexp(
        r"^[0-9]{1,19}$", error="Not a resourceVersion: digits, as an event carried."))
    timeout = fields.Float(load_default=None, validate=validate.Range(
        min=0, max=MAX_WAIT_TIMEOUT, min_inclusive=False,
        error=f"Must be more than 0 and at most {MAX_WAIT_TIMEOUT:g} seconds."))


_WATCH_QUERY = WatchQuery()


def _initial(c: Ctx, watcher: Watcher) -> list[Event]:
    """ADDED events for what exists now (the stream's starting state)."""
    rv, out = c.cache.watermark, []
    if watcher.kind in (None, "VM"):
        names = [watcher.name] if watcher.name else c.cache.vm_names()
        for name in names:
            rec = c.cache.vm(name)
            if rec is not None:
                out.append(Event(rv, "ADDED", "VM", name, vm_object(rec)))
    if watcher.kind in (None, "Node"):
        for node in c.cache.all_nodes():
            if watcher.name in (None, node.name):
                out.append(Event(rv, "ADDED", "Node", node.name, node_object(node, primary=None)))
    for kind in ("Network", "Pool", "Volume", "Rule"):
        if watcher.kind in (None, kind):
            out += [Event(rv, "ADDED", kind, name, render(c.cache, (kind, name)))
                    for name in c.cache.docs.names(kind) if watcher.name in (None, name)]
    return out


def _backlog(c: Ctx, watcher: Watcher, rv: str | None) -> list[Event]:
    if rv is None:
        return _initial(c, watcher)
    try:
        return [e for e in c.cache.hub.since(int(rv)) if watcher.wants(e)]
    except Gone as e:
        raise ApiError(410, "gone", str(e)) from None


async def _follow(resp: web.StreamResponse, watcher: Watcher, deadline: float | None) -> None:
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        try:
            event = await asyncio.wait_for(watcher.queue.get(), remaining)
        except TimeoutError:
            return
        if event is None:
            return
        await resp.write(event.line())


async def watch(request: web.Request) -> web.StreamResponse:
    c = reading(request)
    query = load_query(request, _WATCH_QUERY)
    watcher = Watcher(kind=query["kind"], name=query["name"])
    backlog = _backlog(c, watcher, query["resourceVersion"])
    c.cache.hub.add(watcher)  # no await since the backlog was taken: nothing is missed
    lift_deadline(request)  # a stream: it ends at its own timeout, or with the client
    deadline = None if query["timeout"] is None else time.monotonic() + query["timeout"]
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                       "Cache-Control": "no-cache"})
    try:
        await resp.prepare(request)
        for event in backlog:
            await resp.write(event.line())
        await _follow(resp, watcher, deadline)
        await resp.write_eof()
    except ConnectionResetError:  # the client went away
        pass
    finally:
        c.cache.hub.remove(watcher)
    return resp
