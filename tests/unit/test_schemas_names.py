"""Unit tests of `schemas.names`: the name rule and its messages."""

from __future__ import annotations

import re

import pytest
from marshmallow import Schema, ValidationError

from schemas import NAME_RE, Name, is_valid_name, validate_name

ALLOWED = (
    "use 1-63 characters: lowercase letters a-z, digits 0-9, '-' and '.', "
    "starting and ending with a letter or a digit"
)

VALID = ["a", "0", "web1", "web-1", "db.prod", "a" * 63, "1a", "a..b", "a.-b", "x-y-z.9"]


@pytest.mark.parametrize("name", VALID)
def test_valid_names(name: str) -> None:
    validate_name(name)
    assert is_valid_name(name)
    assert re.fullmatch(NAME_RE, name)


def test_a_double_dot_inside_a_name_is_allowed_by_the_regex() -> None:
    # The contract is NAME_RE (DESIGN.md §2); "a..b" is one safe path component.
    assert re.match(NAME_RE, "a..b")
    validate_name("a..b")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Name must not be empty."),
        ("a" * 64, "Name is 64 characters long; at most 63 are allowed."),
        ("x" * 300, "Name is 300 characters long; at most 63 are allowed."),
        ("Web1", f"Name 'Web1' must be lowercase; {ALLOWED}."),
        ("a/b", "Name 'a/b' must not contain '/': a name is a single path component."),
        ("../x", "Name '../x' must not contain '/': a name is a single path component."),
        ("..", f"Name '..' must not start with '.'; {ALLOWED}."),
        (".hidden", f"Name '.hidden' must not start with '.'; {ALLOWED}."),
        ("a\x00b", "Name 'a\\x00b' contains a control character ('\\x00' at position 1)."),
        ("web1\n", "Name 'web1\\n' contains a control character ('\\n' at position 4)."),
        ("a\tb", "Name 'a\\tb' contains a control character ('\\t' at position 1)."),
        ("-a", "Name '-a' must start and end with a letter or a digit."),
        ("a-", "Name 'a-' must start and end with a letter or a digit."),
        ("a.", "Name 'a.' must start and end with a letter or a digit."),
        ("a_b", f"Name 'a_b' is not valid; {ALLOWED}."),
        ("a b", f"Name 'a b' is not valid; {ALLOWED}."),
        ("caf\u00e9", f"Name 'caf\u00e9' is not valid; {ALLOWED}."),
    ],
)
def test_invalid_names_say_why(name: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_name(name)
    assert info.value.messages == [message]
    assert not is_valid_name(name)


@pytest.mark.parametrize("value", [None, 5, b"web1", ["web1"]])
def test_non_strings_are_not_names(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_name(value)
    assert info.value.messages == [f"Name must be a string, not {type(value).__name__}."]
    assert not is_valid_name(value)


class _Holder(Schema):
    name = Name(required=True)


def test_name_field_validates_and_keys_the_error_by_field() -> None:
    assert _Holder().load({"name": "hv1"}) == {"name": "hv1"}
    with pytest.raises(ValidationError) as info:
        _Holder().load({"name": "HV1"})
    assert info.value.messages == {"name": [f"Name 'HV1' must be lowercase; {ALLOWED}."]}
    with pytest.raises(ValidationError) as info:
        _Holder().load({"name": 7})
    assert info.value.messages == {"name": ["Not a valid string."]}
