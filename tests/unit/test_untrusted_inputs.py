"""Hypothesis against the validators of untrusted input (issue 13): the domain XML checks
(`schemas.domainxml`), names (`schemas.names`), the `limit` filter and the request schemas
answer a ValidationError or a value for ANY input (nesting, lone surrogates, huge
integers, duplicate keys and attributes) and never another exception; the linear scans of
`schemas.untrusted` read the true depth of any well-formed JSON or XML.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element, tostring

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from schemas.domainxml import domain_resources, normalize_domain_xml, rename_domain_xml
from schemas.names import is_valid_name, validate_name
from schemas.operations import VMListQuery, compile_limit, match_names
from schemas.requests import VMDefineRequest, VMModifyRequest
from schemas.untrusted import (
    MAX_JSON_DEPTH,
    MAX_XML_DEPTH,
    DuplicateKey,
    duplicate_key_error,
    json_depth,
    json_too_deep,
    lone_surrogate,
    surrogate_error,
    unique_keys,
    xml_depth,
)

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Text as an attacker types it: any code point, lone surrogates included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
HUGE = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**300),
                 st.integers(max_value=-(10**30), min_value=-(10**300)))
TAGS = st.sampled_from(["domain", "name", "memory", "vcpu", "devices", "disk", "x", "q:a"])
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), HUGE, st.floats(), ANY_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(ANY_TEXT, inner, max_size=4)),
    max_leaves=40,
)


def _refused_or_value(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except ValidationError as e:
        assert e.messages


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 0) -> Element:
    """A random element tree (attributes holding '>', '/>' and quotes, text with '/')."""
    element = Element(draw(TAGS) if depth else "domain")
    element.set("type", "test")
    element.set("a", draw(st.sampled_from(["/>", ">", "'", '"', "x/y", "<!--"])))
    element.text = draw(st.sampled_from(["", "/", "/x/", "text", "]]>"]))
    if depth < 7:
        for _ in range(draw(st.integers(0, 2 if depth < 3 else 1))):
            child = draw(xml_trees(depth + 1))
            element.append(child)
    return element


def _tree_depth(element: Element) -> int:
    return 1 + max((_tree_depth(child) for child in element), default=0)


def _json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_json_depth(v) for v in value), default=0)
    return 0


# --- the scans read the true depth -------------------------------------------------------------

@SETTINGS
@given(tree=xml_trees(), comment=st.sampled_from(["", "<!-- <a><b> -->",
                                                  "<![CDATA[<c><d>]]>", "<?pi <e>?>"]))
def test_xml_depth_is_the_depth_of_the_tree(tree: Element, comment: str) -> None:
    text = tostring(tree, encoding="unicode").replace("&gt;", ">")  # '>' and '/>' in quotes
    text = text.replace("</domain>", f"{comment}</domain>", 1) if comment else text
    assert xml_depth(text) == _tree_depth(tree)


@SETTINGS
@given(value=JSON_VALUES)
def test_json_depth_is_the_depth_of_the_value(value: Any) -> None:
    raw = json.dumps(value, ensure_ascii=True).encode()
    assert json_depth(raw) == _json_depth(value)
    assert json_depth(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) \
        == _json_depth(value)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 100_000])
def test_json_too_deep_names_the_path_and_the_limit(depth: int) -> None:
    raw = b'{"spec": {"meta": ' + b"[" * depth + b"]" * depth + b"}}"
    found = json_too_deep(raw)
    if depth + 2 <= MAX_JSON_DEPTH:
        assert found is None
    else:
        assert found == {"spec": {"meta": {"0": {"0": [  # the path, cut after 4
            f"Nested {depth + 2} levels deep; at most {MAX_JSON_DEPTH} levels are allowed."]}}}}


def test_scans_end_on_unterminated_text() -> None:
    assert json_depth(b'["' + b'\\"' * 10_000 + b"\\") == 1
    assert xml_depth("<a b='" + "<c>" * 10_000) == 1
    assert xml_depth("<!--" * 10_000) == 0


# --- the validators answer ValidationError or a value, nothing else ------------------------------

@SETTINGS
@given(text=ANY_TEXT)
def test_names_refuse_with_a_message(text: str) -> None:
    if is_valid_name(text):
        validate_name(text)
        return
    with pytest.raises(ValidationError) as refused:
        validate_name(text)
    if lone_surrogate(text) is not None:
        assert "lone surrogate" in str(refused.value.messages)


@SETTINGS
@given(tree=xml_trees(), noise=ANY_TEXT, number=HUGE, at=st.integers(0, 400))
def test_domain_xml_checks_never_fail_otherwise(tree: Element, noise: str, number: int,
                                                at: int) -> None:
    for element in tree.iter():
        if element.tag in ("name", "memory", "vcpu"):
            element.text = str(number) if element.tag != "name" else "vm1"
    text = tostring(tree, encoding="unicode")
    mangled = text[:at] + noise + text[at:]
    for xml in (text, mangled, text.replace(" a=", " a='1' a=", 1)):  # duplicate attribute
        _refused_or_value(normalize_domain_xml, xml, "vm1")
        _refused_or_value(domain_resources, xml)
        _refused_or_value(rename_domain_xml, xml, "vm1", "vm2")


@pytest.mark.parametrize("depth", [MAX_XML_DEPTH + 1, 5000])
def test_deep_xml_is_refused_before_anything_recurses(depth: int) -> None:
    body = "<x>" * depth + "</x>" * depth
    xml = f"<domain type='test'><name>vm1<!--c--></name><metadata>{body}</metadata></domain>"
    for fn, args in ((normalize_domain_xml, (xml, "vm1")), (domain_resources, (xml,)),
                     (rename_domain_xml, (xml, "vm1", "vm2"))):
        with pytest.raises(ValidationError, match=f"nests elements {depth + 2} levels deep"):
            fn(*args)


def test_surrogates_in_xml_are_refused_naming_the_position() -> None:
    xml = "<domain type='test'><name>vm1</name><description>\udc80</description></domain>"
    with pytest.raises(ValidationError, match=r"lone surrogate \(U\+DC80 at position 49\)"):
        normalize_domain_xml(xml, "vm1")


@SETTINGS
@given(pattern=ANY_TEXT, names=st.lists(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}",
                                                      fullmatch=True), max_size=5))
def test_limit_filters_compile_or_refuse(pattern: str, names: list[str]) -> None:
    try:
        compiled = compile_limit(pattern)
    except ValidationError as e:
        assert e.messages
        return
    assert len(match_names(compiled, names)) == len(names)


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(a)\\1", "(?=a)", "x{1001}", "\ud800",
                                     "(" * 200, "a{2,4294967296}"])
def test_limit_filters_python_could_not_take_are_refused(pattern: str) -> None:
    with pytest.raises(ValidationError):
        VMListQuery().load({"limit": pattern})


def test_a_pathological_pattern_matches_at_once() -> None:
    found = match_names(compile_limit("^(a+)+$"), ["a" * 60 + "!", "a" * 60])
    assert found == [False, True]


def test_match_names_stops_at_its_time_limit() -> None:
    with pytest.raises(TimeoutError):
        match_names(compile_limit("web"), ["web1"] * 1000, until=0.0)


@SETTINGS
@given(body=st.dictionaries(st.sampled_from(["xml", "node", "limits", "selector", "labels",
                                             "autorestart", "shutdown_timeout", "state"]),
                            JSON_VALUES, max_size=6))
def test_request_schemas_refuse_with_messages(body: dict[str, Any]) -> None:
    for schema in (VMDefineRequest(), VMModifyRequest()):
        _refused_or_value(schema.load, body)


# --- surrogates and duplicate keys of JSON bodies ------------------------------------------------

@SETTINGS
@given(value=JSON_VALUES)
def test_surrogate_error_names_a_string_holding_one(value: Any) -> None:
    found = surrogate_error(value)
    text = json.dumps(value, ensure_ascii=False)
    assert (found is None) == (lone_surrogate(text) is None)


def test_duplicate_keys_are_named() -> None:
    raw = b'{"objects": [{"kind": "VM", "kind": "Node"}]}'
    with pytest.raises(DuplicateKey):
        json.loads(raw, object_pairs_hook=unique_keys)
    assert duplicate_key_error(raw) == {"objects": {"0": {"kind": [
        "Given more than once in one object; give it once."]}}}
