"""The one builder of the spec documents of VMs, Nodes and Networks (pure): every writer of a VM's
or a Node's main znode — herd-api and the primary coordinator alike — builds the new
document here, so `metadata.generation` follows one rule: 1 when first stored, one more
whenever the spec changes, never touched otherwise.

- `new_object(doc)`: a loaded object as first stored;
- `with_spec(doc, **changes)`: the stored object with spec fields changed (the primary's
  stop for lack of a node, its autorestart);
- `replace_vm(old, new)` / `replace_node(old, new, given)`: PUT and apply. A VM's spec is
  replaced whole (absent fields take their defaults) but `restartRequest` never goes down
  (it counts restarts); a Node's spec keeps the keys the document leaves out (its daemon
  owns some, e.g. `coordinator`). Labels are taken as given;
- `replace_whole(old, new)`: a Network or a Rule replaced by `apply` (spec and labels as
  given);
- `node_patch(doc, spec_patch)`: a Node's spec with keys set (flush/ready, a fence).
The writes themselves are version-checked by their callers (`store.txn`, `Store.update`).
No I/O. Called by `server` (objects, handlers, apply) and `reconciler.cluster.controllers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.codec import Doc

SERVER_METADATA = ("generation", "resourceVersion", "creationTimestamp")


def generation(doc: Mapping[str, Any]) -> int:
    """The stored object's generation (1 when it has none)."""
    found = doc.get("metadata", {}).get("generation", 1)
    return found if isinstance(found, int) and found > 0 else 1


def stored_metadata(metadata: Mapping[str, Any], gen: int) -> Doc:
    """`metadata` as stored: without what the server adds, with generation `gen`."""
    kept = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
    return {**kept, "generation": gen}


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal but for `metadata.generation` and empty labels (which an object made by a
    daemon may lack)."""
    def strip(d: Mapping[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in d.get("metadata", {}).items()
                if k != "generation" and not (k == "labels" and not v)}
        return {**d, "metadata": meta}
    return strip(a) == strip(b)


def new_object(doc: Mapping[str, Any]) -> Doc:
    """A loaded object as first stored: generation 1, no server-managed metadata."""
    return {**doc, "metadata": stored_metadata(doc["metadata"], 1)}


def with_spec(doc: Doc, **changes: Any) -> Doc | None:
    """The stored object `doc` with the spec fields `changes`; None when nothing changes."""
    spec = {**doc.get("spec", {}), **changes}
    if spec == doc.get("spec"):
        return None
    return {**doc, "spec": spec,
            "metadata": stored_metadata(doc.get("metadata", {}), generation(doc) + 1)}


def replace_vm(old: Doc, new: Mapping[str, Any]) -> Doc | None:
    """The stored VM `old` replaced by the loaded VM `new`; None when nothing changes."""
    spec = dict(new["spec"])
    spec["restartRequest"] = max(int(spec.get("restartRequest", 0)),
                                 int(old.get("spec", {}).get("restartRequest", 0)))
    changed = spec != old.get("spec")
    gen = generation(old) + (1 if changed else 0)
    doc = {**new, "spec": spec, "metadata": stored_metadata(new["metadata"], gen)}
    return None if _same(doc, old) else doc


def replace_node(old: Doc, new: Mapping[str, Any], given: Mapping[str, Any]) -> Doc | None:
    """The stored Node `old` updated by the loaded Node `new` (spec keys not `given` stay)."""
    raw_spec = given.get("spec")
    keys = raw_spec.keys() if isinstance(raw_spec, Mapping) else ()
    spec = {**old.get("spec", {}), **{k: new["spec"][k] for k in keys if k in new["spec"]}}
    changed = spec != old.get("spec")
    gen = generation(old) + (1 if changed else 0)
    doc = {**old, "apiVersion": new["apiVersion"], "kind": new["kind"], "spec": spec,
           "metadata": stored_metadata(new["metadata"], gen)}
    return None if _same(doc, old) else doc


def replace_whole(old: Doc, new: Mapping[str, Any]) -> Doc | None:
    """The stored object `old` (a Network, a Rule) replaced by the loaded `new`: spec and
    labels as given, the generation one more when the spec changed; None when nothing
    changes."""
    gen = generation(old) + (1 if new["spec"] != old.get("spec") else 0)
    doc = {**new, "metadata": stored_metadata(new["metadata"], gen)}
    return None if _same(doc, old) else doc


def node_patch(doc: Doc, spec_patch: Mapping[str, Any]) -> Doc | None:
    """The Node `doc` with `spec_patch` applied; None when nothing changes."""
    return with_spec(doc, **spec_patch)
