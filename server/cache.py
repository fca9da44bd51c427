"""The API server's watched cache: eight informers (`/vms`, `/nodes`, `/networks`,
`/pools`, `/volumes` and `/rules` (`server.docobjects`), `/config`, `/election`) and what
the server keeps beside them, all updated on the loop.

Informer callbacks run on kazoo's thread; they only queue the change and schedule ONE
drain on the loop (`call_soon_threadsafe`). A drain then, in order:
- keeps the name indexes (VMs, nodes, networks; single lookups go straight to the
  informers' dicts, O(1) by path);
- drops the cached list entry (`GET /vm` JSON fragment) of every VM it touched;
- turns the changes into watch events (`server.events`), one per object and run of
  changes (a new VM's ADDED waits until its placement and status are cached), and
  publishes them once the initial sync is over;
- follows the primary (the first contender of the election, `store.election.primary_of`):
  node objects say whether they are it, and a change of primary is a MODIFIED event of
  the old and the new primary's Node;
- re-checks the waiters of every object it touched (`wait_for`, `server.waiters`):
  `wait=true` requests and the read-your-writes settle after each write follow the
  watch, never a poll.
Reads answer 503 while an informer is not in sync (suspended or lost session, resync).
Created by `server.app`'s cleanup context; used by every handler.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from server.docobjects import DocObjects
from server.events import Event, EventHub
from server.macindex import MacIndex
from server.views import doc_object, node_object, vm_object
from server.waiters import Key, Waiters
from store.client import Store, Versioned
from store.election import primary_of
from store.errors import Unavailable
from store.informer import Change, Informer
from store.model import VM, Node, read_node, read_vm

log = logging.getLogger(__name__)

T = TypeVar("T")
_SKIP = {"ADDED": ("ADDED", "MODIFIED"), "MODIFIED": ("MODIFIED",)}
# top-level znode -> kind
_KINDS = {"vms": "VM", "nodes": "Node", "networks": "Network", "pools": "Pool",
          "volumes": "Volume", "rules": "Rule"}


class ClusterCache:
    """Informers plus indexes, list fragments, watch events and waiters (see module doc)."""

    def __init__(self, store: Store, *, history: int) -> None:
        p = store.paths
        self.store = store
        self.vms = Informer(store, p.vms)
        self.nodes = Informer(store, p.nodes)
        self.docs = DocObjects(store, {"Network": p.networks, "Pool": p.pools,
                                       "Volume": p.volumes, "Rule": p.rules})
        self.config = Informer(store, p.config)
        self.election = Informer(store, p.election)
        self.primary: str | None = None
        self.hub = EventHub(history)
        self.watermark = 0
        self._names: dict[str, dict[str, None]] = {kind: {} for kind in _KINDS.values()}
        self._sorted: list[str] | None = None
        self._fragments: dict[str, bytes] = {}
        self.waiters = Waiters()
        self.macs = MacIndex()  # every NIC's MAC in the cluster, by VM
        self._pending: deque[Change] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._incomplete: set[str] = set()  # VMs whose ADDED waits for their children

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Sync every informer (in a thread), then follow changes as events."""
        self._loop = asyncio.get_running_loop()
        for informer in self._informers:
            self._unsubscribe.append(informer.subscribe(self._on_change))
            informer.on_synced(self._on_synced)
        await asyncio.to_thread(self._start_informers)
        self._drain()
        self.hub.go_live(self.watermark)

    @property
    def _informers(self) -> tuple[Informer, ...]:
        return (self.vms, self.nodes, *self.docs.informers.values(), self.config,
                self.election)

    def _start_informers(self) -> None:
        for informer in (self.config, self.election, self.nodes,
                         *self.docs.informers.values(), self.vms):
            informer.start()

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.close()
        await asyncio.to_thread(self._stop_informers)

    def _stop_informers(self) -> None:
        for informer in self._informers:
            informer.stop()

    def close(self) -> None:
        """End every watch stream and fail every waiter (the server is shutting down)."""
        self.hub.close_all()
        self.waiters.fail_all()

    # --- reads -------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return all(i.wait_synced(0) for i in self._informers)

    def require_synced(self) -> None:
        if not self.synced:
            raise Unavailable("the API server's cache is not in sync with ZooKeeper")

    def vm(self, name: str) -> VM | None:
        vm = read_vm(name, self.vms.get, self.store.paths)
        return vm if vm.exists else None

    def vm_names(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self._names["VM"])
        return self._sorted

    def all_vms(self) -> Iterator[VM]:
        for name in self.vm_names():
            rec = self.vm(name)
            if rec is not None:
                yield rec

    def vm_fragment(self, rec: VM) -> bytes:
        """The JSON of a list entry (no XML), encoded once per change of the VM."""
        fragment = self._fragments.get(rec.name)
        if fragment is None:
            fragment = json.dumps(vm_object(rec, xml=False), separators=(",", ":")).encode()
            self._fragments[rec.name] = fragment
        return fragment

    def node(self, name: str) -> Node | None:
        node = read_node(name, self.nodes.get, self.store.paths)
        return node if node.exists else None

    def has_node(self, name: str) -> bool:
        return self.nodes.get(self.store.paths.node(name)) is not None

    def node_names(self) -> list[str]:
        return sorted(self._names["Node"])

    def network(self, name: str) -> Versioned | None:
        """A network's stored document (spec with reservations and rules)."""
        return self.docs.get("Network", name)

    def network_names(self) -> list[str]:
        return self.docs.names("Network")

    def all_nodes(self) -> list[Node]:
        return [n for n in (self.node(name) for name in self.node_names()) if n is not None]

    def setting(self, key: str, default: Any) -> Any:
        doc = self.config.get(self.store.paths.config)
        return doc.doc.get(key, default) if doc else default

    # --- waiting -----------------------------------------------------------------------------

    async def wait_for(self, key: Key, check: Callable[[], T | None], *,
                       timeout: float) -> T | None:
        """See `server.waiters.Waiters.wait_for`."""
        return await self.waiters.wait_for(key, check, timeout=timeout)

    # --- changes (kazoo's thread, then the loop) ---------------------------------------------

    def _on_change(self, change: Change) -> None:
        with self._lock:
            self._pending.append(change)
            if self._scheduled:
                return
            self._scheduled = True
        self._call_soon(self._drain)

    def _on_synced(self) -> None:
        self._call_soon(self.waiters.wake_all)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        try:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    def _key(self, path: str) -> tuple[Key, bool] | None:
        """The object a path belongs to, and whether it is the object's own znode."""
        parts = self.store.paths.split(path)
        depth = 3 if parts and parts[0] == "volumes" else 2  # /volumes/<pool>/<name>
        if len(parts) < depth or parts[0] not in _KINDS:
            return None
        return (_KINDS[parts[0]], "/".join(parts[1:depth])), len(parts) == depth

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._scheduled = False
        events: list[tuple[Key, str, Change]] = []
        for change in batch:
            self._advance(change)
            if change.path.startswith(self.store.paths.election + "/"):
                events += self._primary_events(change)
                continue
            found = self._key(change.path)
            if found is None:
                continue
            key, own = found
            self._index(key, own, change)
            kind = self._event_type(key, own, change)
            if kind is None:
                continue
            same = bool(events) and events[-1][0] == key
            if same and kind in _SKIP.get(events[-1][1], ()):
                continue
            if same and kind == "DELETED" and events[-1][1] == "MODIFIED":
                events.pop()  # the children go first in a delete: one DELETED says it all
            events.append((key, kind, change))
        touched = dict.fromkeys(key for key, _kind, _change in events)
        if self.hub.live:
            for key, kind, change in events:
                gated = self._gate(key, kind)
                if gated is not None:
                    self.hub.publish(self._event(key, gated, change))
        for key in touched:
            self.waiters.wake(key)

    def _primary_events(self, change: Change) -> list[tuple[Key, str, Change]]:
        """A contender came or went: if the primary changed, the old and the new primary's
        Node objects changed (their `primary` field)."""
        prefix = self.store.paths.election + "/"
        leader = primary_of({path[len(prefix):]: v.doc for path, v in self.election.items()
                             if path.startswith(prefix)})
        if leader == self.primary:
            return []
        before, self.primary = self.primary, leader
        return [(("Node", name), "MODIFIED", change) for name in (before, leader)
                if name is not None and name in self._names["Node"]]

    def _advance(self, change: Change) -> None:
        if change.new is not None:
            self.watermark = max(self.watermark, change.new.mzxid)
        else:  # a delete: its zxid is at most the newest the connection has seen
            self.watermark = max(self.watermark, self.store.last_zxid)

    def _index(self, key: Key, own: bool, change: Change) -> None:
        kind, name = key
        if kind == "VM":
            self._fragments.pop(name, None)
        if not own:
            return
        if kind == "VM":
            self.macs.update(name, change.new.doc.get("spec", {}).get("xml")
                             if change.new is not None else None)
        names = self._names[kind]
        if change.kind == "deleted":
            names.pop(name, None)
        else:
            names[name] = None
        if kind == "VM":
            self._sorted = None

    def _event_type(self, key: Key, own: bool, change: Change) -> str | None:
        if own:
            return {"added": "ADDED", "modified": "MODIFIED", "deleted": "DELETED"}[change.kind]
        if key[0] in ("Network", "Pool", "Rule"):
            return None  # a network's leases are not part of it (GET /network/{net}/lease)
        if key[0] == "Volume":
            return "MODIFIED" if self.docs.get("Volume", key[1]) is not None else None
        if change.kind == "deleted" and change.path.rsplit("/", 1)[1] in ("placement", "status"):
            return None  # they go only with their VM: its DELETED follows
        return "MODIFIED" if key[1] in self._names[key[0]] else None

    def _gate(self, key: Key, kind: str) -> str | None:
        """A new VM is announced once its placement and status are cached too (they are
        created in one transaction but read one by one), so its ADDED event is whole."""
        name = key[1]
        if key[0] != "VM" or (kind != "ADDED" and name not in self._incomplete):
            return kind
        if kind == "DELETED":
            self._incomplete.discard(name)
            return None
        p = self.store.paths
        if self.vms.get(p.vm_placement(name)) and self.vms.get(p.vm_status(name)):
            self._incomplete.discard(name)
            return "ADDED"
        self._incomplete.add(name)
        return None

    def _event(self, key: Key, kind: str, change: Change) -> Event:
        kind_name, name = key
        return Event(self.watermark, kind, kind_name, name, render(self, key, change))


def render(cache: ClusterCache, key: Key, change: Change | None = None) -> dict[str, Any]:
    """The object `key` as the cache has it now (for a delete: as it was last)."""
    kind, name = key
    old = change.old if change is not None else None
    if kind in ("Network", "Pool", "Volume", "Rule"):
        found = cache.docs.get(kind, name) or old
        if found is None:
            return {}
        status = cache.docs.get(kind, f"{name}/status") if kind == "Volume" else None
        return doc_object(found, kind, status=status)
    if kind == "VM":
        rec = cache.vm(name) or (VM(name, old) if old is not None else None)
        return vm_object(rec, xml=True) if rec is not None else {}
    node = cache.node(name) or (Node(name, old) if old is not None else None)
    return node_object(node, primary=cache.primary) if node is not None else {}
