"""The HTTP client of herdctl: JSON calls to `herd-api` (prefix `/api/v1`) over urllib.

`Client.call` sends one request with the bearer token and answers the parsed JSON body;
an error answer raises `ApiError` with the server's `{"error": {code, message, details}}`,
a server that cannot be reached (or does not answer in time) raises `Unreachable`.
`Client.watch` follows `GET /watch` (newline-delimited JSON) and yields its events;
`Client.upload` and `Client.download` move raw bytes (a volume's data) in chunks.
urllib rather than aiohttp: herdctl is a short-lived, single-threaded process and the
standard library starts faster. Called by the command modules, `ctl.progress`,
`ctl.dev.cluster` and `ctl.demo`.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from http.client import HTTPException, HTTPResponse
from typing import Any

PREFIX = "/api/v1"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class ApiError(Exception):
    """The server answered an error (status >= 400) in its one error shape."""

    def __init__(self, status: int, code: str, *, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}


class Unreachable(Exception):
    """No answer: connection refused, name unknown, or the time limit passed."""


def _query(params: Mapping[str, Any]) -> str:
    kept = {k: ("true" if v is True else "false" if v is False else str(v))
            for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(kept) if kept else ""


def _error_of(e: urllib.error.HTTPError) -> ApiError:
    raw = e.read()
    try:
        body = json.loads(raw)
        err = body["error"]
        return ApiError(e.code, str(err["code"]), message=str(err["message"]),
                        details=err.get("details"))
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace").strip()[:200]
        return ApiError(e.code, f"http_{e.code}", message=f"HTTP {e.code} {e.reason}"
                        + (f": {text}" if text else ""))


def base_url(url: str) -> str:
    """The server's root URL: `http://host:port`, without a trailing `/api/v1` or slash."""
    url = url.rstrip("/")
    if url.endswith(PREFIX):
        url = url[: -len(PREFIX)]
    if "://" not in url:
        url = "http://" + url
    return url


class Client:
    """One API server: its URL, the token (None: anonymous) and the default time limit."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = base_url(url)
        self.token = token or None
        self.timeout = timeout
        host = urllib.parse.urlsplit(self.url).hostname or ""
        # A loopback server is never reached through a proxy from the environment.
        handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    def _request(self, method: str, path: str, *, body: Any, query: Mapping[str, Any],
                 timeout: float | None, raw: Iterable[bytes] | None = None,
                 length: int = 0) -> HTTPResponse:
        data: bytes | Iterable[bytes] | None = None if body is None else json.dumps(
            body).encode()
        req = urllib.request.Request(self.url + PREFIX + path + _query(query),
                                     data=data if raw is None else raw, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if raw is not None:  # sent as it comes, never held whole
            req.add_header("Content-Type", "application/octet-stream")
            req.add_header("Content-Length", str(length))
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        limit = self.timeout if timeout is None else timeout
        try:
            resp: HTTPResponse = self._opener.open(req, timeout=limit)
        except urllib.error.HTTPError as e:
            raise _error_of(e) from None
        except (urllib.error.URLError, OSError, HTTPException) as e:
            raise self._unreachable(e, limit) from None
        return resp

    def _unreachable(self, e: BaseException, limit: float) -> Unreachable:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError | socket.timeout):
            return Unreachable(f"the API at {self.url} did not answer within {limit:g} s")
        return Unreachable(f"cannot reach the API at {self.url}: {reason}")

    def call(self, method: str, path: str, *, body: Any = None,
             query: Mapping[str, Any] | None = None, timeout: float | None = None) -> Any:
        """One request; the parsed JSON answer (None for an empty body)."""
        resp = self._request(method, path, body=body, query=query or {}, timeout=timeout)
        limit = self.timeout if timeout is None else timeout
        try:
            with resp:
                raw = resp.read()
        except (OSError, HTTPException) as e:
            raise self._unreachable(e, limit) from None
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        return self.call("POST", path, body=body, timeout=timeout)

    def upload(self, path: str, chunks: Iterable[bytes], *, length: int) -> Any:
        """PUT `length` bytes, given as `chunks`, to `path`; the parsed JSON answer."""
        resp = self._request("PUT", path, body=None, query={}, timeout=None, raw=chunks,
                             length=length)
        try:
            with resp:
                raw = resp.read()
        except (OSError, HTTPException) as e:
            raise self._unreachable(e, self.timeout) from None
        return json.loads(raw) if raw.strip() else None

    def download(self, path: str, *, chunk: int) -> tuple[int | None, Iterator[bytes]]:
        """GET `path` as bytes: its Content-Length (None when not given) and its chunks
        of at most `chunk` bytes; a body cut short raises `Unreachable`."""
        resp = self._request("GET", path, body=None, query={}, timeout=None)
        size = resp.headers.get("Content-Length")
        return (int(size) if size else None), self._chunks(resp, chunk)

    def _chunks(self, resp: HTTPResponse, chunk: int) -> Iterator[bytes]:
        try:
            with resp:
                while data := resp.read(chunk):
                    yield data
        except (OSError, HTTPException) as e:
            raise self._unreachable(e, self.timeout) from None

    def watch(self, *, timeout: float, **query: Any) -> Iterator[dict[str, Any]]:
        """The events of `GET /watch` (filters: kind, name, resourceVersion) until the
        server ends the stream after `timeout` seconds. The request is sent (and the server
        follows changes) before this returns, not at the first iteration."""
        resp = self._request("GET", "/watch", body=None, query={**query, "timeout": timeout},
                             timeout=timeout + 10)
        return self._events(resp, timeout + 10)

    def _events(self, resp: HTTPResponse, limit: float) -> Iterator[dict[str, Any]]:
        try:
            with resp:
                for line in resp:
                    if line.strip():
                        yield json.loads(line)
        except (OSError, HTTPException) as e:
            raise self._unreachable(e, limit) from None
