"""Shared parts of the Herd schemas: constants, the base schema and fields.

Everything here is used by the other `schemas` modules (`vm`, `node`, `requests`); the
constants are also re-exported from `schemas` for `store`, `reconciler`, `server` and
`ctl`. The enums the fields take are `vocabulary`'s. Loaded documents hold enum values as
plain strings (a `StrEnum` compares equal to its value), so they serialize to JSON and
YAML unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from schemas.names import Name
from vocabulary import Kind

API_VERSION = "herd/v1"

MAX_SHUTDOWN_TIMEOUT = 86400  # seconds
DEFAULT_SHUTDOWN_TIMEOUT = 180  # seconds, the cluster default (/herd/config)
DEFAULT_FENCE_TIMEOUT = 8.0  # seconds
DEFAULT_SELF_FENCE_TIMEOUT = 60.0  # seconds: a node's watchdog (`fence: self`)
MAX_WAIT_TIMEOUT = 3600.0  # seconds a request may block with `wait`
MAX_LABELS = 64
MAX_LABEL_LEN = 63
MAX_LIMITS = 1024  # node names in spec.meta.limits
MAX_REASON_LEN = 256
MAX_MESSAGE_LEN = 4096


class HerdSchema(Schema):
    """Base of every Herd schema: unknown keys are errors that list the allowed ones."""

    class Meta:
        unknown = RAISE

    error_messages = {"type": "Invalid input type: expected an object (a mapping)."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        allowed = sorted(f.data_key or name for name, f in self.load_fields.items())
        self.error_messages["unknown"] = f"Unknown field; allowed fields: {', '.join(allowed)}."


def _field_label(field: fields.Field[Any]) -> str:
    """The external name of a bound field, for messages."""
    return field.data_key or field.name or "value"


class Choice(fields.String):
    """A string field restricted to the values of a `StrEnum` (loaded as plain `str`)."""

    def __init__(self, enum: type[StrEnum], *, exclude: Iterable[StrEnum] = (), **kwargs: Any):
        excluded = set(exclude)
        self.choices: tuple[str, ...] = tuple(m.value for m in enum if m not in excluded)
        super().__init__(**kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in self.choices:
            raise ValidationError(
                f"Invalid {_field_label(self)} {text[:80]!r}; must be one of: "
                f"{', '.join(self.choices)}."
            )
        return text


class StrictInt(fields.Integer):
    """An integer field that takes JSON integers only (no strings, floats or booleans)."""

    default_error_messages = {"invalid": "Not a valid integer: expected a whole number."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)


class StrictFloat(fields.Float):
    """A number field that takes JSON numbers only (no strings, booleans, NaN or infinity)."""

    default_error_messages = {"invalid": "Not a valid number."}

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class StrictBool(fields.Boolean):
    """A boolean field that takes JSON true and false only."""

    default_error_messages = {"invalid": "Not a valid boolean: expected true or false."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class QueryBool(fields.Boolean):
    """A boolean field for query strings: true/false, 1/0, yes/no, on/off (any case)."""

    truthy = {"true", "1", "yes", "on", "y", "t", 1}
    falsy = {"false", "0", "no", "off", "n", "f", 0}
    default_error_messages = {"invalid": "Not a valid boolean: expected true or false."}

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


def no_control_chars(value: str) -> None:
    """Refuse NUL and other control characters except tab and newline."""
    for index, char in enumerate(value):
        if (ord(char) < 32 and char not in "\t\n") or ord(char) == 127:
            raise ValidationError(
                f"Must not contain control characters ({char!r} at position {index})."
            )


class Text(fields.String):
    """Free text of bounded length without control characters (tab and newline allowed)."""

    def __init__(self, *, max_len: int, min_len: int = 0, **kwargs: Any) -> None:
        length = validate.Length(
            min=min_len,
            max=max_len,
            error=f"Length must be between {min_len} and {max_len} characters.",
        )
        super().__init__(validate=[length, no_control_chars], **kwargs)


_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_LABEL_RULE = "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"


def validate_label_key(value: str) -> None:
    """A label key: 1-63 characters of `_LABEL_RULE`."""
    if not 1 <= len(value) <= MAX_LABEL_LEN or _LABEL_KEY.fullmatch(value) is None:
        raise ValidationError(
            f"Invalid label key {value[:80]!r}: use 1-{MAX_LABEL_LEN} {_LABEL_RULE}."
        )


def validate_label_value(value: str) -> None:
    """A label value: empty or up to 63 characters of `_LABEL_RULE`."""
    if len(value) > MAX_LABEL_LEN or _LABEL_VALUE.fullmatch(value) is None:
        raise ValidationError(
            f"Invalid label value {value[:80]!r}: use 0-{MAX_LABEL_LEN} {_LABEL_RULE}."
        )


def labels_field() -> fields.Dict:
    """`metadata.labels`: a mapping of label keys to label values (default empty)."""
    return fields.Dict(
        keys=fields.String(validate=validate_label_key),
        values=fields.String(validate=validate_label_value),
        load_default=dict,
        validate=validate.Length(
            max=MAX_LABELS, error=f"At most {MAX_LABELS} labels are allowed."
        ),
    )


def validate_iso8601(value: str) -> None:
    """An ISO 8601 date and time, such as 2024-05-01T12:00:00Z."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"Not an ISO 8601 timestamp: {value[:80]!r} (example: 2024-05-01T12:00:00Z)."
        ) from None


