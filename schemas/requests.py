"""Schemas of the REST API's request bodies and query strings (snake_case, DESIGN.md §5).

`server` validates every request with these (and builds its OpenAPI document from
them); `ctl` may validate before sending. Helpers turn a loaded request into what is
stored: `define_request_to_vm` (POST /vm), `vm_spec_patch` (POST /vm/{vm}) and
`meta_patch` (POST /vm/{vm}/meta). The other requests (verbs, apply, queries, the error
body) are in `schemas.operations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import (
    RAISE,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from schemas.common import (
    API_VERSION,
    Choice,
    HerdSchema,
    StrictBool,
    StrictInt,
    limits_field,
    migration_downtime_range,
    restart_limit_range,
    shutdown_timeout_range,
)
from schemas.domainxml import domain_name, normalize_domain_xml
from schemas.names import Name, validate_name
from schemas.vm import VMSchema
from vocabulary import (
    DesiredState,
    Kind,
    MigrationMethod,
    Selector,
)

# Request field → key in `spec.meta` of the stored VM.
META_KEYS = {
    "limits": "limits",
    "selector": "selector",
    "autorestart": "autorestart",
    "migration_method": "migrationMethod",
    "migration_max_downtime": "migrationMaxDowntime",
    "max_restart": "maxRestart",
    "max_relocate": "maxRelocate",
}
# Request field → key in `spec` of the stored VM.
SPEC_KEYS = {"state": "state", "node": "node", "shutdown_timeout": "shutdownTimeout", "xml": "xml"}


class NameList(fields.List[str]):
    """A list of unique node names; also takes a comma-separated string ("hv1,hv2")."""

    def __init__(self, **kwargs: Any) -> None:
        template = limits_field()
        super().__init__(Name(), validate=template.validators, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[Any]:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return super()._deserialize(value, attr, data, **kwargs)


def _xml_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, error="Must not be empty."), **kwargs)


class _AtLeastOne(HerdSchema):
    """Refuses a body that gives none of the fields in `AT_LEAST_ONE`."""

    AT_LEAST_ONE: tuple[str, ...] = ()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _at_least_one(self, data: dict[str, Any], original_data: Any, **kwargs: Any) -> None:
        if not self.AT_LEAST_ONE or not isinstance(original_data, Mapping):
            return
        if not any(key in original_data for key in self.AT_LEAST_ONE):
            raise ValidationError(
                f"No field given; one of {', '.join(self.AT_LEAST_ONE)} is required."
            )


def _resolve_name_and_xml(xml: str, name: str | None) -> tuple[str, str]:
    """The VM name and normalized XML of a define; errors keyed `xml` or `name`."""
    try:
        found = domain_name(xml)
    except ValidationError as e:
        raise ValidationError({"xml": e.messages}) from None
    if name is None:
        if found is None:
            raise ValidationError(
                {"name": ["No VM name given: set name, or a <name> in the domain XML."]}
            )
        try:
            validate_name(found)
        except ValidationError as e:
            raise ValidationError(
                {"xml": [f"The domain's <name> cannot be used as a VM name: {e.messages[0]}"]}
            ) from None
        name = found
    try:
        return name, normalize_domain_xml(xml, name)
    except ValidationError as e:
        raise ValidationError({"xml": e.messages}) from None


class VMModifyRequest(_AtLeastOne):
    """POST /vm/{vm}: change any define field; only the fields given change.

    `name` is accepted (a define body may be resent) but changes nothing and does not
    count as a field given; `vm_spec_patch` refuses one that differs from the VM's.
    """

    class Meta:
        unknown = RAISE

    _name_required = False  # define: the XML must name the VM when no name is given
    AT_LEAST_ONE: tuple[str, ...] = (
        "xml", "node", "limits", "selector", "autorestart", "migration_method",
        "migration_max_downtime", "shutdown_timeout", "state", "max_restart", "max_relocate",
    )

    xml = _xml_field()
    name = Name()
    node = Name(allow_none=True)
    limits = NameList()
    selector = Choice(Selector)
    autorestart = StrictBool()
    migration_method = Choice(MigrationMethod)
    migration_max_downtime = StrictInt(allow_none=True, validate=migration_downtime_range())
    shutdown_timeout = StrictInt(allow_none=True, validate=shutdown_timeout_range())
    state = Choice(DesiredState)
    max_restart = StrictInt(validate=restart_limit_range())
    max_relocate = StrictInt(validate=restart_limit_range())

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_xml(self, data: dict[str, Any], original_data: Any, **kwargs: Any) -> None:
        """The XML is valid, and names the VM `name` when both are given."""
        if "xml" not in data:
            return
        if isinstance(original_data, Mapping) and "name" in original_data and "name" not in data:
            return  # the name itself is invalid: that error is enough
        if "name" in data or self._name_required:
            _resolve_name_and_xml(data["xml"], data.get("name"))
        else:
            try:
                domain_name(data["xml"])
            except ValidationError as e:
                raise ValidationError({"xml": e.messages}) from None


class VMDefineRequest(VMModifyRequest):
    """POST /vm: define a VM from its domain XML; the name defaults to the XML's <name>."""

    class Meta:
        unknown = RAISE

    AT_LEAST_ONE = ()  # xml is required instead
    _name_required = True

    xml = _xml_field(required=True)


