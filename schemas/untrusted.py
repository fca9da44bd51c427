"""Cheap checks of untrusted text BEFORE it is parsed: the nesting depth of a JSON body or
of an XML document, and lone surrogates (which no UTF-8 encoder takes).

Parsers and what follows them recurse with the nesting of their input (Python's JSON
decoder, ElementTree's serializer and `itertext`), so a body nested deeper than the
recursion limit would end in a RecursionError; these scans refuse it first, in time
linear in the size of the text (regular expressions without backtracking, then one
C-level pass). Used by `server.http` (JSON bodies, query strings) and
`schemas.domainxml` (domain XML). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import accumulate, chain
from typing import Any

MAX_JSON_DEPTH = 32  # a VM object in an apply request is 7 levels deep
MAX_XML_DEPTH = 64  # libvirt's own domain XML stays under 12
MAX_PATH_SHOWN = 4  # components of a JSON path named in an error

# A JSON string; an unterminated one runs to the end, so a match never fails once begun
# (no restart inside a string, no quadratic case).
_JSON_STRING = rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)'
_JSON_STRINGS = re.compile(_JSON_STRING, re.DOTALL)
_JSON_TOKENS = re.compile(_JSON_STRING + rb"|[\[\]{}:,]", re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = tuple(1 if b in b"[{<" else -1 if b in b"]}/" else 0 for b in range(256))

# One XML token per '<': comment, CDATA, processing instruction, declaration, end tag,
# empty-element tag or start tag. Every alternative runs to the end when unterminated and
# quotes inside tags are honoured, so a token once begun always matches: no restart, no
# quadratic case. Its groups hold "/" for an end tag, ">" for an empty element, "<" for a
# start tag.
_QUOTED = r'"[^"]*+(?:"|\Z)|\'[^\']*+(?:\'|\Z)'
_TAG_BODY = r"(?:[^>\"']|" + _QUOTED + r")*+(?:>|\Z)"
_XML_TOKENS = re.compile(
    r"<(?:!--.*?(?:-->|\Z)|!\[CDATA\[.*?(?:\]\]>|\Z)|\?.*?(?:\?>|\Z)|!" + _TAG_BODY
    + r"|(/)" + _TAG_BODY
    + r"|(?=[^/!?])(?:[^>\"'/]|" + _QUOTED + r"|/(?!>))*+/(>))"
    + r"|(<)(?=[^/!?])" + _TAG_BODY,
    re.DOTALL,
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _max_depth(marks: bytes) -> int:
    """The deepest nesting of a string of open (+1) and close (-1) marks."""
    return max(accumulate(map(_DELTA.__getitem__, marks)), default=0)


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text `raw` (0 for a scalar)."""
    return _max_depth(_JSON_STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS))


def _key(token: bytes) -> str:
    try:
        return str(json.loads(token))
    except ValueError:
        return token.decode("utf-8", "replace").strip('"')


def _json_path(raw: bytes, *, limit: int, duplicates: bool = False) -> list[str] | None:
    """The keys and indexes leading to the first array or object nested past `limit`
    (or, with `duplicates`, to the first key given twice in one object)."""
    stack: list[list[Any]] = []  # [keys seen (None in an array), current key or index]
    last = b'""'
    for match in _JSON_TOKENS.finditer(raw):
        token = match.group()
        char = token[:1]
        if char in b"[{":
            if len(stack) >= limit:
                return [str(entry[1]) for entry in stack]
            stack.append([set(), ""] if char == b"{" else [None, 0])
        elif char in b"]}":
            if stack:
                stack.pop()
        elif char == b'"':
            last = token
        elif stack and char == b":" and stack[-1][0] is not None:
            stack[-1][1] = key = _key(last)
            if duplicates and key in stack[-1][0]:
                return [str(entry[1]) for entry in stack]
            stack[-1][0].add(key)
        elif stack and char == b"," and stack[-1][0] is None:
            stack[-1][1] += 1
    return None


def nest(path: list[str], message: str) -> dict[str, Any]:
    """marshmallow's shape of an error at `path`: {"a": {"b": [message]}} ("_schema" at
    the top), cut after MAX_PATH_SHOWN components."""
    shown = path[:MAX_PATH_SHOWN] or ["_schema"]
    details: dict[str, Any] = {shown[-1]: [message]}
    for key in reversed(shown[:-1]):
        details = {key: details}
    return details


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> dict[str, Any] | None:
    """Error details naming where `raw` nests past `limit`, None when it does not."""
    depth = json_depth(raw)
    if depth <= limit:
        return None
    path = _json_path(raw, limit=limit) or []
    return nest(path, f"Nested {depth} levels deep; at most {limit} levels are allowed.")


class DuplicateKey(ValueError):
    """A JSON object names a key twice (raised by `unique_keys`)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` of `json.loads` that refuses a key given twice in one object
    (parsers disagree on which one counts, so neither is taken)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise DuplicateKey("a key is given twice in one object")
    return result


def duplicate_key_error(raw: bytes) -> dict[str, Any]:
    """Error details naming the first key given twice in one object of `raw` (after
    `unique_keys` found one; the body's depth is bounded already)."""
    path = _json_path(raw, limit=MAX_JSON_DEPTH + 1, duplicates=True) or []
    return nest(path, "Given more than once in one object; give it once.")


def xml_depth(xml: str) -> int:
    """How deeply elements nest in the XML text `xml` (comments, CDATA, processing
    instructions and declarations aside), read without parsing it."""
    marks = "".join(chain.from_iterable(_XML_TOKENS.findall(xml)))
    return _max_depth(marks.replace(">", "</").encode("ascii"))  # "<" in, "/" out


def lone_surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (None when it is valid Unicode)."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    return None if found is None else found.start()


def _strings(value: Any, path: list[str]) -> Iterator[tuple[list[str], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield [*path, "_key" if lone_surrogate(key) is not None else key], key
            yield from _strings(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, [*path, str(index)])


def surrogate_error(value: Any) -> dict[str, Any] | None:
    """Error details naming the first string of a parsed JSON value that holds a lone
    surrogate, None when there is none (the value's depth is bounded already)."""
    for path, text in _strings(value, []):
        index = lone_surrogate(text)
        if index is not None:
            code = f"U+{ord(text[index]):04X}"
            return nest([p.encode("utf-8", "backslashreplace").decode() for p in path],
                        f"Contains a lone surrogate ({code} at position {index}); "
                        "text must be valid Unicode.")
    return None
