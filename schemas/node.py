"""Schemas of the Node object, its status, the cluster config, and any-object loading.

`NodeSchema` is /herd/nodes/<name> (written by the API and `apply`), `NodeStatusSchema`
its /status child (written by the node daemon), `ClusterConfigSchema` /herd/config.
`load_object` dispatches a document on its `kind` (VM, Node, Network, Pool, Volume or Rule):
`server` uses it for PUT and apply, `ctl` for `apply -f` files, `store` to check what it
reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from schemas.common import (
    API_VERSION,
    DEFAULT_FENCE_TIMEOUT,
    DEFAULT_SELF_FENCE_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    Choice,
    HerdSchema,
    ObjectMetaSchema,
    StrictBool,
    StrictFloat,
    StrictInt,
    Text,
    api_version_field,
    kind_field,
    non_negative,
    shutdown_timeout_range,
    validate_epoch,
)
from schemas.names import Name
from schemas.network import NetworkSchema
from schemas.rules import RuleSchema
from schemas.storage import PoolSchema
from schemas.vm import VMSchema
from schemas.volumes import VolumeSchema
from schemas.xmlpolicy import XmlPolicySchema
from vocabulary import (
    DaemonState,
    DesiredDomainState,
    DomainState,
    FenceMode,
    Kind,
    Selector,
    ShutdownPolicy,
)


class NodeSpecSchema(HerdSchema):
    """`spec` of a node: what the user wants of it."""

    class Meta:
        unknown = RAISE

    domainState = Choice(DesiredDomainState, load_default=DesiredDomainState.FLUSHED.value)
    coordinator = StrictBool(load_default=False)
    fence = Choice(FenceMode, load_default=FenceMode.AUTO.value)


def _default_node_spec() -> dict[str, Any]:
    return dict(NodeSpecSchema().load({}))


class NodeSchema(HerdSchema):
    """The Node object: apiVersion, kind, metadata and spec."""

    class Meta:
        unknown = RAISE

    apiVersion = api_version_field()
    kind = kind_field(Kind.NODE)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(NodeSpecSchema, load_default=_default_node_spec)


def _count(**kwargs: Any) -> StrictInt:
    return StrictInt(load_default=0, validate=non_negative(), **kwargs)


class NodeResourcesSchema(HerdSchema):
    """`status.resources` of a node: memory in MiB, vCPU counts, load average, VM count."""

    class Meta:
        unknown = RAISE

    memTotal = _count()
    memFree = _count()
    memUsed = _count()
    memAlloc = _count()
    memProv = _count()
    vcpuTotal = _count()
    vcpuAlloc = _count()
    # `load` would shadow Schema.load: declare it under another name, keep the key "load".
    load_average = StrictFloat(
        data_key="load",
        attribute="load",
        load_default=0.0,
        validate=validate.Range(min=0, error="Must be 0 or more."),
    )
    vms = _count()


def _default_resources() -> dict[str, Any]:
    return dict(NodeResourcesSchema().load({}))


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")


def _validate_uri(value: str) -> None:
    if _URI.fullmatch(value) is None:
        raise ValidationError(
            f"Not a libvirt URI: {value[:80]!r} (example: qemu:///system)."
        )


def _validate_address(value: str) -> None:
    if not value or any(c.isspace() or c in "/?#" for c in value):
        raise ValidationError(
            f"Not a host address: {value[:80]!r} (a host name or IP address, optionally :port)."
        )


class NetworkUpSchema(HerdSchema):
    """One network as a node has it: `up` (its bridge and libvirt network are there and
    VMs on it may run here) or why not; the bridge's name; its gateway's state here."""

    up = StrictBool(required=True)
    reason = Text(max_len=256, load_default="")
    bridge = fields.String(load_default=None, allow_none=True,
                           validate=validate.Length(max=15))
    # The network's gateway, when this node runs it (the primary): running, failed: why...
    gateway = Text(max_len=256)


class PoolUpSchema(HerdSchema):
    """One storage pool as a node has it: usable (its libvirt pool is active) or why not,
    and its figures in bytes."""

    usable = StrictBool(required=True)
    reason = Text(max_len=256, load_default="")
    capacity = StrictInt(load_default=0, validate=non_negative())
    allocation = StrictInt(load_default=0, validate=non_negative())
    available = StrictInt(load_default=0, validate=non_negative())


class WatchdogSchema(HerdSchema):
    """`status.watchdog` of a self-fencing node: the timeout its pets name, and how long
    after a heartbeat it may still pet (`reconciler.node.selffence`)."""

    class Meta:
        unknown = RAISE

    timeout = StrictFloat(required=True, validate=validate.Range(
        min=1, max=3600, error="Must be between 1 and 3600 seconds."))
    fresh = StrictFloat(required=True, validate=validate.Range(
        min=0, max=86400, error="Must be between 0 and 86400 seconds."))


class NodeStatusSchema(HerdSchema):
    """/herd/nodes/<name>/status: what the node daemon publishes about itself."""

    class Meta:
        unknown = RAISE

    daemonState = Choice(DaemonState, load_default=DaemonState.INIT.value)
    domainState = Choice(DomainState, load_default=DomainState.FLUSHED.value)
    resources = fields.Nested(NodeResourcesSchema, load_default=_default_resources)
    heartbeat = StrictFloat(load_default=0.0, validate=validate_epoch)
    version = Text(max_len=64, load_default="")
    address = fields.String(
        load_default=None, validate=[validate.Length(max=255), _validate_address]
    )
    libvirtUri = fields.String(
        load_default=None, validate=[validate.Length(max=1024), _validate_uri]
    )
    # Where the other nodes' libvirtd reach this one for live migration.
    migrationUri = fields.String(
        load_default=None, validate=[validate.Length(max=1024), _validate_uri]
    )
    # The cluster's networks on this node (issue #14): up or not, and why.
    networks = fields.Dict(keys=Name(), values=fields.Nested(NetworkUpSchema),
                           load_default=dict)
    # The cluster's storage pools on this node (issue #15).
    pools = fields.Dict(keys=Name(), values=fields.Nested(PoolUpSchema), load_default=dict)
    # Whether its libvirt driver migrates live (moving a VM with its local volumes needs it).
    liveMigration = StrictBool(load_default=False)
    # Its HTTP endpoint (issue #16): /metrics, and consoles and logs for herd-api.
    endpoint = fields.String(load_default=None, allow_none=True, validate=[
        validate.Length(max=1024), validate.URL(schemes={"http", "https"}, require_tld=False,
                                               error="must be an http(s) URL")])
    # The node spec's generation of the flush the node made itself as its host shut down
    # (`config.shutdownPolicy: migrate`): it sets itself ready again when it is back, if
    # nobody changed its spec since (`reconciler.node.shutdown`).
    shutdownFlush = StrictInt(allow_none=True, validate=validate.Range(
        min=1, error="Must be 1 or more."))
    # The watchdog it pets (issue #17, `fence: self`); None: none answers.
    watchdog = fields.Nested(WatchdogSchema, load_default=None, allow_none=True)


class RebalanceConfigSchema(HerdSchema):
    """`config.rebalance`: rebalance by itself when a node is ready again, while a move
    lowers the imbalance by more than `threshold` (`store.rebalance`)."""

    class Meta:
        unknown = RAISE

    auto = StrictBool(load_default=False)
    threshold = StrictFloat(load_default=0.1, validate=validate.Range(
        min=0, max=1000, error="Must be between 0 and 1000."))


class ClusterConfigSchema(HerdSchema):
    """/herd/config: cluster-wide defaults."""

    class Meta:
        unknown = RAISE

    selector = Choice(Selector, exclude=[Selector.NONE], load_default=Selector.MEM.value)
    shutdownTimeout = StrictInt(
        load_default=DEFAULT_SHUTDOWN_TIMEOUT, validate=shutdown_timeout_range()
    )
    fenceTimeout = StrictFloat(
        load_default=DEFAULT_FENCE_TIMEOUT,
        validate=validate.Range(min=0, min_inclusive=False, error="Must be more than 0 seconds."),
    )
    # How long a node of `fence: self` may go without petting its watchdog (a hung daemon,
    # a lost session) before the watchdog powers its guests off (issue #17).
    selfFenceTimeout = StrictFloat(
        load_default=DEFAULT_SELF_FENCE_TIMEOUT,
        validate=validate.Range(min=2, max=3600, error="Must be between 2 and 3600 seconds."),
    )
    maintenance = StrictBool(load_default=False)
    # What herd-node does with its guests when its host shuts down (issue #17): flush the
    # node first (migrate), leave them as they are (freeze), shut them down (stop).
    shutdownPolicy = Choice(ShutdownPolicy, load_default=ShutdownPolicy.MIGRATE.value)
    # Rebalance after a node returns to ready (issue #17; off unless asked).
    rebalance = fields.Nested(RebalanceConfigSchema)
    # The domain XML policy (schemas.xmlpolicy); absent: the default policy.
    xmlPolicy = fields.Nested(XmlPolicySchema)


OBJECT_SCHEMAS: dict[str, type[Schema]] = {Kind.VM.value: VMSchema, Kind.NODE.value: NodeSchema,
                                           Kind.NETWORK.value: NetworkSchema,
                                           Kind.POOL.value: PoolSchema,
                                           Kind.VOLUME.value: VolumeSchema,
                                           Kind.RULE.value: RuleSchema}


class ObjectSchema:
    """Loads and dumps any stored object (VM or Node), dispatching on its `kind`."""

    def load(self, doc: Any) -> dict[str, Any]:
        """Validate `doc` with the schema of its kind; raise `ValidationError` otherwise."""
        return load_object(doc)

    def dump(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Serialize a loaded object with the schema of its kind."""
        schema = OBJECT_SCHEMAS[obj["kind"]]()
        return dict(schema.dump(obj))


