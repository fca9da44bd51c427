"""The coordinator election under `<root>/election` (kazoo's Election recipe, a lock whose
contenders are the coordinator nodes, each identified by `identifier(node)`, a JSON
document `{"node": <name>}`).

The primary is the first contender: the lock znode with the lowest sequence number.
`primary()` asks ZooKeeper; `primary_of()` answers from a watched copy of the election's
znodes (the API's cache). The controllers in `reconciler` run the election itself.
Blocking (run in threads), except the pure `identifier`, `contender_node`, `primary_of`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kazoo.recipe.election import Election

from store.client import Store

SEQUENCE_DIGITS = 10  # kazoo's lock znodes end in a 10-digit sequence number


def identifier(node: str) -> str:
    """What a coordinator's lock znode holds: JSON, so that watched caches can read it."""
    return json.dumps({"node": node})


def contender_node(raw: str) -> str:
    """The node name of a contender's identifier (a bare name from older daemons too)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw
    return str(doc.get("node")) if isinstance(doc, dict) else raw


def election(store: Store, node: str | None = None) -> Election:
    return store.client.Election(store.paths.election,
                                 None if node is None else identifier(node))


def contenders(store: Store) -> list[str]:
    """Coordinator node names in the order they would lead."""
    return [contender_node(str(c)) for c in store._call(election(store).contenders)]


def primary(store: Store) -> str | None:
    found = contenders(store)
    return found[0] if found else None


def primary_of(lock_znodes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The primary from the election's lock znodes (child name -> document)."""
    if not lock_znodes:
        return None
    first = min(lock_znodes, key=lambda name: name[-SEQUENCE_DIGITS:])
    node = lock_znodes[first].get("node")
    return str(node) if node is not None else None
