"""Authentication and authorization: who a request is (`Identity`) and whether its role
may use the route. Called by `server.app` (the middleware), `server.main` (token create),
`server.audit` (the identity of a write) and handlers that need the role (`role_of`).

Where tokens come from:
- ZooKeeper (`<root>/tokens`, `server.tokens.TokenRegistry`): the managed tokens, made
  and revoked through the API (`herdctl token ...`), each with a role, shared by every
  herd-api and watched (a revoked token is refused as soon as the watch reports it);
- the token file (`token_file`): the break-glass source, one sha256 hex hash a line,
  optionally followed by a label (`#` starts a comment), made by `herd-api token create`.
  Every token of the file is an `admin`: the first admin token comes from here, and it
  still works when the managed tokens are lost. The file is read at start-up and again
  whenever its modification time changes (checked at most once a second).
Tokens themselves are never stored, only their sha256.

A browser's WebSocket cannot send `Authorization`: the web console offers its token as a
subprotocol `base64url.bearer.herd.<token, base64url>` beside `herd.v1` (Kubernetes' way),
and the middleware reads it from there. The web console's own files (`/ui/...`: the page,
its scripts, no data) are served to anyone.

Rules of the middleware: a request that sends `Authorization` must carry a valid bearer
token (else 401); without one, reads (GET, HEAD) pass as a `viewer` only when
`anonymous_reads` is on (else 401), and writes never: 403 when anonymous reads are on,
401 otherwise. Then the route's role (`server.routes.ROLES`) decides: a lower role gets
403 naming the role needed. An unknown route needs no more than `viewer` (it answers 404).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from server.errors import ApiError
from server.keys import CONFIG
from server.tokens import REGISTRY
from store.tokens import hash_secret, new_secret
from vocabulary import Role

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_TOKEN_PREFIX = "base64url.bearer.herd."
WS_PROTOCOL = "herd.v1"  # the subprotocol Herd's WebSockets answer with
UI_PREFIX = "/ui"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="herd"'}


@dataclass(frozen=True)
class Identity:
    """Who sent a request: the token's name and role, and where the token came from."""

    name: str
    role: Role
    source: str  # "zookeeper", "file" or "anonymous"


ANONYMOUS = Identity("anonymous", Role.VIEWER, "anonymous")
IDENTITY = web.RequestKey("herd_identity", Identity)  # set by the middleware


def hash_token(token: str) -> str:
    return hash_secret(token)


def create_token(token_file: Path, *, label: str = "") -> str:
    """A new random (admin) token; its hash is appended to `token_file` (created 0600)."""
    token = new_secret()
    line = hash_token(token) + (f" {label}" if label else "") + "\n"
    fd = os.open(token_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line)
    return token


def read_entries(token_file: Path) -> dict[str, str]:
    """hash -> label (empty when none) of every line of the file."""
    entries: dict[str, str] = {}
    for raw in token_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            token_hash, _, label = line.partition(" ")
            entries[token_hash.lower()] = label.strip()
    return entries


def read_hashes(token_file: Path) -> frozenset[str]:
    return frozenset(read_entries(token_file))


class Tokens:
    """The break-glass tokens of the file (all `admin`), reloaded when the file changes."""

    def __init__(self, token_file: Path | None, *, recheck_seconds: float = 1.0) -> None:
        self.token_file = token_file
        self.recheck_seconds = recheck_seconds
        self._entries: dict[str, str] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._reload()

    def _reload(self) -> None:
        if self.token_file is None:
            return
        try:
            mtime = self.token_file.stat().st_mtime
            if mtime != self._mtime:
                self._entries, self._mtime = read_entries(self.token_file), mtime
        except OSError as e:
            log.error("cannot read the token file %s: %s", self.token_file, e.strerror)
            self._entries, self._mtime = {}, None

    def identity(self, token_hash: str) -> Identity | None:
        now = time.monotonic()
        if now - self._checked >= self.recheck_seconds:
            self._checked = now
            self._reload()
        label = self._entries.get(token_hash)
        if label is None:
            return None
        return Identity(f"file:{label or token_hash[:12]}", Role.ADMIN, "file")

    def valid(self, token: str) -> bool:
        return self.identity(hash_token(token)) is not None


TOKENS = web.AppKey("tokens", Tokens)  # set by server.app
ROUTE_ROLES = web.AppKey("route_roles", Mapping[tuple[str, str], Role])  # set by server.app


def _bearer(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


def _websocket_token(request: web.Request) -> str | None:
    """`Bearer <token>` from a browser WebSocket's subprotocols, None when none names one."""
    for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        offered = offered.strip()
        if offered.startswith(WS_TOKEN_PREFIX):
            raw = offered[len(WS_TOKEN_PREFIX):]
            try:
                token = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return "Bearer "  # malformed: refused as an invalid token
            return f"Bearer {token}"
    return None


def _identify(request: web.Request) -> Identity:
    """The request's identity, or the 401/403 of the rules above."""
    header = request.headers.get("Authorization") or _websocket_token(request)
    anonymous_reads = request.app[CONFIG].anonymous_reads
    if header is None:
        if request.method not in READ_METHODS:
            if anonymous_reads:
                raise ApiError(403, "forbidden", "anonymous requests may only read; send a token")
            raise _unauthorized("a bearer token is required")
        if not anonymous_reads:
            raise _unauthorized("a bearer token is required")
        return ANONYMOUS
    token = _bearer(header)
    if token is None:
        raise _unauthorized("invalid bearer token")
    token_hash = hash_token(token)
    found = request.app[TOKENS].identity(token_hash)
    if found is None and REGISTRY in request.app:
        managed = request.app[REGISTRY].identity(token_hash)
        if managed is not None:
            found = Identity(*managed, source="zookeeper")
    if found is None:
        raise _unauthorized("invalid bearer token")
    return found


def needed_role(request: web.Request) -> Role:
    """The least role the matched route needs (`server.routes.ROLES`)."""
    route = request.match_info.route
    resource = route.resource
    if resource is None or request.match_info.http_exception is not None:
        return Role.VIEWER  # no such route: it answers 404 or 405 to anyone who may read
    return request.app[ROUTE_ROLES].get((route.method, resource.canonical), Role.ADMIN)


def role_of(request: web.Request) -> Role:
    """The role of the request's token (after the auth middleware); `viewer` if unknown."""
    identity = request.get(IDENTITY)
    return identity.role if isinstance(identity, Identity) else Role.VIEWER


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == UI_PREFIX or request.path.startswith(UI_PREFIX + "/"):
        return await handler(request)  # the web console's files: no data
    identity = _identify(request)
    request[IDENTITY] = identity
    needed = needed_role(request)
    if not identity.role.allows(needed):
        raise _forbidden(request, identity, needed)
    return await handler(request)


def _forbidden(request: web.Request, identity: Identity, needed: Role) -> ApiError:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    who = "anonymous requests are viewers" if identity is ANONYMOUS else \
        f"token {identity.name!r} has the role {identity.role.value}"
    return ApiError(403, "forbidden",
                    f"{request.method} {route} needs the role {needed.value} or higher; {who}",
                    details={"needed": needed.value, "role": identity.role.value})
