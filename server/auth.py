"""Bearer-token authentication: the token file, `herd-api token create`, and the middleware.

The token file holds one token hash a line (sha256 hex, optionally followed by a label;
`#` starts a comment); tokens themselves are never stored. The file is read at start-up
and again whenever its modification time changes (checked at most once a second), so a
token created while the server runs works at once.
Rules of the middleware: a request that sends `Authorization` must carry a valid bearer
token (else 401); without one, reads (GET, HEAD) pass only when `anonymous_reads` is on
(else 401), and writes never: 403 when anonymous reads are on, 401 otherwise.
Called by `server.app` (middleware) and `server.main` (token create).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from server.errors import ApiError
from server.keys import CONFIG

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="herd"'}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(token_file: Path, *, label: str = "") -> str:
    """A new random token; its hash is appended to `token_file` (created mode 0600)."""
    token = secrets.token_urlsafe(32)
    line = hash_token(token) + (f" {label}" if label else "") + "\n"
    fd = os.open(token_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line)
    return token


def read_hashes(token_file: Path) -> frozenset[str]:
    hashes = set()
    for raw in token_file.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            hashes.add(line.split()[0].lower())
    return frozenset(hashes)


class Tokens:
    """The accepted token hashes, reloaded when the file changes."""

    def __init__(self, token_file: Path | None, *, recheck_seconds: float = 1.0) -> None:
        self.token_file = token_file
        self.recheck_seconds = recheck_seconds
        self._hashes: frozenset[str] = frozenset()
        self._mtime: float | None = None
        self._checked = 0.0
        self._reload()

    def _reload(self) -> None:
        if self.token_file is None:
            return
        try:
            mtime = self.token_file.stat().st_mtime
            if mtime != self._mtime:
                self._hashes, self._mtime = read_hashes(self.token_file), mtime
        except OSError as e:
            log.error("cannot read the token file %s: %s", self.token_file, e.strerror)
            self._hashes, self._mtime = frozenset(), None

    def valid(self, token: str) -> bool:
        now = time.monotonic()
        if now - self._checked >= self.recheck_seconds:
            self._checked = now
            self._reload()
        return hash_token(token) in self._hashes


TOKENS = web.AppKey("tokens", Tokens)  # set by server.app


def _bearer(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    header = request.headers.get("Authorization")
    if header is not None:
        token = _bearer(header)
        if token is None or not request.app[TOKENS].valid(token):
            raise _unauthorized("invalid bearer token")
        return await handler(request)
    if request.method not in READ_METHODS:
        if request.app[CONFIG].anonymous_reads:
            raise ApiError(403, "forbidden", "anonymous requests may only read; send a token")
        raise _unauthorized("a bearer token is required")
    if not request.app[CONFIG].anonymous_reads:
        raise _unauthorized("a bearer token is required")
    return await handler(request)
