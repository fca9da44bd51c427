"""Pure computations of the documents the API writes: new, patched and replaced objects.

- `patch_vm(doc, patch)`: a stored VM with a camelCase spec patch merged in (POST /vm/{vm},
  /meta, /state), validated whole, generation bumped when the spec changed;
- the rest of the spec documents (new, replaced, a Node's patch) and the generation rule
  come from `store.objects`, the one builder shared with the primary coordinator;
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
from store.objects import generation, stored_metadata

READ_ONLY = {"VM": ("placement", "status", "owner"), "Node": ("status", "alive", "primary")}


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
    return {**loaded, "metadata": stored_metadata(loaded["metadata"], generation(doc) + 1)}


