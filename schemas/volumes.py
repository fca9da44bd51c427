"""The Volume object (issue #15): `/herd/volumes/<pool>/<name>`, one disk image in a
storage pool: `size` (bytes, or a size such as `256M`, `10G`), `format` (qcow2, raw),
`node` (local pools: the node the volume lives on; the API picks one when none is given),
`source` (a clone of another volume of the pool), `description`.

Sizes are whole bytes, at least 1 MiB, at most 64 TiB, stored as an integer. Pure; used
by `server`, `store` and `ctl`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate

from schemas.common import (
    HerdSchema,
    ObjectMetaSchema,
    Text,
    api_version_field,
    kind_field,
)
from schemas.names import Name
from vocabulary import Kind

MIN_SIZE = 1 << 20
MAX_SIZE = 64 << 40
FORMATS = ("qcow2", "raw")
_SIZE = re.compile(r"^\s*([0-9]{1,16})\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def parse_size(value: object) -> int:
    """Bytes of `value` (an integer, or digits with K, M, G, T: powers of 1024)."""
    if isinstance(value, bool):
        raise ValidationError("Not a size: give bytes or a size such as 256M or 10G.")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(match.group(1)) << (10 * _POWERS[(match.group(2) or "")[:1].upper()])
    else:
        raise ValidationError("Not a size: give bytes or a size such as 256M or 10G.")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValidationError(f"Must be between 1 MiB and 64 TiB, not {size} bytes.")
    return size


class Size(fields.Field[int]):
    """A size in bytes (see `parse_size`), stored as an integer."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> int:
        return parse_size(value)

    def _serialize(self, value: int | None, attr: str | None, obj: Any,
                   **kwargs: Any) -> int | None:
        return value


class SourceSchema(HerdSchema):
    """What a new volume starts as: a copy of another volume of the same pool."""

    volume = Name(required=True)


class VolumeSpecSchema(HerdSchema):
    pool = Name(required=True)
    size = Size(required=True)
    format = fields.String(load_default="qcow2", validate=validate.OneOf(
        FORMATS, error="Must be one of: qcow2, raw."))
    node = Name(load_default=None, allow_none=True)
    source = fields.Nested(SourceSchema, load_default=None, allow_none=True)
    description = Text(max_len=256, load_default="")


class VolumeSchema(HerdSchema):
    """The Volume object: apiVersion, kind, metadata and spec."""

    apiVersion = api_version_field()
    kind = kind_field(Kind.VOLUME)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(VolumeSpecSchema, required=True)
