"""Pure computations of the documents the API writes: new, patched and replaced objects.

- `patch_vm(doc, patch)`: a stored VM with a camelCase spec patch merged in (POST /vm/{vm},
  /meta, /state), validated whole, generation bumped when the spec changed;
- the rest of the spec documents (new, replaced, a Node's patch) and the generation rule
  come from `store.objects`, the one builder shared with the primary coordinator;
- `check_node_in_limits`: the initial node of a VM must be inside its limits (400);
- `check_node_known`: ... and one the cluster has (422);
- `strip_read_only`: drops what GET adds to an object (status, placement...), so that a
  fetched object can be applied back;
- `XmlCheck`: the domain XML policy (`schemas.xmlpolicy`) as it applies to one request,
  run on every new or changed XML (`patch_vm`, `replace_vm_checked`, define, apply): a
  refusal is a 422 naming the element, raised before anything is written.
No I/O. Called by `server.vm_handlers`, `server.vm_verbs`, `server.node_handlers` and
`server.apply`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from schemas.requests import merge_patch
from schemas.vm import VMSchema
from schemas.xmlpolicy import XmlPolicy, domain_xml_refusals
from server.errors import ApiError
from server.nics import NicCheck
from store.codec import Doc
from store.objects import generation, replace_vm, stored_metadata

READ_ONLY = {"VM": ("placement", "status", "owner"), "Node": ("status", "alive", "primary"),
             "Pool": ("nodes",), "Volume": ("status", "deletion", "leftovers")}


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


def check_node_known(spec: Mapping[str, Any], known: Callable[[str], bool], *,
                     field: str = "node") -> None:
    """422 when the spec names a node the cluster does not have (it would wait for ever)."""
    node = spec.get("node")
    if node and not known(node):
        message = f"there is no node {node!r} in the cluster"
        raise ApiError(422, "unknown_node", message, details={field: [message]})


@dataclass(frozen=True)
class XmlCheck:
    """The cluster's domain XML policy as it applies to one request's token, and the
    network rules of NICs (`server.nics`; None: not checked, e.g. in tests of
    the policy alone)."""

    policy: XmlPolicy
    exceptions_allowed: bool
    nics: NicCheck | None = None

    def refusals(self, xml: str, *, old: Any = None) -> tuple[str, ...]:
        """The policy's refusals of `xml`; none when it equals the stored `old`: an XML
        left unchanged is not checked again (a VM stored before a stricter policy may
        still be started, stopped or relabelled)."""
        if xml == old:
            return ()
        return domain_xml_refusals(xml, self.policy, exceptions_allowed=self.exceptions_allowed)

    def require(self, xml: str, *, old: Any = None, field: tuple[str | int, ...] = ("xml",)
                ) -> None:
        """Raise `ValidationError` (422), its messages under the nested `field`, when the
        policy refuses `xml`."""
        found: Any = list(self.refusals(xml, old=old))
        if found:
            for key in reversed(field):
                found = {key: found}
            raise ValidationError(found)


    def admit(self, xml: str, *, vm: str, old: Any = None,
              field: tuple[str | int, ...] = ("xml",)) -> str:
        """`require`, then the XML as it is stored: every NIC's MAC fixed (unchanged
        when it equals the stored `old`)."""
        self.require(xml, old=old, field=field)
        if self.nics is None or xml == old:
            return xml
        return self.nics.fixed(xml, vm=vm, old=old if isinstance(old, str) else None,
                               field=field)


def _stored_xml(doc: Mapping[str, Any]) -> Any:
    spec = doc.get("spec")
    return spec.get("xml") if isinstance(spec, Mapping) else None


def replace_vm_checked(old: Doc, new: Mapping[str, Any], check: XmlCheck) -> Doc | None:
    """`store.objects.replace_vm` once `check` admits the new XML (PUT's `spec.xml`)."""
    xml = check.admit(new["spec"]["xml"], vm=new["metadata"]["name"], old=_stored_xml(old),
                      field=("spec", "xml"))
    return replace_vm(old, {**new, "spec": {**new["spec"], "xml": xml}})


def patch_vm(doc: Doc, patch: Mapping[str, Any], *,
             xml_check: XmlCheck | None = None) -> Doc | None:
    """The VM `doc` with `patch` merged into its spec; None when nothing changes. A patch
    of `xml` is checked by `xml_check` (the caller's policy) against the stored XML."""
    spec = merge_patch(doc.get("spec", {}), patch)
    if patch.get("state") in ("stopped", "disabled") and "stopMode" not in patch:
        spec["stopMode"] = "graceful"
    if "node" in patch or "limits" in patch.get("meta", {}):
        check_node_in_limits(spec, field="node" if "node" in patch else "limits")
    loaded = dict(VMSchema().load({**doc, "spec": spec}))
    if "xml" in patch:
        if xml_check is None:
            raise TypeError("patch_vm: a patch of the XML needs the request's XmlCheck")
        loaded["spec"]["xml"] = xml_check.admit(loaded["spec"]["xml"], old=_stored_xml(doc),
                                                vm=loaded["metadata"]["name"])
    if loaded["spec"] == doc.get("spec"):
        return None
    return {**loaded, "metadata": stored_metadata(loaded["metadata"], generation(doc) + 1)}


