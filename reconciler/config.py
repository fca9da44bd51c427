"""Configuration of `herd-node`: a YAML file (`--config`, default /etc/herd/node.yaml) whose
keys command-line flags override, validated before anything connects or writes.

A bad file or flag raises `ConfigError` naming the key and the reason; `reconciler.main`
prints it and exits with code 2. Called by `reconciler.main` and tests.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from reconciler.cluster.fencing import FenceConfigSchema
from schemas.names import Name
from store.configfile import ConfigError, read_mapping, readable_file, zk_hosts_valid, zk_target
from store.target import ZKTarget
from vocabulary import DesiredDomainState

DEFAULT_PATH = Path("/etc/herd/node.yaml")
INITIAL_DOMAIN_STATES = [s.value for s in DesiredDomainState]  # of a new node: ready or flushed


@dataclass(frozen=True)
class NodeConfig:
    name: str
    zk_hosts: str
    zk_root: str
    zk_timeout: float
    libvirt_uri: str
    coordinator: bool
    address: str | None
    initial_domain_state: str
    status_interval: float
    resync_interval: float
    workers: int
    log_level: str
    fence: dict[str, Any] = field(default_factory=dict)
    event_log: str | None = None
    migration_uri: str | None = None
    migration_concurrency: int = 2
    migration_timeout: float = 300.0
    zk_auth_file: str | None = None  # `user:password` of Herd's ZooKeeper identity
    zk_tls_ca: str | None = None  # TLS to ZooKeeper: the CA, this node's cert and key
    zk_tls_cert: str | None = None
    zk_tls_key: str | None = None
    # Client networks (issue #14): manage this node's links for them. Off by default for
    # code that builds a NodeConfig itself (tests); a config file turns it on by default.
    networks: bool = False
    netns: str | None = None  # the network namespace of this node's links (dev clusters)
    bridge_device: str | None = None  # VLAN parent / VXLAN underlay device
    run_dir: str = "/run/herd"  # gateways' dnsmasq state (the primary's)
    # Storage (issue #15): cephx keys of rbd pools, by the name a Pool gives (this file
    # only: never in ZooKeeper).
    ceph_secrets: dict[str, str] = field(default_factory=dict)
    # The node endpoint (issue #16): `host:port` of herd-node's HTTP server: GET /metrics
    # for Prometheus, and consoles, VNC, console logs and figures for herd-api (signed
    # tickets, `store.nodekeys`); None: off.
    metrics_address: str | None = None
    # Serial console logs (issue #16): where libvirt's virtlogd writes each VM's serial
    # output (`<log file=.../>`, the same path on every node), and how much of it is kept.
    console_log_dir: str = "/var/log/herd/console"
    console_log_bytes: int = 1 << 20
    # Where herd-node itself finds console_log_dir (unset: there). Differs only when
    # libvirtd runs in a mount namespace of its own, as the dev cluster's QEMU hosts do.
    console_log_local_dir: str | None = None
    # `config.shutdownPolicy: migrate` (issue #17): how long herd-node waits, as its host
    # shuts down, for the primary to flush this node before it stops anyway.
    shutdown_flush_timeout: float = 300.0
    # Self-fencing (issue #17, `fence: self`): the Unix socket of this host's herd-watchdog,
    # petted while this daemon holds its ZooKeeper session; None: no watchdog.
    watchdog_socket: str | None = None

    @property
    def zk_target(self) -> ZKTarget:
        return zk_target(self.zk_hosts, auth_file=self.zk_auth_file, ca=self.zk_tls_ca,
                         cert=self.zk_tls_cert, key=self.zk_tls_key)


def _positive(maximum: float) -> validate.Range:
    return validate.Range(min=0.01, max=maximum, error="must be between 0.01 and {max}")


def _port_valid(address: str) -> None:
    port = address.rpartition(":")[2]
    if port.isdigit() and int(port) > 65535:
        raise ValidationError("port must be 0 to 65535")


class NodeConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    name = Name(load_default=None)
    zk_hosts = fields.String(load_default="127.0.0.1:2181", validate=zk_hosts_valid)
    zk_auth_file = fields.String(load_default=None, validate=readable_file)
    zk_tls_ca = fields.String(load_default=None, validate=readable_file)
    zk_tls_cert = fields.String(load_default=None, validate=readable_file)
    zk_tls_key = fields.String(load_default=None, validate=readable_file)
    zk_root = fields.String(load_default="/herd", validate=validate.Regexp(
        r"^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", error="must be an absolute znode path"))
    # 8 s: a crashed node is noticed (its session expires) in 8 s, so that with the
    # default fenceTimeout its VMs run elsewhere within ~12 s of the crash.
    zk_timeout = fields.Float(load_default=8.0, validate=_positive(300))
    libvirt_uri = fields.String(load_default="qemu:///system", validate=validate.Regexp(
        r"^[a-z][a-z0-9+]*://", error="must be a libvirt URI such as qemu:///system"))
    coordinator = fields.Boolean(load_default=False)
    address = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=255))
    initial_domain_state = fields.String(load_default=DesiredDomainState.FLUSHED.value,
                                         validate=validate.OneOf(INITIAL_DOMAIN_STATES))
    status_interval = fields.Float(load_default=5.0, validate=_positive(3600))
    resync_interval = fields.Float(load_default=30.0, validate=_positive(86400))
    # Reconciles mostly wait on ZooKeeper and libvirt: 8 overlap those waits on 2 cores.
    workers = fields.Integer(load_default=8, validate=validate.Range(min=1, max=256))
    log_level = fields.String(load_default="INFO", validate=validate.OneOf(
        ["DEBUG", "INFO", "WARNING", "ERROR"]))
    fence = fields.Dict(load_default=dict)
    # A file that gets one JSON line per libvirt lifecycle event (for history checkers).
    event_log = fields.String(load_default=None, allow_none=True,
                              validate=validate.Length(min=1, max=4096))

    # Where the other nodes' libvirtd reach this one for live migration; published in the
    # node's status. Default: qemu+tls://<address>/system when `address` is set (libvirt's
    # TLS with the node certificates, docs/deploy.md); the dev cluster sets qemu+tcp.
    migration_uri = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[a-z][a-z0-9+]*://", error="must be a libvirt URI such as qemu+tls://host/system"))
    # Outgoing live migrations at once (more wait for a slot), and how long one may take
    # before it is aborted (the guest then stays here, running).
    migration_concurrency = fields.Integer(load_default=2, validate=validate.Range(
        min=1, max=64, error="must be between 1 and 64"))
    migration_timeout = fields.Float(load_default=300.0, validate=_positive(86400))
    # As the host shuts down with `config.shutdownPolicy: migrate`: the longest herd-node
    # waits for the primary to flush this node before it stops anyway.
    shutdown_flush_timeout = fields.Float(load_default=300.0, validate=_positive(86400))
    # herd-watchdog's socket (`fence: self`); unset: no watchdog is petted.
    watchdog_socket = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1, max=107))
    # Client networks (issue #14): this node makes their links (false: it reports none up,
    # and VMs on networks are not placed here).
    networks = fields.Boolean(load_default=True)
    netns = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9_.-]{1,64}$", error="must be a network namespace name"))
    bridge_device = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$", error="must be an interface name"))
    run_dir = fields.String(load_default="/run/herd", validate=validate.Length(min=1, max=512))
    ceph_secrets = fields.Dict(keys=fields.String(validate=validate.Regexp(
        r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$", error="must be a name")),
        values=fields.String(validate=validate.Length(min=1, max=1024)), load_default=dict)

    # herd-node's /metrics (reconciler.metrics): host:port or [v6]:port; unset: no endpoint.
    metrics_address = fields.String(load_default=None, allow_none=True, validate=[
        validate.Regexp(r"^([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}$",
                        error="must be host:port, e.g. 0.0.0.0:9310"), _port_valid])
    console_log_dir = fields.String(load_default="/var/log/herd/console", validate=[
        validate.Regexp(r"^/[^\x00'\"<>&]{0,511}$", error="must be an absolute path (no quotes, "
                        "<, > or &)")])
    console_log_local_dir = fields.String(load_default=None, allow_none=True, validate=[
        validate.Regexp(r"^/.{0,511}$", error="must be an absolute path")])
    console_log_bytes = fields.Integer(load_default=1 << 20, strict=True, validate=validate.Range(
        min=4096, max=1 << 30, error="must be between 4096 and 1073741824 bytes"))

    @validates_schema
    def _fence(self, data: dict[str, Any], **_kw: Any) -> None:
        try:
            FenceConfigSchema().load(data.get("fence") or {})
        except ValidationError as e:
            raise ValidationError({"fence": e.messages}) from None


def _describe(errors: Mapping[str, Any], prefix: str = "") -> str:
    parts = []
    for key, messages in sorted(errors.items(), key=lambda kv: str(kv[0])):
        if isinstance(messages, Mapping):
            # marshmallow files a Dict entry's errors under "value": name the entry itself
            inner = prefix if key == "value" else f"{prefix}{key}."
            parts.append(_describe(messages, inner))
            continue
        text = "; ".join(messages) if isinstance(messages, list) else str(messages)
        parts.append(f"{prefix}{key}: {text}")
    return ", ".join(parts)


def load_config(path: Path | None, overrides: Mapping[str, Any]) -> NodeConfig:
    """The file at `path` (default: /etc/herd/node.yaml if it exists), then the overrides."""
    data = read_mapping(path or DEFAULT_PATH, required=path is not None)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        loaded = NodeConfigSchema().load(data)
    except ValidationError as e:
        raise ConfigError(f"config: {_describe(e.messages_dict)}") from None
    if loaded["name"] is None:
        host = socket.gethostname().split(".")[0].lower()
        try:
            NodeConfigSchema().load({"name": host})
        except ValidationError:
            raise ConfigError(f"config: name: the hostname {host!r} is not a valid node name; "
                              "set name explicitly") from None
        loaded["name"] = host
    if loaded["migration_uri"] is None and loaded["address"]:
        loaded["migration_uri"] = f"qemu+tls://{loaded['address']}/system"
    return NodeConfig(**loaded)
