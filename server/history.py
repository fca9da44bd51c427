"""GET /event: the cluster's event and audit logs (`store.events`), merged by time, newest
last, filtered by VM and kind: what the primary decided (fences, recoveries, flushes),
each live migration (source, target, start, end, duration, libvirt's downtime), i.e. a
VM's history, and who wrote what through the API (`kind=audit`: the audit log alone).

Read from ZooKeeper on each request (the log is not in the watched cache: it is bounded
and read rarely), once the audit records this server has queued are written (at most
`AUDIT_WAIT` seconds): a client sees the records of its own writes. Called through the
route table (`server.routes`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from marshmallow import INCLUDE, RAISE, Schema, fields, validate

from schemas.names import Name
from server.access import reading
from server.audit import AUDITOR
from server.audit import KIND as AUDIT_KIND
from server.http import json_response, load_query
from store import events
from store.client import Store

MAX_EVENTS = events.KEEP
AUDIT_WAIT = 2.0


class EventQuery(Schema):
    """Query string of GET /event."""

    class Meta:
        unknown = RAISE

    vm = Name(load_default=None)
    kind = fields.String(load_default=None, validate=validate.Regexp(
        r"^[a-z][a-z-]{0,39}$", error="Not an event kind: lower-case letters and dashes."))
    limit = fields.Integer(load_default=100, validate=validate.Range(
        min=1, max=MAX_EVENTS, error=f"Must be between 1 and {MAX_EVENTS}."))


class EventObject(Schema):
    """One event: when, what kind, a sentence, and the facts of its kind."""

    class Meta:
        unknown = INCLUDE

    time = fields.Float(required=True)
    kind = fields.String(required=True)
    message = fields.String(required=True)


class EventList(Schema):
    items = fields.List(fields.Nested(EventObject), required=True)
    count = fields.Integer(required=True)


_QUERY = EventQuery()


async def list_events(request: web.Request) -> web.Response:
    c = reading(request)
    query = load_query(request, _QUERY)
    if AUDITOR in request.app:
        try:
            await asyncio.wait_for(request.app[AUDITOR].drain(), AUDIT_WAIT)
        except TimeoutError:
            pass  # ZooKeeper slow or away: what is written already
    found = await asyncio.to_thread(_read, c.store, _logs(query["kind"]))
    items = [e for e in found if _matches(e, query)][-query["limit"]:]
    return json_response({"items": items, "count": len(items)})


def _logs(kind: str | None) -> tuple[events.Log, ...]:
    """The logs that may hold events of `kind` (None: any)."""
    if kind is None:
        return (events.Log.EVENTS, events.Log.AUDIT)
    return (events.Log.AUDIT,) if kind == AUDIT_KIND else (events.Log.EVENTS,)


def _read(store: Store, logs: tuple[events.Log, ...]) -> list[dict[str, Any]]:
    """The newest records of each log, merged by time (blocking: runs in a thread)."""
    found = [e for log in logs for e in events.recent(store, limit=MAX_EVENTS, log=log)]
    return sorted(found, key=lambda e: float(e.get("time") or 0.0))


def _matches(event: dict[str, Any], query: dict[str, Any]) -> bool:
    return ((query["vm"] is None or event.get("vm") == query["vm"])
            and (query["kind"] is None or event.get("kind") == query["kind"]))
