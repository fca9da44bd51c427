"""API tokens in ZooKeeper: the one builder and reader of the token documents
(`<root>/tokens/<name>`), shared by every herd-api.

A document holds the token's name, role, the sha256 of its secret (never the secret),
when it was made and when it was last used (written at most once a `TOUCH_EVERY` per
token and server, version-checked), and its format version `v`: a reader refuses a
document of a newer format (`CorruptDocument`), so an old herd-api never guesses.
Blocking (run in threads). Called by `server.tokens` (the registry and the handlers).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass

from store.client import Store
from store.codec import Doc
from store.errors import CorruptDocument
from vocabulary import Role

FORMAT = 1
TOUCH_EVERY = 60.0  # seconds between two writes of one token's lastUsed by one server


def hash_secret(secret: str) -> str:
    """The sha256 (hex) a token is stored as and looked up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenRecord:
    """One stored token, as read back (no secret: only its hash)."""

    name: str
    role: Role
    hash: str
    created: float
    last_used: float | None

    def view(self) -> Doc:
        """What the API shows of it: never the hash."""
        return {"name": self.name, "role": self.role.value, "created": self.created,
                "lastUsed": self.last_used}


def build(name: str, role: Role, token_hash: str, *, created: float) -> Doc:
    if len(token_hash) != 64 or any(c not in "0123456789abcdef" for c in token_hash):
        raise ValueError("a token is stored as its sha256 in lower-case hex, nothing else")
    return {"v": FORMAT, "name": name, "role": Role(role).value, "hash": token_hash,
            "created": created, "lastUsed": None}


def _number(doc: Doc, key: str, *, optional: bool = False) -> float | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CorruptDocument(f"token {doc.get('name')!r}: {key} is not a number")
    return float(value)


def parse(doc: Doc) -> TokenRecord:
    """A stored document as a `TokenRecord`; `CorruptDocument` if it is not one."""
    if doc.get("v") != FORMAT:
        raise CorruptDocument(f"token {doc.get('name')!r}: format {doc.get('v')!r}, this Herd "
                              f"reads {FORMAT}")
    name, token_hash, role = doc.get("name"), doc.get("hash"), doc.get("role")
    if not isinstance(name, str) or not isinstance(token_hash, str):
        raise CorruptDocument("a token document needs a name and a hash")
    try:
        known = Role(str(role))
    except ValueError:
        raise CorruptDocument(f"token {name!r}: unknown role {role!r}") from None
    created = _number(doc, "created")
    assert created is not None
    return TokenRecord(name, known, token_hash, created, _number(doc, "lastUsed", optional=True))


def create(store: Store, name: str, role: Role, token_hash: str, *, now: float) -> Doc:
    """Store a new token (`AlreadyExists` if the name is taken); returns its document."""
    doc = build(name, role, token_hash, created=now)
    store.create(store.paths.token(name), doc)
    return doc


def revoke(store: Store, name: str) -> None:
    """Delete the token (`NotFound` if there is none): refused at once by every server."""
    store.delete(store.paths.token(name))


def touch(store: Store, name: str, *, now: float) -> None:
    """Record a use (version-checked read-modify-write; a newer time is kept)."""

    def used(doc: Doc) -> Doc:
        parse(doc)
        last = doc.get("lastUsed")
        return doc if isinstance(last, int | float) and last >= now else {**doc, "lastUsed": now}

    store.update(store.paths.token(name), used)
