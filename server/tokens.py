"""Managed API tokens: the registry every herd-api keeps of `<root>/tokens` (one watched
informer, an index by hash), and the routes `POST /token` (the secret is in that answer
and nowhere else, ever), `GET /token` (names, roles, created, last used: never a hash)
and `DELETE /token/{token}` (revoke). The routes are admin-only (`server.routes.ROLES`).

A write returns once this server's registry shows it: a new token works at once here, a
revoked one is refused at once here, and on every other herd-api as soon as its watch
reports the deletion (no cache beyond the watch). While the registry is not in sync a
token it does not know is answered 503, not 401 (it may exist). A use is written to the
token's `lastUsed` at most once a minute per server, in the background
(`store.tokens.touch`). Made by `server.app`; read by `server.auth`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web
from marshmallow import Schema, fields

from schemas.names import Name
from schemas.tokens import TokenCreateRequest
from server.errors import conflict, not_found
from server.http import json_response, load_body, path_name
from server.keys import AUDIT_OBJECT, STORE
from store import tokens
from store.client import Store
from store.errors import AlreadyExists, CorruptDocument, NotFound, StoreError, Unavailable
from store.informer import Informer
from vocabulary import Role

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 10.0


class TokenRegistry:
    """The managed tokens of the cluster, by hash, kept current by one watch."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.informer = Informer(store, store.paths.tokens)
        self._by_hash: dict[str, tokens.TokenRecord] = {}
        self._by_name: dict[str, tokens.TokenRecord] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.informer.subscribe(lambda _change: self._rebuild())
        self.informer.on_synced(self._rebuild)
        await asyncio.to_thread(self.informer.start)
        self._rebuild()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.informer.stop)

    def _rebuild(self) -> None:
        """A new index from the informer (called on kazoo's thread or the loop)."""
        by_name: dict[str, tokens.TokenRecord] = {}
        for path, versioned in self.informer.items():
            if path == self.informer.prefix:
                continue
            try:
                record = tokens.parse(versioned.doc)
            except CorruptDocument as e:
                log.error("%s: not a token this server can use: %s", path, e)
                continue
            by_name[record.name] = record
        self._by_name = by_name
        self._by_hash = {r.hash: r for r in by_name.values()}
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def settled(self, done: Callable[[], bool], *, timeout: float = SETTLE_TIMEOUT) -> bool:
        """Wait until `done()` holds after a change of the index (False after `timeout`)."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return done()
        return True

    def records(self) -> list[tokens.TokenRecord]:
        return sorted(self._by_name.values(), key=lambda r: r.name)

    def named(self, name: str) -> tokens.TokenRecord | None:
        return self._by_name.get(name)

    def identity(self, token_hash: str) -> tuple[str, Role] | None:
        """(name, role) of the token with this hash; 503 while out of sync and unknown."""
        record = self._by_hash.get(token_hash)
        if record is None:
            if not self.informer.wait_synced(0):
                raise Unavailable("the token registry is not in sync with ZooKeeper")
            return None
        self._used(record)
        return record.name, record.role

    def _used(self, record: tokens.TokenRecord) -> None:
        now = time.time()
        last = max(self._touched.get(record.name, 0.0), record.last_used or 0.0)
        if now - last < tokens.TOUCH_EVERY or self._loop is None:
            return
        self._touched[record.name] = now
        task = self._loop.create_task(self._touch(record.name, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(self, name: str, now: float) -> None:
        try:
            await asyncio.to_thread(tokens.touch, self.store, name, now=now)
        except (StoreError, ValueError) as e:  # revoked meanwhile, or ZooKeeper away
            log.debug("lastUsed of token %s not written: %s", name, e)


REGISTRY = web.AppKey("token_registry", TokenRegistry)  # set by server.app
_CREATE = TokenCreateRequest()


class TokenView(Schema):
    """A token as listed: never its secret nor its hash."""

    name = Name(required=True)
    role = fields.String(required=True)
    created = fields.Float(required=True)
    lastUsed = fields.Float(required=True, allow_none=True)


class TokenList(Schema):
    items = fields.List(fields.Nested(TokenView), required=True)
    count = fields.Integer(required=True)


class TokenCreated(TokenView):
    """The answer of `POST /token`: the only time the secret is shown."""

    secret = fields.String(required=True)


class TokenRevoked(Schema):
    name = Name(required=True)
    revoked = fields.Boolean(required=True)


async def create_token(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    data = await load_body(request, _CREATE)
    name, role = data["name"], Role(data["role"])
    request[AUDIT_OBJECT] = f"token/{name}"
    secret = tokens.new_secret()
    try:
        doc = await asyncio.to_thread(tokens.create, request.app[STORE], name, role,
                                      tokens.hash_secret(secret), now=time.time())
    except AlreadyExists:
        raise conflict(f"token {name!r} exists already; revoke it first") from None
    await registry.settled(lambda: registry.named(name) is not None)
    return json_response({**tokens.parse(doc).view(), "secret": secret}, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    items = [r.view() for r in request.app[REGISTRY].records()]
    return json_response({"items": items, "count": len(items)})


async def revoke_token(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    name = path_name(request, "token")
    try:
        await asyncio.to_thread(tokens.revoke, request.app[STORE], name)
    except NotFound:
        raise not_found("token", name) from None
    await registry.settled(lambda: registry.named(name) is None)
    return json_response({"name": name, "revoked": True})
