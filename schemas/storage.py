"""The Pool object (issue #15): `/herd/pools/<name>`, a storage pool every node keeps as
a libvirt storage pool of the same name.

- `local`: a directory on each node (`path`); a volume lives on one node;
- `shared`: a path mounted alike on every node (NFS, CephFS, GlusterFS); a volume is
  reachable from all of them;
- `rbd`: Ceph RBD through libvirt's rbd pool: `rbd.monitors` (host[:port]), `rbd.pool`,
  `rbd.user`, and `rbd.secret`, the NAME of the cephx key in each node's own config
  (never the key: it stays off ZooKeeper).
Checked here field by field and between fields; what involves other pools (one path per
pool) is `pool_conflicts`. Pure; used by `server`, `store` and `ctl`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import (
    Choice,
    HerdSchema,
    ObjectMetaSchema,
    Text,
    api_version_field,
    kind_field,
)
from schemas.names import Name
from vocabulary import Kind, PoolKind

_MONITOR = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?$")
_RBD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def validate_pool_path(value: str) -> None:
    """An absolute, normalized directory path other than `/`, without odd characters."""
    if not value.startswith("/") or posixpath.normpath(value) != value or value == "/":
        raise ValidationError(f"Not an absolute, normalized directory: {value[:80]!r} "
                              "(e.g. /var/lib/herd/pools/local).")
    if len(value) > 1024 or any(c.isspace() or ord(c) < 32 or c in "'\"<>&" for c in value):
        raise ValidationError("A pool path may not hold spaces, quotes, '<', '>' or '&'.")


def _validate_monitor(value: str) -> None:
    if _MONITOR.fullmatch(value) is None:
        raise ValidationError(f"Not a Ceph monitor address: {value[:80]!r} (host or "
                              "host:port).")


def _rbd_name(what: str) -> fields.String:
    return fields.String(required=True, validate=validate.Regexp(
        _RBD_NAME, error=f"Not a {what}: 1-128 letters, digits, '_', '.' and '-'."))


class RbdSchema(HerdSchema):
    """Where an rbd pool's images are, and who the nodes are to Ceph."""

    monitors = fields.List(fields.String(validate=_validate_monitor), required=True,
                           validate=validate.Length(min=1, max=16,
                                                    error="Between 1 and 16 monitors."))
    pool = _rbd_name("Ceph pool name")
    user = _rbd_name("cephx user")
    secret = Name(required=True)  # the key's name in each node's config (ceph_secrets)


class PoolSpecSchema(HerdSchema):
    """`spec` of a Pool (see the module doc)."""

    type = Choice(PoolKind, required=True)
    description = Text(max_len=256, load_default="")
    path = fields.String(validate=validate_pool_path)
    rbd = fields.Nested(RbdSchema)

    @validates_schema
    def _kind_rules(self, data: dict[str, Any], **_kw: Any) -> None:
        if data["type"] == PoolKind.RBD:
            errors = {k: [why] for k, why in (
                ("rbd", "An rbd pool needs rbd: monitors, pool, user and secret."),
                ("path", "An rbd pool has no path: its images are in Ceph."))
                if (k == "rbd") == (data.get(k) is None)}
        else:
            errors = {k: [why] for k, why in (
                ("path", f"A {data['type']} pool needs the path of its directory."),
                ("rbd", "Only an rbd pool has this field."))
                if (k == "path") == (data.get(k) is None)}
        if errors:
            raise ValidationError(errors)


class PoolSchema(HerdSchema):
    """The Pool object: apiVersion, kind, metadata and spec."""

    apiVersion = api_version_field()
    kind = kind_field(Kind.POOL)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(PoolSpecSchema, required=True)


def pool_conflicts(name: str, spec: Mapping[str, Any],
                   others: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Field errors of `spec` against the other pools: a path (or a Ceph pool) another pool
    has, or one inside another's directory."""
    errors: dict[str, list[str]] = {}
    path = spec.get("path")
    for other_name, other in sorted(others.items()):
        if other_name == name:
            continue
        theirs = other.get("path")
        if path and theirs and (path == theirs or path.startswith(theirs + "/")
                                or theirs.startswith(path + "/")):
            errors.setdefault("path", []).append(f"Overlaps {theirs} of pool {other_name}.")
        mine_rbd, their_rbd = spec.get("rbd") or {}, other.get("rbd") or {}
        if mine_rbd and their_rbd and mine_rbd.get("pool") == their_rbd.get("pool") and \
                set(mine_rbd.get("monitors", ())) & set(their_rbd.get("monitors", ())):
            errors.setdefault("rbd.pool", []).append(f"Pool {other_name} uses it already.")
    return errors
