"""Networks in ZooKeeper (issue #14): `<root>/networks/<name>` holds a Network's document
(spec with its reservations and firewall rules; metadata by `store.objects`' rules), and
`<root>/networks/<name>/leases/<mac>` what the gateway's dnsmasq handed out (written by
the primary that runs it, read by the next primary and the API), and
`<root>/networks/<name>/gateway` which node holds the network's gateway (`take_gateway`,
`release_gateway`: one holder at a time, see `reconciler.network.gateways`).

Every write of a network's document is serialized through the parent znode: the writer
reads all networks (`read_all`, with the parent's version), checks its change against
them (unique VNI, VLAN and bridge; no overlapping subnets: `schemas.network`), and
commits its change together with a version-checked set of `<root>/networks`
(`commit_change`). A concurrent write of any other network fails that check with
`Conflict`, and the caller reads and checks again. Network writes are rare: this is what
makes the cross-network rules hold under concurrency. Leases are written apart, by one
writer at a time (the primary), without that serialization.

Blocking (callers run these in threads). Used by `server.network` and the node daemon's
gateway (`reconciler.network`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from store import txn
from store.client import Store
from store.codec import Doc
from store.errors import NotFound
from store.siblings import Siblings, commit_with, read_siblings

NetworkSet = Siblings  # every network as read, with the parent's version


def read_all(store: Store) -> NetworkSet:
    return read_siblings(store, store.paths.networks)


def commit_change(store: Store, seen: NetworkSet, ops: Sequence[txn.Op]) -> txn.CommitResult:
    """`ops` in ONE transaction with the parent's version check (see the module doc).
    Raises `Conflict` when any network was written since `seen` was read."""
    return commit_with(store, seen, ops)


def create_ops(store: Store, name: str, doc: Doc) -> list[txn.Op]:
    return [txn.Create(store.paths.network(name), doc),
            txn.Create(store.paths.network_leases(name), {})]


def replace_ops(store: Store, name: str, doc: Doc, *, version: int) -> list[txn.Op]:
    return [txn.Set(store.paths.network(name), doc, version=version)]


def delete_ops(store: Store, name: str) -> list[txn.Op]:
    """Deletes of the network and its leases, deepest first (each version-checked)."""
    return txn.delete_subtree_ops(txn.read_subtree(store, store.paths.network(name)))


# --- leases ------------------------------------------------------------------------------


def lease_doc(*, mac: str, ip: str, hostname: str | None, expiry: float) -> Doc:
    return {"mac": mac, "ip": ip, "hostname": hostname, "expiry": expiry}


def put_lease(store: Store, network: str, doc: Doc) -> None:
    """Record (or renew) the lease of `doc['mac']`; a network gone meanwhile is ignored."""
    path = store.paths.network_lease(network, str(doc["mac"]))
    try:
        store.update(path, lambda _old: doc)
    except NotFound:
        try:
            store.create(path, doc)
        except NotFound:
            pass  # the network was deleted: its leases went with it


def drop_lease(store: Store, network: str, mac: str) -> None:
    try:
        store.delete(store.paths.network_lease(network, mac))
    except NotFound:
        pass


def leases(store: Store, network: str) -> list[Doc]:
    """The network's leases, by MAC (raises `NotFound` when the network does not exist)."""
    folder = store.paths.network_leases(network)
    names = store.children(folder)
    found = store.get_many(f"{folder}/{n}" for n in names)
    return [found[path].doc for path in sorted(found)]


# --- the gateway's holder ----------------------------------------------------------------


def take_gateway(store: Store, network: str, node: str) -> None:
    """Become the gateway's holder (raises `AlreadyExists` while another holds it, and
    `NotFound` when the network is gone)."""
    store.create(store.paths.network_gateway(network), {"node": node, "since": time.time()})


def release_gateway(store: Store, network: str, *, version: int) -> None:
    """Give the gateway up (the caller read its own hold at `version`: a version check,
    so a newer holder's is never removed). Absent already: nothing to do."""
    try:
        store.delete(store.paths.network_gateway(network), version=version)
    except NotFound:
        pass
