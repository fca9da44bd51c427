"""herdctl's formatters: tables that fit the terminal, wide columns, YAML that `apply`
reads back, JSON, names, and the `info` blocks (no I/O)."""

from __future__ import annotations

import json

import yaml

from ctl.output import Column, dash, pairs, render, shorten, table, to_yaml

COLUMNS = (
    Column("NAME", lambda r: r["name"]),
    Column("STATE", lambda r: r["state"]),
    Column("EXTRA", lambda r: r["extra"], wide=True),
    Column("REASON", lambda r: r["reason"], flex=True),
)
ROWS = [{"name": "web1", "state": "running", "extra": "x", "reason": "a" * 60},
        {"name": "db-long-name", "state": "stopped", "extra": "y", "reason": "short"}]


def test_a_table_aligns_columns_under_their_headers() -> None:
    lines = table(ROWS, COLUMNS).splitlines()
    assert lines[0].split() == ["NAME", "STATE", "REASON"]
    assert lines[1].index("running") == lines[0].index("STATE") == lines[2].index("stopped")
    assert all(line == line.rstrip() for line in lines)


def test_wide_adds_the_wide_columns() -> None:
    assert "EXTRA" not in table(ROWS, COLUMNS)
    assert table(ROWS, COLUMNS, wide=True).splitlines()[0].split() == [
        "NAME", "STATE", "EXTRA", "REASON"]


def test_a_table_fits_the_width_by_shortening_the_flexible_columns() -> None:
    text = table(ROWS, COLUMNS, width=50)
    assert max(len(line) for line in text.splitlines()) <= 50
    assert "…" in text.splitlines()[1]
    assert "db-long-name" in text  # fixed columns are never shortened


def test_without_a_width_nothing_is_shortened() -> None:
    assert "a" * 60 in table(ROWS, COLUMNS)


def test_shorten_marks_what_it_cut() -> None:
    assert shorten("abcdef", 4) == "abc…"
    assert shorten("abc", 4) == "abc"


def test_yaml_of_several_objects_is_one_document_each_and_keeps_xml_readable() -> None:
    objs = [{"kind": "VM", "metadata": {"name": n}, "spec": {"xml": "<domain>\n</domain>\n"}}
            for n in ("a", "b")]
    text = to_yaml(objs)
    assert text.startswith("---") and text.count("\n---") == 1
    assert "xml: |" in text
    assert list(yaml.safe_load_all(text)) == objs


def test_yaml_of_one_object_is_one_plain_document() -> None:
    assert yaml.safe_load(to_yaml({"a": [1, 2]})) == {"a": [1, 2]}


def test_render_json_and_names() -> None:
    objs = [{"metadata": {"name": "web1"}}, {"metadata": {"name": "web2"}}]
    assert json.loads(render(objs, "json")) == objs
    assert render(objs, "name", kind="vm") == "vm/web1\nvm/web2"


def test_pairs_align_values_and_indent_further_lines() -> None:
    text = pairs([("Name", "web1"), ("Conditions", "A=True\nB=False")])
    assert text.splitlines() == ["Name:       web1", "Conditions: A=True", "            B=False"]


def test_dash_shows_nothing_as_a_dash_and_booleans_as_words() -> None:
    assert [dash(None), dash(""), dash([]), dash(True), dash(False), dash(["a", "b"])] == [
        "-", "-", "-", "yes", "no", "a,b"]
