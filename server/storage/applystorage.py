"""Pools and Volumes in `POST /apply` (issue #15): `kind: Pool` and `kind: Volume` objects
applied in the same transaction as the rest of the list, under the rules of their own
handlers (`server.storage.pools`, `volumes`, `volumeops`).

- Pool: created when absent (checked against every other pool as they will be after the
  apply, and written with the version check of `/pools`, as `POST /pool` does: `bump`);
  an existing pool's `description` and labels may change, nothing else of its spec (422
  naming the field: a pool is removed and added again instead);
- Volume: created when absent, placed as `POST /volume` places it (its pool must exist
  already: the nodes make a pool before a volume can fit in it); an existing volume's
  `size` may only grow, within its node's free space (a resize, as `POST
  /volume/{pool}/{vol}`); `format`, `node` and `source` do not change (422 naming the
  field; absent `node` and `source` keep theirs), `description` and labels may.
`view` reads what planning needs from the cache on the loop (free space per pool and
node, the pools and volumes there are); the rest runs in `server.apply`'s planning
thread. Called by `server.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from schemas.storage import pool_conflicts
from server.access import Ctx
from server.errors import conflict
from server.storage.volumeops import grow_check
from server.storage.volumes import copy_node, free_in, place
from store import pools, txn
from store.client import Store
from store.codec import Doc
from store.objects import replace_whole
from store.siblings import Siblings

KINDS = ("Pool", "Volume")
_DOCUMENT = ("apiVersion", "kind", "metadata", "spec")


def key_of(obj: Doc) -> str:
    """An object's name in the apply: a Volume's is `<pool>/<name>`."""
    name = str(obj["metadata"]["name"])
    return f"{obj['spec']['pool']}/{name}" if obj["kind"] == "Volume" else name


@dataclass(frozen=True)
class StorageView:
    """What the cache says, read on the loop before planning."""

    free: dict[str, dict[str, int]] = field(default_factory=dict)  # pool -> node -> bytes
    pools: dict[str, str] = field(default_factory=dict)  # name -> type
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)  # `<pool>/<name>` -> spec


def view(c: Ctx, objects: list[Doc]) -> StorageView:
    wanted = {o["spec"]["pool"] for o in objects if o["kind"] == "Volume"}
    docs = c.cache.docs
    return StorageView(
        free={p: free_in(c, p) for p in wanted},
        pools={n: str(f.doc["spec"]["type"]) for n in docs.names("Pool")
               if (f := docs.get("Pool", n)) is not None},
        volumes={k: dict(f.doc["spec"]) for k in docs.names("Volume")
                 if (f := docs.get("Volume", k)) is not None})


def _errors(index: int, errors: dict[str, Any]) -> ValidationError:
    return ValidationError({"objects": {index: {"spec": errors}}})


def check_new_volume(seen: StorageView, obj: Doc, index: int) -> None:
    """A new Volume's pool and source exist; its node is chosen (`obj` is changed)."""
    spec = obj["spec"]
    if spec["pool"] not in seen.pools:
        raise _errors(index, {"pool": [f"No pool {spec['pool']!r} yet: the nodes make a "
                                       "pool before volumes fit in it."]})
    source = (spec.get("source") or {}).get("volume")
    try:
        if source is not None:
            spec["node"] = copy_node(spec, seen.volumes.get(f"{spec['pool']}/{source}"),
                                     local=seen.pools[spec["pool"]] == "local")
        spec["node"] = place(seen.free.get(spec["pool"], {}), spec)
    except ValidationError as e:
        raise ValidationError({"objects": {index: e.messages}}) from None


def _replaced(old: Doc, new: Doc) -> Doc | None:
    """`old` with `new`'s document (other stored keys kept: `deletion`, `leftovers`)."""
    done = replace_whole({k: old[k] for k in _DOCUMENT if k in old}, new)
    return None if done is None else {**old, **done}


def replaced_volume(seen: StorageView, old: Doc, obj: Doc, index: int) -> Doc | None:
    """The stored Volume `old` as `obj` makes it; None when nothing changes."""
    if old.get("deletion"):
        raise conflict(f"Volume {key_of(obj)} is being deleted", index=index)
    was, spec = old.get("spec", {}), dict(obj["spec"])
    for kept in ("node", "source"):
        if spec.get(kept) is None:
            spec[kept] = was.get(kept)
    errors = {k: [f"Cannot change ({was.get(k)!r}, not {spec.get(k)!r}): make a new "
                  "volume (a clone) instead."]
              for k in ("format", "node", "source") if spec.get(k) != was.get(k)}
    if errors:
        raise _errors(index, errors)
    if spec["size"] != was.get("size"):
        grow_check(seen.free.get(spec["pool"], {}), was, spec["size"],
                   field=("objects", str(index), "spec"))
    return _replaced(old, {**obj, "spec": spec})


def replaced_pool(old: Doc, obj: Doc, index: int) -> Doc | None:
    """The stored Pool `old` as `obj` makes it: only `description` and labels change."""
    was, spec = old.get("spec", {}), obj["spec"]
    errors = {k: ["A pool's type and place do not change: remove the pool and add it "
                  "again."] for k in sorted(set(was) | set(spec))
              if k != "description" and was.get(k) != spec.get(k)}
    if errors:
        raise _errors(index, errors)
    return _replaced(old, obj)


@dataclass(frozen=True)
class PoolApply:
    seen: Siblings | None  # None: the list has no Pool

    def bump(self, store: Store) -> list[txn.Op]:
        if self.seen is None:
            return []
        return [txn.Set(store.paths.pools, {"writes": self.seen.writes + 1},
                        version=self.seen.version)]


def prepare_pools(store: Store, objects: list[Doc]) -> PoolApply:
    """Read every pool and check the applied ones against them (blocking)."""
    applied = [(i, o) for i, o in enumerate(objects) if o["kind"] == "Pool"]
    if not applied:
        return PoolApply(None)
    seen = pools.read_all(store)
    after = {**seen.specs(), **{o["metadata"]["name"]: o["spec"] for _i, o in applied}}
    for index, obj in applied:
        clashes = pool_conflicts(obj["metadata"]["name"], obj["spec"], after)
        if clashes:
            raise _errors(index, clashes)
    return PoolApply(seen)