def _kind_schema(doc: Mapping[str, Any]) -> Schema:
    """The schema for `doc`'s kind, or the field errors of `kind` and `apiVersion`."""
    errors: dict[str, list[str]] = {}
    version, kind = doc.get("apiVersion"), doc.get("kind")
    if version is None:
        errors["apiVersion"] = ["Missing data for required field."]
    elif version != API_VERSION:
        errors["apiVersion"] = [f"Unsupported apiVersion {version!r}; expected {API_VERSION!r}."]
    if kind is None:
        errors["kind"] = ["Missing data for required field."]
    elif not isinstance(kind, str) or kind not in OBJECT_SCHEMAS:
        errors["kind"] = [f"Unknown kind {kind!r}; expected one of: {', '.join(OBJECT_SCHEMAS)}."]
    if errors:
        raise ValidationError(errors)
    return OBJECT_SCHEMAS[str(kind)]()


def load_object(doc: Any) -> dict[str, Any]:
    """Load a VM or Node document (as in `apply`), dispatching on `kind`.

    Raises `ValidationError` with field → messages: on `kind` or `apiVersion` when they
    are missing or unknown, else the errors of the kind's schema.
    """
    if not isinstance(doc, Mapping):
        raise ValidationError({"_schema": ["Invalid input type: expected an object (a mapping)."]})
    return dict(_kind_schema(doc).load(doc))
