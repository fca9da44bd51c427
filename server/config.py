"""Configuration of `herd-api`: a YAML file (`--config`) whose keys command-line flags
override, validated before anything connects or listens.

A bad file or flag raises `ConfigError` naming the key and the reason; `server.main` prints
it and exits with code 2. Called by `server.main`, tests and benchmarks (which build a
`ServerConfig` directly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.common import MAX_WAIT_TIMEOUT
from store.configfile import ConfigError, read_mapping, readable_file, zk_hosts_valid, zk_target
from store.target import ZKTarget

DEFAULT_PORT = 8470
DEFAULT_MAX_BODY = 2 * 1024 * 1024
# Seconds a request may take (a write settles within 10 s, then reads directly); waits
# (`wait=true`) add their own timeout, the watch stream has none (server.deadline).
DEFAULT_REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerConfig:
    """Everything `make_app` and `server.main` need; defaults suit a local cluster."""

    zk_hosts: str = "127.0.0.1:2181"
    zk_root: str = "/herd"
    zk_timeout: float = 10.0
    zk_auth_file: Path | None = None  # `user:password` of Herd's ZooKeeper identity
    zk_tls_ca: Path | None = None  # TLS to ZooKeeper: the CA, this server's cert and key
    zk_tls_cert: Path | None = None
    zk_tls_key: Path | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = DEFAULT_PORT
    token_file: Path | None = None
    anonymous_reads: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    watch_history: int = 10_000
    max_wait_timeout: float = MAX_WAIT_TIMEOUT
    retry_after: int = 5
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    log_level: str = "INFO"

    @property
    def zk_target(self) -> ZKTarget:
        return zk_target(self.zk_hosts, auth_file=self.zk_auth_file, ca=self.zk_tls_ca,
                         cert=self.zk_tls_cert, key=self.zk_tls_key)


def _positive(maximum: float) -> validate.Range:
    return validate.Range(min=0.01, max=maximum, error="must be between 0.01 and {max}")


class ServerConfigSchema(Schema):
    """The keys of the YAML file (dashes may stand for underscores)."""

    class Meta:
        unknown = RAISE

    zk_hosts = fields.String(validate=zk_hosts_valid)
    zk_auth_file = fields.String(validate=readable_file)
    zk_tls_ca = fields.String(validate=readable_file)
    zk_tls_cert = fields.String(validate=readable_file)
    zk_tls_key = fields.String(validate=readable_file)
    zk_root = fields.String(validate=validate.Regexp(
        r"^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", error="must be an absolute znode path"))
    zk_timeout = fields.Float(validate=_positive(300))
    listen_host = fields.String(validate=validate.Length(min=1, max=255))
    listen_port = fields.Integer(strict=True, validate=validate.Range(
        min=0, max=65535, error="must be a port number, 0-65535"))
    token_file = fields.String(validate=validate.Length(min=1))
    anonymous_reads = fields.Boolean()
    tls_cert = fields.String(validate=readable_file)
    tls_key = fields.String(validate=readable_file)
    max_body_bytes = fields.Integer(strict=True, validate=validate.Range(
        min=1024, max=64 * 1024 * 1024, error="must be between 1024 and 67108864 bytes"))
    watch_history = fields.Integer(strict=True, validate=validate.Range(
        min=1, max=10_000_000, error="must be between 1 and 10000000 events"))
    max_wait_timeout = fields.Float(validate=_positive(MAX_WAIT_TIMEOUT))
    retry_after = fields.Integer(strict=True, validate=validate.Range(
        min=1, max=3600, error="must be between 1 and 3600 seconds"))
    request_timeout = fields.Float(validate=_positive(3600))
    log_level = fields.String(validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR"]))

    @validates_schema
    def _tls_pair(self, data: dict[str, Any], **_kw: Any) -> None:
        if ("tls_cert" in data) != ("tls_key" in data):
            missing = "tls_key" if "tls_cert" in data else "tls_cert"
            raise ValidationError("TLS needs both tls_cert and tls_key", missing)


def _describe(errors: Mapping[str, Any]) -> str:
    parts = []
    for key, messages in sorted(errors.items(), key=lambda kv: str(kv[0])):
        text = "; ".join(messages) if isinstance(messages, list) else str(messages)
        parts.append(f"{key}: {text}")
    return ", ".join(parts)


def load_config(path: Path | None, overrides: Mapping[str, Any]) -> ServerConfig:
    """The file at `path` (if given), then the overrides that are not None."""
    data = read_mapping(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        loaded = ServerConfigSchema().load(data)
    except ValidationError as e:
        raise ConfigError(f"config: {_describe(e.messages_dict)}") from None
    for key in ("token_file", "tls_cert", "tls_key", "zk_auth_file", "zk_tls_ca",
                "zk_tls_cert", "zk_tls_key"):
        if key in loaded:
            loaded[key] = Path(loaded[key])
    return ServerConfig(**loaded)
