"""Strange request inputs for fuzzing herd-api (issue #13): hypothesis strategies of raw
JSON bodies and query strings that a schema-driven generator does not make — nesting
hundreds to thousands deep, lone UTF-16 surrogates (escaped in JSON, percent-encoded
UTF-8 in URLs), integers of thousands of digits, duplicate keys, and regular expressions
with catastrophic backtracking — mixed into bodies that otherwise use the operation's own
field names, so that they get past the first checks. Used by `tests/e2e/test_api_fuzz.py`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

SURROGATES = ["\\ud800", "\\udfff", "a\\udc80b", "\\ud83d"]  # as JSON escapes
PATTERNS = ["(a+)+$", "((a*)*)*b", "(a|aa)+$", "(x+x+)+y", "[", "(?P<n>", "a{1000000}",
            "\\", "(?<=a+)b", "(a){99999}", "*", "(?i)" + "a?" * 200 + "a" * 200]
WORDS = ["fuzz1", "hv1", "running", "stopped", "ready", "flushed", "live", "admin",
         "<domain/>", "", " ", "\x00", "é" * 300, "x" * 5000]


def huge_integer_text(digits: int, *, negative: bool) -> str:
    return ("-" if negative else "") + "9" * digits


def deep_text(depth: int, inner: str, *, kind: str) -> str:
    """`inner` nested `depth` times in arrays or objects, as text (json.dumps would recurse)."""
    if kind == "array":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


@st.composite
def strange_scalar(draw: st.DrawFn) -> str:
    """The JSON text of one value, plain or strange."""
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return "\"" + draw(st.sampled_from(SURROGATES)) + "\""
    if choice == 1:
        return huge_integer_text(draw(st.sampled_from([20, 400, 5000])), negative=draw(
            st.booleans()))
    if choice == 2:
        return json.dumps(draw(st.sampled_from(PATTERNS)))
    if choice == 3:
        return deep_text(draw(st.sampled_from([40, 200, 1500, 20000])), "1",
                         kind=draw(st.sampled_from(["array", "object"])))
    if choice == 4:
        return json.dumps(draw(st.sampled_from(WORDS)))
    if choice == 5:
        return draw(st.sampled_from(["1e400", "-0", "1.5", "NaN", "Infinity", "true", "null"]))
    return json.dumps(draw(st.one_of(st.integers(), st.booleans(), st.text(max_size=20),
                                     st.lists(st.integers(), max_size=3))))


@st.composite
def strange_body(draw: st.DrawFn, keys: list[str]) -> bytes:
    """A JSON object (or something that is nearly one) over the operation's field names."""
    names: list[str] = draw(st.lists(st.sampled_from([*keys, "zzz", ""]), max_size=6))
    members = [f"{json.dumps(k)}:{draw(strange_scalar())}" for k in names]
    twice: bool = draw(st.booleans())
    if names and twice:  # the same key twice
        members.append(f"{json.dumps(names[0])}:{draw(strange_scalar())}")
    text = "{" + ",".join(members) + "}"
    wrap = draw(st.integers(0, 5))
    if wrap == 0:
        text = deep_text(draw(st.sampled_from([100, 5000])), text, kind="array")
    elif wrap == 1:
        text = text[: draw(st.integers(0, len(text)))]  # cut short
    return text.encode("utf-8", "surrogatepass")


@st.composite
def strange_query(draw: st.DrawFn, names: list[str]) -> str:
    """A query string over the operation's parameter names, percent-encoded by hand so that
    lone surrogates (as UTF-8 bytes Python would refuse) and raw patterns reach the server."""
    parts = []
    for name in draw(st.lists(st.sampled_from(names), max_size=4)) if names else []:
        value = draw(st.one_of(
            st.sampled_from(PATTERNS), st.sampled_from(WORDS[:8]),
            st.sampled_from(["%ED%A0%80", "%C0%AF", "%FF", "9" * 500, "-1", "1e999", "nan"])))
        parts.append(f"{name}={value if value.startswith('%') else quote(value, safe='')}")
    return "&".join(parts)


def body_keys(doc: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """The property names of an operation's JSON body, `$ref`s resolved."""
    schema = (operation.get("requestBody", {}).get("content", {})
              .get("application/json", {}).get("schema", {}))
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


def query_names(operation: dict[str, Any]) -> list[str]:
    return sorted({p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"})
