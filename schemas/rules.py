"""The Rule object (issue #17): `/herd/rules/<name>`, an affinity rule between VMs.

- `together`: its VMs run on one node; `apart`: each on a node of its own;
- `strict` (default false): placement refuses (or makes the VM wait, naming the rule)
  rather than break it; a soft rule is preferred and broken only when nothing else fits;
- `vms`: 2 to 64 VM names, each once. A VM that does not exist yet may be named (it may
  be defined later); the API warns of it.
`RuleSchema` is the stored object (and `apply`'s `kind: Rule`); `RuleCreateRequest` is
the flat body of `POST /rule` (`{name, kind, strict, vms}`), made into the object by
`rule_document`. Pure; used by `server` (handlers, apply, OpenAPI) and `ctl` (`apply -f`
files, through `schemas.node.load_object`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from schemas.common import (
    API_VERSION,
    Choice,
    HerdSchema,
    ObjectMetaSchema,
    StrictBool,
    api_version_field,
    kind_field,
)
from schemas.names import Name
from vocabulary import Kind, RuleKind

MIN_RULE_VMS, MAX_RULE_VMS = 2, 64


def _once_each(values: list[str]) -> None:
    """Refuse a VM named twice, naming it."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValidationError(f"VM {value!r} is named twice; name each VM once.")
        seen.add(value)


def _vms_field() -> fields.List[str]:
    between = validate.Length(min=MIN_RULE_VMS, max=MAX_RULE_VMS,
                              error=f"A rule names between {MIN_RULE_VMS} and "
                                    f"{MAX_RULE_VMS} VMs.")
    return fields.List(Name(), required=True, validate=[between, _once_each])


class RuleSpecSchema(HerdSchema):
    """`spec` of a Rule (see the module doc)."""

    kind = Choice(RuleKind, required=True)
    strict = StrictBool(load_default=False)
    vms = _vms_field()


class RuleSchema(HerdSchema):
    """The Rule object: apiVersion, kind, metadata and spec."""

    apiVersion = api_version_field()
    kind = kind_field(Kind.RULE)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(RuleSpecSchema, required=True)


class RuleCreateRequest(RuleSpecSchema):
    """POST /rule: `{name, kind: apart|together, strict?: bool, vms: [VM names]}`."""

    name = Name(required=True)


def rule_document(loaded: Mapping[str, Any]) -> dict[str, Any]:
    """The Rule object of a loaded `RuleCreateRequest`."""
    return {"apiVersion": API_VERSION, "kind": Kind.RULE.value,
            "metadata": {"name": loaded["name"]},
            "spec": {"kind": loaded["kind"], "strict": loaded["strict"],
                     "vms": list(loaded["vms"])}}
