"""Object names: the one rule every VM and node name obeys.

A name is a single ZooKeeper path component and a valid libvirt domain name
(DESIGN.md §2): ``NAME_RE``. Used by every schema in `schemas` (through the `Name`
field), by `store` before it builds a path, and by `ctl` for client-side checks.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from marshmallow import ValidationError, fields

from schemas.untrusted import lone_surrogate

NAME_RE = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"
MAX_NAME_LEN = 63

_NAME = re.compile(NAME_RE)
_ALLOWED = (
    "use 1-63 characters: lowercase letters a-z, digits 0-9, '-' and '.', "
    "starting and ending with a letter or a digit"
)


def is_valid_name(value: object) -> bool:
    """True when `value` is a string that matches `NAME_RE` exactly."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _control_char(value: str) -> tuple[int, str] | None:
    """Position and character of the first control (or other non-printing) character."""
    for index, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return index, char
    return None


def _name_problem(value: str) -> str:
    """The most specific explanation of why `value` does not match `NAME_RE`."""
    shown = repr(value) if len(value) <= 80 else repr(value[:77] + "...")
    if value == "":
        return "Name must not be empty."
    if len(value) > MAX_NAME_LEN:
        return f"Name is {len(value)} characters long; at most {MAX_NAME_LEN} are allowed."
    surrogate = lone_surrogate(value)
    if surrogate is not None:
        return (f"Name {shown} contains a lone surrogate (U+{ord(value[surrogate]):04X} at "
                f"position {surrogate}); {_ALLOWED}.")
    bad = _control_char(value)
    if bad is not None:
        return f"Name {shown} contains a control character ({bad[1]!r} at position {bad[0]})."
    if "/" in value:
        return f"Name {shown} must not contain '/': a name is a single path component."
    if value.startswith(".") or value == "..":
        return f"Name {shown} must not start with '.'; {_ALLOWED}."
    if any(char.isupper() for char in value):
        return f"Name {shown} must be lowercase; {_ALLOWED}."
    if value[0] == "-" or value[-1] in "-.":
        return f"Name {shown} must start and end with a letter or a digit."
    return f"Name {shown} is not valid; {_ALLOWED}."


def validate_name(value: object) -> None:
    """Raise `ValidationError` with a clear message unless `value` is a valid name."""
    if not isinstance(value, str):
        raise ValidationError(f"Name must be a string, not {type(value).__name__}.")
    if _NAME.fullmatch(value) is None:
        raise ValidationError(_name_problem(value))


class Name(fields.String):
    """A string field holding an object name (validated with `validate_name`)."""

    def __init__(self, **kwargs: Any) -> None:
        validators = kwargs.pop("validate", None)
        extra = [] if validators is None else (
            [validators] if callable(validators) else list(validators)
        )
        super().__init__(validate=[validate_name, *extra], **kwargs)
