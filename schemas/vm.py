"""Schemas of the VM object and its placement and status znodes (camelCase keys).

`VMSchema` is the document at /herd/vms/<name> and in `apply` YAML; `PlacementSchema`
and `VMStatusSchema` are its /placement and /status children (DESIGN.md §2). Used by
`store` (codec checks), `server` (PUT, apply, OpenAPI), `reconciler` (reading spec and
writing status) and `ctl` (client-side validation). Loading a VM also checks its domain
XML and fills in a missing <name> (`schemas.domainxml.normalize_domain_xml`).
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, ValidationError, fields, post_load, validate, validates_schema

from schemas.common import (
    MAX_MESSAGE_LEN,
    MAX_REASON_LEN,
    Choice,
    HerdSchema,
    ObjectMetaSchema,
    StrictBool,
    StrictFloat,
    StrictInt,
    Text,
    api_version_field,
    kind_field,
    limits_field,
    migration_downtime_range,
    non_negative,
    restart_limit_range,
    shutdown_timeout_range,
    validate_epoch,
)
from schemas.domainxml import normalize_domain_xml, parse_domain_xml
from schemas.names import Name
from vocabulary import (
    ConditionStatus,
    DesiredState,
    Kind,
    MigrationMethod,
    Selector,
    StopMode,
    VMState,
)


class VMMetaSchema(HerdSchema):
    """`spec.meta`: placement rules and policies of a VM (DESIGN.md §4)."""

    class Meta:
        unknown = RAISE

    limits = limits_field(load_default=list)
    selector = Choice(Selector, load_default=Selector.NONE.value)
    autorestart = StrictBool(load_default=False)
    migrationMethod = Choice(MigrationMethod, load_default=MigrationMethod.ANY.value)
    # The final pause a live migration may take, in ms; absent or None: libvirt's default.
    migrationMaxDowntime = StrictInt(allow_none=True, validate=migration_downtime_range())
    # Restart limits (issue #17): restarts in place after start failures or crashes within
    # RESTART_WINDOW, then tries on other nodes, then the VM is failed.
    maxRestart = StrictInt(validate=restart_limit_range())  # absent: 1
    maxRelocate = StrictInt(validate=restart_limit_range())  # absent: 1


def _default_meta() -> dict[str, Any]:
    return dict(VMMetaSchema().load({}))


class VMSpecSchema(HerdSchema):
    """`spec` of a VM: its desired state, placement hint, metadata and domain XML."""

    class Meta:
        unknown = RAISE

    state = Choice(DesiredState, load_default=DesiredState.STOPPED.value)
    stopMode = Choice(StopMode, load_default=StopMode.GRACEFUL.value)
    restartRequest = StrictInt(load_default=0, validate=non_negative())
    node = Name(load_default=None)
    meta = fields.Nested(VMMetaSchema, load_default=_default_meta)
    shutdownTimeout = StrictInt(load_default=None, validate=shutdown_timeout_range())
    xml = fields.String(required=True, validate=validate.Length(min=1, error="Must not be empty."))


class VMSchema(HerdSchema):
    """The VM object: apiVersion, kind, metadata and spec (no status: it has its own znode)."""

    class Meta:
        unknown = RAISE

    apiVersion = api_version_field()
    kind = kind_field(Kind.VM)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(VMSpecSchema, required=True)

    @validates_schema(skip_on_field_errors=False)
    def _check_xml(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The domain XML is safe and well-formed, and its <name> is the VM's."""
        spec, metadata = data.get("spec"), data.get("metadata")
        xml = spec.get("xml") if isinstance(spec, dict) else None
        if not isinstance(xml, str):
            return
        name = metadata.get("name") if isinstance(metadata, dict) else None
        try:
            if name is None:
                parse_domain_xml(xml)
            else:
                normalize_domain_xml(xml, name)
        except ValidationError as e:
            raise ValidationError({"spec": {"xml": e.messages}}) from None

    @post_load
    def _normalize_xml(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Store the XML with its <name> filled in."""
        spec = data["spec"]
        spec["xml"] = normalize_domain_xml(spec["xml"], data["metadata"]["name"])
        return data


class PlacementSchema(HerdSchema):
    """/herd/vms/<name>/placement: where the VM should run and why."""

    class Meta:
        unknown = RAISE

    node = Name(load_default=None)
    lastNode = Name(load_default=None)
    reason = Text(max_len=MAX_REASON_LEN, load_default="")
    autorestartPending = StrictBool(load_default=False)
    home = Name(load_default=None)
    # Restart limits (issue #17): the nodes that gave the VM up at this spec generation.
    tried = fields.Nested(lambda: TriedSchema(), allow_none=True)


class TriedSchema(HerdSchema):
    """`placement.tried`: nodes given up on (`store.restarts`), for one spec generation."""

    class Meta:
        unknown = RAISE

    generation = StrictInt(required=True, validate=non_negative())
    nodes = fields.List(Name(), required=True, validate=validate.Length(max=256))


class RelocateSchema(HerdSchema):
    """`status.relocate`: the node gave the VM up after its restarts (`store.restarts`)."""

    class Meta:
        unknown = RAISE

    node = Name(required=True)
    restarts = StrictInt(required=True, validate=non_negative())


class MigrationSchema(HerdSchema):
    """`status.migration`: a migration in progress."""

    class Meta:
        unknown = RAISE

    source = Name(required=True)
    target = Name(required=True)
    method = Choice(MigrationMethod, exclude=[MigrationMethod.ANY], required=True)
    started = StrictFloat(required=True, validate=validate_epoch)
    # What the source records of its live migration; the next step is planned on it.
    callMs = StrictInt(validate=non_negative())  # the libvirt call, start to return
    handedOver = StrictBool()  # the call returned: the guest runs on the target
    liveFailed = StrictBool()  # it failed (method any): moved by shutdown instead
    # While a live migration runs, how far it got (bytes; the source samples libvirt's job).
    diskCopied = StrictInt(validate=non_negative())  # local volumes copied along
    diskTotal = StrictInt(validate=non_negative())
    memoryCopied = StrictInt(validate=non_negative())
    memoryTotal = StrictInt(validate=non_negative())

    @validates_schema
    def _distinct(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["source"] == data["target"]:
            raise ValidationError("A migration needs distinct source and target nodes.", "target")


class ConditionSchema(HerdSchema):
    """One entry of `status.conditions` (Kubernetes style)."""

    class Meta:
        unknown = RAISE

    type = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Z][A-Za-z0-9]{0,62}$",
            error="Condition type must be a CamelCase word of 1-63 letters and digits.",
        ),
    )
    status = Choice(ConditionStatus, required=True)
    reason = Text(max_len=MAX_REASON_LEN, load_default="")
    message = Text(max_len=MAX_MESSAGE_LEN, load_default="")
    lastTransitionTime = StrictFloat(load_default=0.0, validate=validate_epoch)


def _unique_condition_types(conditions: list[dict[str, Any]]) -> None:
    types = [c["type"] for c in conditions]
    duplicates = sorted({t for t in types if types.count(t) > 1})
    if duplicates:
        raise ValidationError(f"Duplicate condition type(s): {', '.join(duplicates)}.")


class VMStatusSchema(HerdSchema):
    """/herd/vms/<name>/status: what the responsible node observes."""

    class Meta:
        unknown = RAISE

    state = Choice(VMState, load_default=VMState.UNKNOWN.value)
    node = Name(load_default=None)
    reason = Text(max_len=MAX_REASON_LEN, load_default="")
    since = StrictFloat(load_default=0.0, validate=validate_epoch)
    observedGeneration = StrictInt(load_default=0, validate=non_negative())
    observedRestart = StrictInt(load_default=0, validate=non_negative())
    # A permanent libvirt failure at this spec generation: not tried again until it changes.
    failedGeneration = StrictInt(validate=non_negative())
    shutdownDeadline = StrictFloat(load_default=None, validate=validate_epoch)
    migration = fields.Nested(MigrationSchema, load_default=None)
    # sha256 of the spec XML the running domain was started from; a different spec XML
    # while it runs means "restart required" (applied at the next start).
    runningXmlHash = fields.String(
        load_default=None, allow_none=True,
        validate=validate.Regexp(r"^[0-9a-f]{64}$", error="Must be a sha256 hex digest."),
    )
    conditions = fields.List(
        fields.Nested(ConditionSchema), load_default=list, validate=_unique_condition_types
    )
    # Restart limits (issue #17): restarts after failures here, and a node's giving up.
    restarts = fields.List(StrictFloat(validate=validate_epoch), validate=validate.Length(
        max=101))
    relocate = fields.Nested(RelocateSchema, allow_none=True)
