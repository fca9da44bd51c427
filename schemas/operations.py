"""Schemas of the REST API's other requests (snake_case, DESIGN.md §5): the imperative verbs
of a VM (`/state`, `/node`, `/rename`) and of a node (`/domain-state`), `POST /apply`, the
query strings of `GET /vm` and `DELETE /vm/{vm}` (text: "true", "1"), and the one error
body. The VM bodies that become a stored VM (define, modify, meta) are `schemas.requests`.
Used by `server` (validation and the OpenAPI document) and `ctl`.

The `limit` filter of `GET /vm` is a regular expression in RE2 syntax (google-re2), never
Python's `re`: RE2 matches in time linear in the name, whatever the pattern, and refuses
what would need backtracking (backreferences, lookaround) at compile time. The server
still runs the match off the event loop, within the request's deadline (`match_names`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import re2
from marshmallow import (
    RAISE,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from schemas.common import (
    MAX_WAIT_TIMEOUT,
    Choice,
    HerdSchema,
    QueryBool,
    StrictBool,
    StrictFloat,
    Text,
)
from schemas.names import Name
from schemas.node import load_object
from schemas.untrusted import lone_surrogate
from vocabulary import (
    DomainStateVerb,
    NodeAction,
    StateVerb,
    VMState,
)

MAX_APPLY_OBJECTS = 10000
MAX_LIMIT_PATTERN = 256


def wait_timeout() -> StrictFloat:
    """`timeout` of a waiting request: seconds, 0 < t <= MAX_WAIT_TIMEOUT (null: no limit)."""
    return StrictFloat(
        load_default=None,
        validate=validate.Range(
            min=0,
            max=MAX_WAIT_TIMEOUT,
            min_inclusive=False,
            error=f"Must be more than 0 and at most {MAX_WAIT_TIMEOUT:g} seconds.",
        ),
    )


class VMStateRequest(HerdSchema):
    """POST /vm/{vm}/state: an imperative verb, optionally waiting for the result."""

    class Meta:
        unknown = RAISE

    state = Choice(StateVerb, required=True)
    wait = StrictBool(load_default=False)
    timeout = wait_timeout()


class VMNodeRequest(HerdSchema):
    """POST /vm/{vm}/node: migrate, move or unmigrate."""

    class Meta:
        unknown = RAISE

    action = Choice(NodeAction, required=True)
    node = Name(load_default=None)
    force = StrictBool(load_default=False)
    wait = StrictBool(load_default=False)
    timeout = wait_timeout()

    @validates_schema
    def _no_node_for_unmigrate(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["action"] == NodeAction.UNMIGRATE and data["node"] is not None:
            raise ValidationError(
                "A node cannot be given with action 'unmigrate': the VM returns to its last node.",
                "node",
            )


class VMRenameRequest(HerdSchema):
    """POST /vm/{vm}/rename."""

    class Meta:
        unknown = RAISE

    new_name = Name(required=True)


class NodeDomainStateRequest(HerdSchema):
    """POST /node/{node}/domain-state: flush or ready."""

    class Meta:
        unknown = RAISE

    state = Choice(DomainStateVerb, required=True)
    wait = StrictBool(load_default=False)
    timeout = wait_timeout()


class ObjectField(fields.Field[dict[str, Any]]):
    """A VM or Node document, validated by the schema of its `kind` (`load_object`)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any]:
        return load_object(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def _object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    name = obj["metadata"]["name"]
    return obj["kind"], f"{obj['spec']['pool']}/{name}" if obj["kind"] == "Volume" else name


class ApplyRequest(HerdSchema):
    """POST /apply: objects applied atomically; errors are keyed by the object's index."""

    class Meta:
        unknown = RAISE

    objects = fields.List(
        ObjectField(),
        required=True,
        validate=validate.Length(
            min=1,
            max=MAX_APPLY_OBJECTS,
            error=f"Give between 1 and {MAX_APPLY_OBJECTS} objects.",
        ),
    )
    dry_run = StrictBool(load_default=False)

    @validates_schema
    def _no_duplicates(self, data: dict[str, Any], **kwargs: Any) -> None:
        first: dict[tuple[str, str], int] = {}
        errors: dict[int, Any] = {}
        for index, obj in enumerate(data["objects"]):
            key = _object_key(obj)
            if key in first:
                errors[index] = {"metadata": {"name": [
                    f"{key[0]} {key[1]!r} is also objects[{first[key]}]; give each object once."
                ]}}
            first.setdefault(key, index)
        if errors:
            raise ValidationError({"objects": errors})


LIMIT_HELP = ("a regular expression (RE2 syntax: no backreferences or lookaround) searched "
              "in each VM's name: a plain word matches names containing it, ^web[0-9]$ "
              "anchors")
_RE2 = re2.Options()
_RE2.log_errors = False  # user input: its errors are answered, not logged by RE2
_RE2.never_capture = True
_RE2.max_mem = 1 << 20  # bytes for the compiled program; larger patterns are refused
_CHECK_EVERY = 256  # names matched between two looks at the clock
MAX_REPEAT = 1000  # RE2's largest repetition count
# A repetition count; RE2 reads one past its maximum as literal text, which no name holds.
_REPEAT = re.compile(r"\{\s*([0-9]+)\s*(?:,\s*([0-9]*)\s*)?\}")


class NameFilter(Protocol):
    """A compiled `limit` filter."""

    def search(self, text: str) -> Any: ...


def compile_limit(pattern: str) -> NameFilter:
    """The `limit` filter of GET /vm: an RE2 regular expression, searched in names."""
    index = lone_surrogate(pattern)
    if index is not None:
        raise ValidationError(f"Contains a lone surrogate (U+{ord(pattern[index]):04X} at "
                              f"position {index}); text must be valid Unicode.")
    for match in _REPEAT.finditer(pattern):
        if any(count and int(count) > MAX_REPEAT for count in match.groups()):
            raise ValidationError(f"Repetition {match.group()[:40]} is larger than "
                                  f"{MAX_REPEAT}, the most a regular expression may ask for.")
    try:
        compiled: NameFilter = re2.compile(pattern, _RE2)
    except re2.error as e:
        why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(
            e.args[0], bytes) else str(e)
        raise ValidationError(f"Not a valid regular expression (RE2 syntax: no "
                              f"backreferences or lookaround): {why}.") from None
    return compiled


def match_names(pattern: NameFilter, names: Sequence[str], *,
                until: float | None = None) -> list[bool]:
    """Whether `pattern` is found in each name. Raises TimeoutError once `time.monotonic()`
    passes `until` (looked at every few hundred names)."""
    found: list[bool] = []
    for index, name in enumerate(names):
        if until is not None and index % _CHECK_EVERY == 0 and time.monotonic() > until:
            raise TimeoutError(f"the limit filter ran out of time after {index} names")
        found.append(pattern.search(name) is not None)
    return found


def _check_limit(pattern: str) -> None:
    if len(pattern) <= MAX_LIMIT_PATTERN:  # longer: the Length validator says so
        compile_limit(pattern)


class VMListQuery(HerdSchema):
    """Query string of GET /vm; match names with `compile_limit(limit)` (`match_names`)."""

    class Meta:
        unknown = RAISE

    node = Name(load_default=None)
    state = Choice(VMState, load_default=None)
    limit = fields.String(
        load_default=None,
        metadata={"description": f"Only VMs whose name matches {LIMIT_HELP}."},
        validate=[
            validate.Length(
                min=1, max=MAX_LIMIT_PATTERN,
                error=f"Length must be between 1 and {MAX_LIMIT_PATTERN} characters.",
            ),
            _check_limit,
        ],
    )
    xml = QueryBool(load_default=False)


class DeleteQuery(HerdSchema):
    """Query string of DELETE /network/{net}."""

    class Meta:
        unknown = RAISE

    force = QueryBool(load_default=False)


class VMDeleteQuery(DeleteQuery):
    """Query string of DELETE /vm/{vm}: `delete_volumes` deletes the volumes the VM holds
    alone (not its `<shareable/>` ones) in the same transaction."""

    delete_volumes = QueryBool(load_default=False)


class ErrorSchema(HerdSchema):
    """The `error` member of every error response."""

    class Meta:
        unknown = RAISE

    code = Text(required=True, min_len=1, max_len=64)
    message = Text(required=True, max_len=4096)
    details = fields.Dict(keys=fields.String(), load_default=dict)


class ErrorBody(HerdSchema):
    """Every error response: {"error": {"code", "message", "details"}}."""

    class Meta:
        unknown = RAISE

    error = fields.Nested(ErrorSchema, required=True)
