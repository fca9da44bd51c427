"""Marshmallow schemas of the API's answers, for the OpenAPI document only (the handlers
build their answers in `server.views`; the fuzz test checks that they match these).

Objects reuse the stored-object schemas of `schemas` (a VM's spec may leave out its XML
in lists); the smaller views are declared here. Called by `server.openapi`.
"""

from __future__ import annotations

from marshmallow import INCLUDE, RAISE, Schema, fields

from schemas.common import ObjectMetaSchema
from schemas.node import NodeSpecSchema, NodeStatusSchema
from schemas.vm import MigrationSchema, PlacementSchema, VMSpecSchema, VMStatusSchema


def _nullable_str() -> fields.String:
    return fields.String(required=True, allow_none=True)


class VMSpecOut(VMSpecSchema):
    """A VM's spec as answered: lists leave out the XML unless asked (`xml=true`)."""

    xml = fields.String()


class VMObject(Schema):
    class Meta:
        unknown = RAISE

    apiVersion = fields.String(required=True)
    kind = fields.String(required=True)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(VMSpecOut, required=True)
    placement = fields.Nested(PlacementSchema, required=True, allow_none=True)
    status = fields.Nested(VMStatusSchema, required=True, allow_none=True)
    owner = _nullable_str()


class VMList(Schema):
    items = fields.List(fields.Nested(VMObject), required=True)
    count = fields.Integer(required=True)
    resourceVersion = fields.String(required=True)


class VMMetaView(Schema):
    name = fields.String(required=True)
    limits = fields.List(fields.String(), required=True)
    selector = fields.String(required=True)
    autorestart = fields.Boolean(required=True)
    migration_method = fields.String(required=True)
    migration_max_downtime = fields.Integer(required=True, allow_none=True)
    shutdown_timeout = fields.Integer(required=True, allow_none=True)
    max_restart = fields.Integer(required=True)
    max_relocate = fields.Integer(required=True)
    resourceVersion = fields.String(required=True)


class VMStateView(Schema):
    name = fields.String(required=True)
    desired = fields.String(required=True)
    stopMode = fields.String(required=True)
    restartRequest = fields.Integer(required=True)
    generation = fields.Integer(required=True)
    state = _nullable_str()
    reason = fields.String(required=True)
    since = fields.Float(required=True, allow_none=True)
    node = _nullable_str()
    observedRestart = fields.Integer(required=True)
    observedGeneration = fields.Integer(required=True)
    resourceVersion = fields.String(required=True)


class VMPlacementView(Schema):
    name = fields.String(required=True)
    node = _nullable_str()
    lastNode = _nullable_str()
    reason = fields.String(required=True)
    autorestartPending = fields.Boolean(required=True)
    home = _nullable_str()
    runningOn = _nullable_str()
    state = _nullable_str()
    migration = fields.Nested(MigrationSchema, required=True, allow_none=True)


class DeleteResult(Schema):
    name = fields.String(required=True)
    deleted = fields.Boolean(required=True)


class NodeObject(Schema):
    class Meta:
        unknown = RAISE

    apiVersion = fields.String(required=True)
    kind = fields.String(required=True)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(NodeSpecSchema, required=True)
    status = fields.Nested(NodeStatusSchema, required=True, allow_none=True)
    alive = fields.Boolean(required=True)
    primary = fields.Boolean(required=True)


class NodeList(Schema):
    items = fields.List(fields.Nested(NodeObject), required=True)
    count = fields.Integer(required=True)
    resourceVersion = fields.String(required=True)


class NodeDomainStateView(Schema):
    name = fields.String(required=True)
    desired = _nullable_str()
    state = _nullable_str()
    daemonState = _nullable_str()
    alive = fields.Boolean(required=True)


class Change(Schema):
    path = fields.String(required=True)
    old = fields.Raw(required=True, allow_none=True)
    new = fields.Raw(required=True, allow_none=True)


class ApplyItem(Schema):
    kind = fields.String(required=True)
    name = fields.String(required=True)
    action = fields.String(required=True)
    changes = fields.List(fields.Nested(Change), required=True)
    resourceVersion = fields.String(allow_none=True)


class ApplyResult(Schema):
    dry_run = fields.Boolean(required=True)
    results = fields.List(fields.Nested(ApplyItem), required=True)


class NodeCounts(Schema):
    total = fields.Integer(required=True)
    alive = fields.Integer(required=True)
    daemonState = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    domainState = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class VMCounts(Schema):
    total = fields.Integer(required=True)
    state = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    desired = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class ClusterDefaults(Schema):
    """The cluster-wide defaults of `/herd/config`."""

    selector = fields.String(required=True)
    shutdownTimeout = fields.Integer(required=True)
    fenceTimeout = fields.Float(required=True)
    selfFenceTimeout = fields.Float(required=True)
    maintenance = fields.Boolean(required=True)
    shutdownPolicy = fields.String(required=True)


class ClusterStatus(Schema):
    primary = _nullable_str()
    nodes = fields.Nested(NodeCounts, required=True)
    vms = fields.Nested(VMCounts, required=True)
    config = fields.Nested(ClusterDefaults, required=True)
    resourceVersion = fields.String(required=True)


class WatchEvent(Schema):
    """One line of the GET /watch stream (newline-delimited JSON)."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    kind = fields.String(required=True)
    name = fields.String(required=True)
    object = fields.Dict(required=True)
    resourceVersion = fields.String(required=True)


class DocList(Schema):
    """A list of Networks or Pools."""

    items = fields.List(fields.Dict(), required=True)
    count = fields.Integer(required=True)


class DocObject(Schema):
    """One Network or Pool: apiVersion, kind, metadata, spec."""

    apiVersion = fields.String(required=True)
    kind = fields.String(required=True)
    metadata = fields.Dict(required=True)
    spec = fields.Dict(required=True)
