"""Pure computations of the documents the API writes: new, patched and replaced objects.

- `patch_vm(doc, patch)`: a stored VM with a camelCase spec patch merged in (POST /vm/{vm},
  /meta, /state), validated whole, generation bumped when the spec changed;
- `replace_vm(old, new)` / `replace_node(old, new, given)`: PUT and apply. A VM's spec is
  replaced whole (absent fields take their defaults) but `restartRequest` never goes down
  (it counts restarts); a Node's spec keeps the keys the document leaves out (its daemon
  owns some, e.g. `coordinator`). Labels are taken as given; `generation` is the server's;
- `check_node_in_limits`: the initial node of a VM must be inside its limits (400);
- `strip_read_only`: drops what GET adds to an object (status, placement...), so that a
  fetched object can be applied back.
No I/O. Called by `server.vm_handlers`, `server.vm_verbs`, `server.node_handlers` and
`server.apply`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.requests import merge_patch
from schemas.vm import VMSchema
from server.errors import ApiError
from store.codec import Doc

READ_ONLY = {"VM": ("placement", "status", "owner"), "Node": ("status", "alive", "primary")}
SERVER_METADATA = ("generation", "resourceVersion", "creationTimestamp")


def strip_read_only(raw: Any) -> Any:
    """`raw` without the read-only parts GET adds (only for a mapping of a known kind)."""
    if not isinstance(raw, Mapping):
        return raw
    drop = READ_ONLY.get(str(raw.get("kind")), ())
    return {k: v for k, v in raw.items() if k not in drop}


def check_node_in_limits(spec: Mapping[str, Any], *, field: str = "node") -> None:
    """400 when the spec names a node outside its non-empty limits."""
    node, limits = spec.get("node"), spec.get("meta", {}).get("limits") or []
    if node and limits and node not in limits:
        message = f"node {node!r} is outside the VM's limits ({', '.join(limits)})"
        raise ApiError(400, "outside_limits", message, details={field: [message]})


def _generation(doc: Mapping[str, Any]) -> int:
    generation = doc.get("metadata", {}).get("generation", 1)
    return generation if isinstance(generation, int) and generation > 0 else 1


def _stored_metadata(metadata: Mapping[str, Any], generation: int) -> Doc:
    kept = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
    return {**kept, "generation": generation}


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
    return {**doc, "metadata": _stored_metadata(doc["metadata"], 1)}


def patch_vm(doc: Doc, patch: Mapping[str, Any]) -> Doc | None:
    """The VM `doc` with `patch` merged into its spec; None when nothing changes."""
    spec = merge_patch(doc.get("spec", {}), patch)
    if patch.get("state") in ("stopped", "disabled") and "stopMode" not in patch:
        spec["stopMode"] = "graceful"
    if "node" in patch or "limits" in patch.get("meta", {}):
        check_node_in_limits(spec, field="node" if "node" in patch else "limits")
    loaded = dict(VMSchema().load({**doc, "spec": spec}))
    if loaded["spec"] == doc.get("spec"):
        return None
    return {**loaded, "metadata": _stored_metadata(loaded["metadata"], _generation(doc) + 1)}


def replace_vm(old: Doc, new: Mapping[str, Any]) -> Doc | None:
    """The stored VM `old` replaced by the loaded VM `new`; None when nothing changes."""
    spec = dict(new["spec"])
    spec["restartRequest"] = max(int(spec.get("restartRequest", 0)),
                                 int(old.get("spec", {}).get("restartRequest", 0)))
    changed = spec != old.get("spec")
    generation = _generation(old) + (1 if changed else 0)
    doc = {**new, "spec": spec, "metadata": _stored_metadata(new["metadata"], generation)}
    return None if _same(doc, old) else doc


def replace_node(old: Doc, new: Mapping[str, Any], given: Mapping[str, Any]) -> Doc | None:
    """The stored Node `old` updated by the loaded Node `new` (spec keys not `given` stay)."""
    raw_spec = given.get("spec")
    keys = raw_spec.keys() if isinstance(raw_spec, Mapping) else ()
    spec = {**old.get("spec", {}), **{k: new["spec"][k] for k in keys if k in new["spec"]}}
    changed = spec != old.get("spec")
    generation = _generation(old) + (1 if changed else 0)
    doc = {**old, "apiVersion": new["apiVersion"], "kind": new["kind"], "spec": spec,
           "metadata": _stored_metadata(new["metadata"], generation)}
    return None if _same(doc, old) else doc


def node_patch(doc: Doc, spec_patch: Mapping[str, Any]) -> Doc | None:
    """The Node `doc` with `spec_patch` applied; None when nothing changes."""
    spec = {**doc.get("spec", {}), **spec_patch}
    if spec == doc.get("spec"):
        return None
    return {**doc, "spec": spec,
            "metadata": _stored_metadata(doc.get("metadata", {}), _generation(doc) + 1)}
