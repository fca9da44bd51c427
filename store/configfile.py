"""Reading a daemon's YAML configuration file: one mapping of keys, with errors that name
the file and the problem, and the validators of the keys both daemons share (`zk_hosts`,
files they read). Shared by `herd-node` (reconciler.config) and `herd-api`
(server.config), which validate the keys themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from store.target import TLSFiles, ZKTarget, check_hosts


class ConfigError(Exception):
    """The configuration is unusable; the message names the file or the key."""


def read_mapping(path: Path, *, required: bool = True) -> dict[str, Any]:
    """The file's top-level mapping, `-` in keys read as `_`; {} for an empty file (or a
    missing one that is not required)."""
    if not path.exists():
        if required:
            raise ConfigError(f"config: {path} does not exist")
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config: {path} is not valid YAML: {e}") from None
    except OSError as e:
        raise ConfigError(f"config: cannot read {path}: {e.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of keys, not {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def zk_hosts_valid(value: str) -> None:
    """marshmallow validator of `zk_hosts`: `[user:password@]host:port[,host:port...]`."""
    try:
        check_hosts(value)
    except ValueError as e:
        raise ValidationError(str(e)) from None


def zk_target(hosts: str, *, auth_file: str | Path | None, ca: str | Path | None,
              cert: str | Path | None, key: str | Path | None) -> ZKTarget:
    """A daemon's ZooKeeper target from its config keys (`zk_hosts`, `zk_auth_file`,
    `zk_tls_ca`/`_cert`/`_key`: all three or none)."""
    files = (ca, cert, key)
    if any(f is not None for f in files) and not all(f is not None for f in files):
        raise ConfigError("config: zk_tls_ca, zk_tls_cert and zk_tls_key go together")
    tls = TLSFiles(str(ca), str(cert), str(key)) if ca is not None else None
    try:
        return ZKTarget.resolve(hosts, auth_file=auth_file, tls=tls)
    except (OSError, ValueError) as e:
        raise ConfigError(f"config: zk_auth_file: {e}") from None


def readable_file(value: str) -> None:
    """marshmallow validator of a file a daemon reads at start (a secret, a certificate)."""
    if not Path(value).is_file():
        raise ValidationError(f"{value} is not a readable file")