def validate_epoch(value: float) -> None:
    """Seconds since the epoch: finite and not negative."""
    if not math.isfinite(value) or value < 0:
        raise ValidationError("Must be a time in seconds since the epoch (0 or more).")


def non_negative() -> validate.Range:
    """A validator for counters and sizes."""
    return validate.Range(min=0, error="Must be 0 or more.")


MAX_MIGRATION_DOWNTIME_MS = 60_000


def restart_limit_range() -> validate.Range:
    """`maxRestart` / `maxRelocate` (issue #17): 0..100 tries."""
    return validate.Range(min=0, max=100, error="Must be between 0 and 100.")


def migration_downtime_range() -> validate.Range:
    """The longest final pause of a live migration: whole milliseconds, 1..60,000."""
    return validate.Range(
        min=1,
        max=MAX_MIGRATION_DOWNTIME_MS,
        error=f"Must be between 1 and {MAX_MIGRATION_DOWNTIME_MS} milliseconds.",
    )


def shutdown_timeout_range() -> validate.Range:
    """Shutdown timeouts: whole seconds, 1..MAX_SHUTDOWN_TIMEOUT."""
    return validate.Range(
        min=1,
        max=MAX_SHUTDOWN_TIMEOUT,
        error=f"Must be between 1 and {MAX_SHUTDOWN_TIMEOUT} seconds.",
    )


def validate_unique_names(values: list[str]) -> None:
    """Refuse a list of names that holds a name twice."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValidationError(f"Duplicate name {value!r}: each name may appear once.")
        seen.add(value)


def limits_field(**kwargs: Any) -> fields.List[str]:
    """A list of unique node names (`spec.meta.limits`)."""
    return fields.List(
        Name(),
        validate=[
            validate.Length(
                max=MAX_LIMITS, error=f"At most {MAX_LIMITS} node names are allowed."
            ),
            validate_unique_names,
        ],
        **kwargs,
    )


def api_version_field() -> fields.String:
    """`apiVersion`: required, and only `API_VERSION` is known."""
    return fields.String(
        required=True,
        validate=validate.Equal(
            API_VERSION, error=f"Unsupported apiVersion {{input!r}}; expected {API_VERSION!r}."
        ),
    )


def kind_field(kind: Kind) -> fields.String:
    """`kind`: required and equal to `kind`."""
    return fields.String(
        required=True,
        validate=validate.Equal(
            kind.value, error=f"Wrong kind {{input!r}} for this object; expected {kind.value!r}."
        ),
    )


class ObjectMetaSchema(HerdSchema):
    """`metadata` of a stored object (VM or Node)."""

    class Meta:
        unknown = RAISE

    name = Name(required=True)
    labels = labels_field()
    generation = StrictInt(
        validate=validate.Range(min=1, error="Must be 1 or more (it is managed by the server).")
    )
    resourceVersion = Text(max_len=64, min_len=1)
    creationTimestamp = fields.String(validate=validate_iso8601)
