"""The audit trail: every write through the API (any method but GET, HEAD, OPTIONS) by an
identified caller becomes one record of `kind: audit` in the cluster's audit log
(`store.events`, `Log.AUDIT`: apart from the primary's event log, bounded on its own): the
token's name and role, the method, the route, the object, the status answered (403 refusals
included; a 401 has no identity and is not recorded).

How, without slowing writes: `audit_middleware` (between the metrics and the error
middlewares, so it sees the final status) hands the record to the `Auditor` and answers
at once; the auditor gathers records for `LINGER` (10 ms) and writes them as ONE
ZooKeeper transaction, pipelined without a thread, one batch in flight at a time (a
burst of writes costs one round trip, not one each), and trims the log every
`TRIM_EVERY` records. A batch that fails is retried with backoff
while the server runs. Nothing is dropped silently: a record that cannot be written (the
queue over `MAX_PENDING`, or still unwritten when the server stops after its last try)
is logged at ERROR with all its fields and counted (`herd_api_audit_lost_total`). What
a crash of the process loses is the batch in memory (milliseconds of writes).
Made by `server.app`; `note_object` is called by handlers whose object is not in the
path (define, apply).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from server.auth import IDENTITY, READ_METHODS, Identity
from server.keys import AUDIT_OBJECT
from store import events
from store.client import Store
from store.errors import StoreError

log = logging.getLogger(__name__)

KIND = "audit"
MAX_BATCH = 200  # records per transaction (a few hundred bytes each)
LINGER = 0.05  # seconds a batch waits for more records before it is sent
MAX_PENDING = 100_000
TRIM_EVERY = 500


class Auditor:
    """Queues audit records and writes them in batches (see the module doc)."""

    def __init__(self, store: Store, *, retry_cap: float = 5.0,
                 linger: float = LINGER) -> None:
        self.store = store
        self.retry_cap = retry_cap
        self.linger = linger
        self.written = 0
        self.lost = 0
        self._pending: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, doc: dict[str, Any]) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._lose([doc], "the audit queue is full")
            return
        self._pending.append(doc)
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Return once every record queued so far is written (or reported lost)."""
        await self._idle.wait()

    async def stop(self, *, timeout: float = 5.0) -> None:
        """Write what is queued (one last try each), then stop; report the rest lost."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self.drain(), timeout)
        except TimeoutError:
            pass
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._lose(self._pending, "the server stopped before it was written")
        self._pending = []

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.linger)  # let the writes of the next moments join
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                await self._write(batch)
                del self._pending[:len(batch)]
            self._idle.set()

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        delay = 0.1
        while True:
            try:
                await self._send(batch)
            except StoreError as e:
                if self._stopping:
                    self._lose(batch, f"ZooKeeper refused it: {e}")
                    return
                log.warning("audit records not written yet (%s); retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_cap)
                continue
            before, self.written = self.written, self.written + len(batch)
            if before // TRIM_EVERY != self.written // TRIM_EVERY:
                await self._trim()
            return

    async def _send(self, batch: list[dict[str, Any]]) -> None:
        """One transaction, pipelined on the connection (no thread held while it flies)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[StoreError | None] = loop.create_future()

        def done(error: StoreError | None) -> None:
            loop.call_soon_threadsafe(_settle, answer, error)

        events.record_many_async(self.store, batch, done)
        error = await answer
        if error is not None:
            raise error

    async def _trim(self) -> None:
        try:
            await asyncio.to_thread(events.trim, self.store, log=events.Log.AUDIT)
        except StoreError as e:
            log.warning("the audit log was not trimmed: %s", e)

    def _lose(self, docs: list[dict[str, Any]], why: str) -> None:
        for doc in docs:
            self.lost += 1
            log.error("audit record LOST (%s): %s", why, json.dumps(doc, sort_keys=True))


def _settle(future: asyncio.Future[StoreError | None], error: StoreError | None) -> None:
    if not future.done():
        future.set_result(error)


AUDITOR = web.AppKey("auditor", Auditor)  # set by server.app's cleanup context


def note_object(request: web.Request, text: str) -> None:
    """Name the object of a write whose path does not (`vm/web1` for a define; the
    objects of an apply, space-separated)."""
    request[AUDIT_OBJECT] = text


def _object(request: web.Request) -> tuple[str | None, dict[str, str]]:
    """The object's text, and `vm`/`node` fields that `GET /event?vm=` filters on."""
    about = {part: request.match_info[part] for part in ("vm", "node")
             if part in request.match_info}
    noted = request.get(AUDIT_OBJECT)
    if noted is not None:
        kind, _, name = noted.partition("/")
        if kind in ("vm", "node") and " " not in name:
            about.setdefault(kind, name)
        return noted, about
    for part, kind in (("vm", "vm"), ("node", "node"), ("token", "token"), ("net", "network"),
                       ("pool", "pool"), ("rule", "rule")):
        if part in request.match_info:
            return f"{kind}/{request.match_info[part]}", about
    return None, about


def audit_record(request: web.Request, identity: Identity, status: int) -> dict[str, Any]:
    """The event of one write (the fields `herdctl events --audit` shows)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    obj, about = _object(request)
    what = f" {obj}" if obj else ""
    return {"time": time.time(), "kind": KIND,
            "message": f"{request.method} {route}{what} by {identity.name} "
                       f"({identity.role.value}): {status}",
            "token": identity.name, "role": identity.role.value, "method": request.method,
            "route": route, "object": obj, "status": status, **about}


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in READ_METHODS:
        return await handler(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        identity = request.get(IDENTITY)
        if identity is not None and AUDITOR in request.app:
            request.app[AUDITOR].record(audit_record(request, identity, status))
