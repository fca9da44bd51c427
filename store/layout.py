"""The cluster layout: its version znode, the top-level znodes, and the cluster defaults.

`ensure_layout` is called by every daemon and API server at start-up: it creates what is
missing (idempotently, racing other starters safely) and refuses a layout newer than this
program knows (`LayoutTooNew`), so an old daemon never writes into a newer cluster.
"""

from __future__ import annotations

from store.client import Store
from store.codec import Doc
from store.errors import AlreadyExists, CorruptDocument, LayoutTooNew

LAYOUT_VERSION = 1

DEFAULT_CONFIG: Doc = {
    "selector": "mem",
    "shutdownTimeout": 180,
    "fenceTimeout": 8.0,
    "selfFenceTimeout": 60.0,
    "maintenance": False,
    "shutdownPolicy": "migrate",
}


def layout_version(store: Store) -> int | None:
    """The version in `<root>/schema`, or None when the cluster has none yet."""
    if store.exists(store.paths.schema) is None:
        return None
    version = store.get(store.paths.schema).doc.get("version")
    if not isinstance(version, int):
        raise CorruptDocument(f"{store.paths.schema}: no integer 'version'")
    return version


def check_layout(store: Store, *, known: int = LAYOUT_VERSION) -> int | None:
    version = layout_version(store)
    if version is not None and version > known:
        raise LayoutTooNew(
            f"the cluster at {store.paths.root} has layout version {version}; this Herd knows "
            f"up to {known}: upgrade Herd before running it against this cluster"
        )
    return version


def ensure_layout(store: Store, *, known: int = LAYOUT_VERSION) -> int:
    """Create the root, its top-level znodes and defaults where missing; return the version."""
    check_layout(store, known=known)
    p = store.paths
    for path in (p.vms, p.nodes, p.election, p.events, p.audit, p.tokens, p.macs,
                 p.volumes, p.rules):
        store.ensure(path)
    store.ensure(p.config, dict(DEFAULT_CONFIG))
    store.ensure(p.networks, {"writes": 0})  # network writes check its version
    store.ensure(p.pools, {"writes": 0})  # pool writes check its version
    try:
        store.create(p.schema, {"version": known})
    except AlreadyExists:
        pass
    return check_layout(store, known=known) or known
