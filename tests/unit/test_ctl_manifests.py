"""Reading `apply -f` files: multi-document YAML, syntax errors with file, line and
column, schema errors naming the document and the field (at the field's own line),
duplicates, read-only parts dropped (no I/O: texts are parsed from strings)."""

from __future__ import annotations

import pytest

from ctl.manifests import ManifestError, parse, strip_read_only, validate

XML = "<domain type='test'><name>{n}</name><memory unit='MiB'>64</memory></domain>"


def vm_doc(name: str, extra: str = "") -> str:
    return (f"apiVersion: herd/v1\nkind: VM\nmetadata: {{name: {name}}}\nspec:\n"
            f"  xml: \"{XML.format(n=name)}\"\n{extra}")


def test_every_document_of_a_multi_document_file_with_its_line() -> None:
    text = vm_doc("a") + "---\n" + vm_doc("b") + "---\n"
    docs = parse(text, "x.yaml")
    assert [d.body["metadata"]["name"] for d in docs] == ["a", "b"]
    assert [d.line for d in docs] == [1, 7]
    assert validate(docs)[1]["metadata"]["name"] == "b"


def test_a_list_document_gives_one_object_per_element() -> None:
    text = "- {apiVersion: herd/v1, kind: Node, metadata: {name: hv1}}\n" \
           "- {apiVersion: herd/v1, kind: Node, metadata: {name: hv2}}\n"
    docs = parse(text, "-")
    assert [d.label() for d in docs] == ["document 1 (node/hv1)", "document 2 (node/hv2)"]
    assert docs[1].line == 2


def test_a_syntax_error_names_the_file_line_and_column() -> None:
    text = "apiVersion: herd/v1\nkind: VM\nmetadata: {name: x\nspec: 1\n"
    with pytest.raises(ManifestError) as e:
        parse(text, "bad.yaml")
    assert str(e.value).startswith("bad.yaml:4:5: YAML syntax error:")
    assert "started at line 3, column 11" in str(e.value)


def test_a_tab_indentation_error_is_positioned_too() -> None:
    with pytest.raises(ManifestError, match=r"^t.yaml:2:1: YAML syntax error"):
        parse("a: 1\n\tb: 2\n", "t.yaml")


def test_schema_errors_name_the_document_the_field_and_where_it_is() -> None:
    text = vm_doc("ok") + "---\n" + vm_doc("bad", "  state: runnin\n  meta:\n"
                                           "    limits: [hv1, HV2]\n")
    with pytest.raises(ManifestError) as e:
        validate(parse(text, "f.yaml"))
    lines = str(e.value).splitlines()
    assert lines[0] == "2 problems; nothing was sent:"
    assert lines[1].startswith("  f.yaml:12:10: document 2 (vm/bad): spec.state: Invalid state")
    assert lines[2].startswith("  f.yaml:14:19: document 2 (vm/bad): spec.meta.limits[1]: ")


def test_a_missing_field_is_reported_at_its_parent() -> None:
    text = "apiVersion: herd/v1\nkind: VM\nmetadata: {name: a}\nspec:\n  state: running\n"
    with pytest.raises(ManifestError, match=r"f.yaml:5:3: document 1 \(vm/a\): spec.xml: "
                                            r"Missing data"):
        validate(parse(text, "f.yaml"))


def test_an_unknown_kind_is_a_problem_of_the_document() -> None:
    with pytest.raises(ManifestError, match=r"document 1 \(pod/p\): kind: Unknown kind"):
        validate(parse("apiVersion: herd/v1\nkind: Pod\nmetadata: {name: p}\n", "p.yaml"))


def test_a_rule_is_checked_before_sending_too() -> None:
    rule = "apiVersion: herd/v1\nkind: Rule\nmetadata: {name: pair}\nspec:\n  kind: apart\n"
    assert validate(parse(rule + "  vms: [a, b]\n", "r.yaml"))[0]["kind"] == "Rule"
    with pytest.raises(ManifestError, match=r"r.yaml:6:8: document 1 \(rule/pair\): spec.vms: "
                                            r"VM 'a' is named twice"):
        validate(parse(rule + "  vms: [a, a]\n", "r.yaml"))


def test_an_object_given_twice_is_refused() -> None:
    docs = parse(vm_doc("a") + "---\n" + vm_doc("a"), "d.yaml")
    with pytest.raises(ManifestError, match=r"also given in d\.yaml line 1"):
        validate(docs)


def test_what_get_prints_besides_the_object_is_dropped() -> None:
    vm = {"kind": "VM", "metadata": {}, "spec": {}, "status": {}, "placement": {},
          "owner": "hv1"}
    node = {"kind": "Node", "spec": {}, "status": {}, "alive": True, "primary": False}
    assert set(strip_read_only(vm)) == {"kind", "metadata", "spec"}
    assert set(strip_read_only(node)) == {"kind", "spec"}


def test_empty_documents_are_skipped() -> None:
    assert parse("---\n---\n# nothing\n", "e.yaml") == []
