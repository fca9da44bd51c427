"""The coordinator election under `<root>/election` (kazoo's Election recipe, a lock whose
contenders are the coordinator nodes, identified by node name).

The primary is the first contender. `primary()` answers who it is for the API
(`GET /status`, node lists); the controllers in `reconciler` run the election itself.
Blocking (run in threads).
"""

from __future__ import annotations

from kazoo.recipe.election import Election

from store.client import Store


def election(store: Store, node: str | None = None) -> Election:
    return store.client.Election(store.paths.election, node)


def contenders(store: Store) -> list[str]:
    """Coordinator node names in the order they would lead."""
    return [str(c) for c in store._call(election(store).contenders)]


def primary(store: Store) -> str | None:
    found = contenders(store)
    return found[0] if found else None
