"""The node endpoint's key and the tickets signed with it (issue #16).

herd-node serves consoles, VNC, console logs and figures on its endpoint
(`reconciler.endpoint`); herd-api reaches them on behalf of its clients
(`server.vm_console`, `server.figures`). A client never reaches a node directly: a request
to a node carries a ticket, an HMAC-SHA256 over the method, the path, an expiry and a
nonce, signed with the node's key. Each herd-node makes a new random key at every start
and writes it to `/nodes/<name>/key` (readable with the cluster's ZooKeeper credentials
only, never served by the API); herd-api reads it from its watched cache. A ticket is good
for `TICKET_TTL` seconds and, as the node remembers the nonces it accepted, once.

The signing and checking are pure; `publish_key` and `key_of` are the only ZooKeeper
accesses (through `Store`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from store.client import Store
from store.codec import Doc
from store.errors import AlreadyExists

SCHEME = "Herd-Node"
TICKET_TTL = 60.0  # seconds: covers clock skew between API and node hosts


def key_path(store: Store, node: str) -> str:
    return f"{store.paths.node(node)}/key"


def publish_key(store: Store, node: str) -> str:
    """A fresh key for this start of `node`'s daemon (registered already), written over
    any older one: the node is the key's only writer. Returns it."""
    key = secrets.token_hex(32)
    try:
        store.create(key_path(store, node), {"key": key})
    except AlreadyExists:
        store.update(key_path(store, node), lambda _old: {"key": key})
    return key


@dataclass(frozen=True)
class NodeLink:
    """One node's endpoint (its status' `endpoint`) and key, as a cache has them now."""

    node: str
    url: str
    key: str

    def request(self, method: str, path: str, **query: str) -> tuple[str, dict[str, str]]:
        """The URL of `path` (with `query`) and the headers carrying its ticket."""
        path_qs = path + (f"?{urlencode(query)}" if query else "")
        return self.url + path_qs, {"Authorization": sign(self.key, method, path_qs)}


def link_of(node: str, status: Doc | None, key: Doc | None) -> NodeLink | None:
    """The link to `node` from its status and key documents, None if either lacks it."""
    url = (status or {}).get("endpoint")
    found = key_in(key)
    return NodeLink(node, url, found) if isinstance(url, str) and found else None


def key_in(doc: Doc | None) -> str | None:
    """The key of a `/nodes/<name>/key` document, None if absent or malformed."""
    key = None if doc is None else doc.get("key")
    return key if isinstance(key, str) and key else None


def _mac(key: str, method: str, path: str, expiry: int, nonce: str) -> str:
    msg = f"{method.upper()}\n{path}\n{expiry}\n{nonce}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def sign(key: str, method: str, path: str, *, now: float | None = None) -> str:
    """The Authorization header value for one request to `path` (no query string)."""
    expiry = int((time.time() if now is None else now) + TICKET_TTL)
    nonce = secrets.token_hex(12)
    return f"{SCHEME} {expiry}.{nonce}.{_mac(key, method, path, expiry, nonce)}"


@dataclass
class TicketCheck:
    """The node's side: checks tickets against its key, each nonce accepted once."""

    key: str
    seen: dict[str, float] = field(default_factory=dict)

    def refusal(self, header: str | None, method: str, path: str, *,
                now: float | None = None) -> str | None:
        """Why the ticket in `header` does not admit this request; None when it does."""
        now = time.time() if now is None else now
        scheme, _, ticket = (header or "").partition(" ")
        parts = ticket.split(".")
        if scheme != SCHEME or len(parts) != 3 or not parts[0].isdigit():
            return "a Herd-Node ticket is required"
        expiry, nonce, mac = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(mac, _mac(self.key, method, path, expiry, nonce)):
            return "the ticket's signature does not match"
        if not now <= expiry <= now + 2 * TICKET_TTL:
            return "the ticket has expired (or the clocks of API and node differ)"
        self.seen = {n: t for n, t in self.seen.items() if t >= now}
        if nonce in self.seen:
            return "the ticket was used already"
        self.seen[nonce] = expiry
        return None
