"""JSON codec of the documents kept in znodes: one JSON object per znode.

Called by `store.client` and `store.informer` for every read and write.
"""

from __future__ import annotations

import json
from typing import Any

from store.errors import CorruptDocument, TooLarge

Doc = dict[str, Any]

# ZooKeeper refuses packets over jute.maxbuffer (1 MiB by default); keep each document
# well below it so that a transaction of a few documents still fits.
MAX_DOC_BYTES = 1_000_000

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(doc: Doc) -> bytes:
    """Compact UTF-8 JSON of a document; refuses one over MAX_DOC_BYTES."""
    data = _encoder.encode(doc).encode()
    if len(data) > MAX_DOC_BYTES:
        raise TooLarge(f"document is {len(data)} bytes, over the {MAX_DOC_BYTES}-byte limit")
    return data


def decode(data: bytes | None, *, path: str = "") -> Doc:
    """Parse a znode's bytes; an empty znode is an empty document."""
    if not data:
        return {}
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptDocument(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise CorruptDocument(f"{path}: not a JSON object")
    return doc