def _vm_errors(messages: Any) -> dict[str, Any]:
    """Map `VMSchema` error paths back onto request field names."""
    if not isinstance(messages, dict):
        return {"_schema": messages}
    spec = messages.get("spec", {})
    spec = spec if isinstance(spec, dict) else {"_schema": spec}
    meta = spec.pop("meta", {})
    meta = meta if isinstance(meta, dict) else {"_schema": meta}
    back = {camel: snake for snake, camel in {**SPEC_KEYS, **META_KEYS}.items()}
    out: dict[str, Any] = {back.get(k, k): v for k, v in {**spec, **meta}.items()}
    metadata = messages.get("metadata", {})
    if isinstance(metadata, dict) and "name" in metadata:
        out["name"] = metadata["name"]
    return out or {"_schema": ["Invalid VM definition."]}


def define_request_to_vm(data: Mapping[str, Any]) -> dict[str, Any]:
    """Build the stored VM object from a loaded `VMDefineRequest`.

    The name is `data["name"]`, else the XML's <name>; errors are keyed by request field
    (`name` when no name can be found, `xml` when the names disagree).
    """
    name, xml = _resolve_name_and_xml(data["xml"], data.get("name"))
    spec: dict[str, Any] = {SPEC_KEYS[k]: data[k] for k in SPEC_KEYS if k in data}
    spec["xml"] = xml
    spec["meta"] = {META_KEYS[k]: data[k] for k in META_KEYS if k in data}
    doc = {"apiVersion": API_VERSION, "kind": Kind.VM.value, "metadata": {"name": name}}
    try:
        return dict(_VM_SCHEMA.load({**doc, "spec": spec}))
    except ValidationError as e:
        raise ValidationError(_vm_errors(e.messages)) from None


# One instance serves every call (loading keeps no state in it); building a schema per
# define cost more than the rest of the request in the API server.
_VM_SCHEMA = VMSchema()


def vm_spec_patch(data: Mapping[str, Any], *, vm_name: str) -> dict[str, Any]:
    """The camelCase `spec` patch of a loaded `VMModifyRequest` for the VM `vm_name`.

    Only the fields given appear (`meta` only when a metadata field is given). A `name`
    other than `vm_name` is an error (renames go through POST /vm/{vm}/rename); `xml` is
    checked and normalized against `vm_name`.
    """
    if "name" in data and data["name"] != vm_name:
        raise ValidationError(
            {"name": [f"Name {data['name']!r} differs from the VM {vm_name!r}; "
                      "use rename to change a VM's name."]}
        )
    patch: dict[str, Any] = {SPEC_KEYS[k]: data[k] for k in SPEC_KEYS if k in data}
    if "xml" in patch:
        patch["xml"] = _resolve_name_and_xml(patch["xml"], vm_name)[1]
    meta = {META_KEYS[k]: data[k] for k in META_KEYS if k in data}
    if meta:
        patch["meta"] = meta
    return patch


class VMMetaRequest(_AtLeastOne):
    """POST /vm/{vm}/meta: change metadata only; only the fields given change."""

    class Meta:
        unknown = RAISE

    AT_LEAST_ONE = ("limits", "selector", "autorestart", "migration_method",
                    "migration_max_downtime", "shutdown_timeout", "max_restart", "max_relocate")

    limits = NameList()
    selector = Choice(Selector)
    autorestart = StrictBool()
    migration_method = Choice(MigrationMethod)
    migration_max_downtime = StrictInt(allow_none=True, validate=migration_downtime_range())
    shutdown_timeout = StrictInt(allow_none=True, validate=shutdown_timeout_range())
    max_restart = StrictInt(validate=restart_limit_range())
    max_relocate = StrictInt(validate=restart_limit_range())


def meta_patch(data: Mapping[str, Any]) -> dict[str, Any]:
    """The camelCase `spec` patch of a loaded `VMMetaRequest` (only the keys given).

    Example: {"limits": ["hv1"], "shutdown_timeout": None} →
    {"meta": {"limits": ["hv1"]}, "shutdownTimeout": None}.
    """
    patch: dict[str, Any] = {}
    meta = {META_KEYS[k]: data[k] for k in META_KEYS if k in data}
    if meta:
        patch["meta"] = meta
    if "shutdown_timeout" in data:
        patch["shutdownTimeout"] = data["shutdown_timeout"]
    return patch


def merge_patch(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `patch` applied: nested mappings merge, any other value replaces."""
    merged = dict(base)
    for key, value in patch.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = merge_patch(current, value)
        else:
            merged[key] = value
    return merged
