"""Formatters: what herdctl prints, from the data a command returned. Pure: no I/O.

- `table(rows, columns, wide=, width=)`: aligned columns; `wide` adds the columns marked
  wide; with a `width` (the terminal's) the flexible columns are shortened (ending in
  `…`) until the table fits;
- `to_json`, `to_yaml` (several objects → one YAML document each, so that the output of
  `get -o yaml` is a valid `apply -f` file; multi-line strings such as domain XML as
  literal blocks), `names` (`vm/web1`, one a line);
- `render(data, fmt, ...)` picks one of them by the `-o` value;
- `pairs(...)`: the `Label:  value` blocks of `vm info` and `node info`.
Called by the command modules and `ctl.progress`; tested by tests/unit/test_ctl_output.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

FORMATS = ("table", "wide", "json", "yaml", "name")
GAP = "   "
MIN_FLEX = 6  # a shortened column keeps at least this many characters


@dataclass(frozen=True)
class Column:
    """One table column: its header, how a row gives its cell, and how it may change."""

    header: str
    cell: Callable[[dict[str, Any]], str]
    wide: bool = False  # only with -o wide
    flex: bool = False  # may be shortened to fit the terminal


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _fit(widths: list[int], columns: Sequence[Column], *, width: int) -> list[int]:
    """Narrow the widest flexible columns, one character at a time, until the row fits."""
    out = list(widths)
    excess = sum(out) + len(GAP) * (len(out) - 1) - width
    while excess > 0:
        flexible = [i for i, c in enumerate(columns) if c.flex and out[i] > MIN_FLEX]
        if not flexible:
            break
        widest = max(flexible, key=lambda i: out[i])
        out[widest] -= 1
        excess -= 1
    return out


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], *, wide: bool = False,
          width: int | None = None) -> str:
    """The rows as an aligned table with a header line (no trailing spaces)."""
    shown = [c for c in columns if wide or not c.wide]
    cells = [[c.cell(row) for c in shown] for row in rows]
    widths = [max([len(c.header), *(len(r[i]) for r in cells)]) for i, c in enumerate(shown)]
    if width is not None:
        widths = _fit(widths, shown, width=width)
    lines = []
    for line in [[c.header for c in shown], *cells]:
        parts = [shorten(text, widths[i]).ljust(widths[i]) for i, text in enumerate(line)]
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings as literal blocks (`|`)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(data: Any) -> str:
    """One document; a list of objects becomes one document per object (`---`). The text
    ends with its newline (a literal block's last line break is part of its value)."""
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        return yaml.dump_all(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                             explicit_start=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def names(objects: Sequence[dict[str, Any]], kind: str) -> str:
    return "\n".join(f"{kind}/{o.get('metadata', {}).get('name', o.get('name', '?'))}"
                     for o in objects)


def render(data: Any, fmt: str, *, columns: Sequence[Column] = (), kind: str = "",
           width: int | None = None) -> str:
    """`data` (a list of objects, or one object) in the `-o` format `fmt`."""
    if fmt == "json":
        return to_json(data)
    if fmt == "yaml":
        return to_yaml(data)
    rows = data if isinstance(data, list) else [data]
    if fmt == "name":
        return names(rows, kind)
    if fmt in ("table", "wide"):
        return table(rows, columns, wide=fmt == "wide", width=width)
    raise ValueError(f"unknown output format {fmt!r}")


def pairs(items: Sequence[tuple[str, str]]) -> str:
    """`Label:  value` lines, values aligned; a value's further lines are indented."""
    if not items:
        return ""
    pad = max(len(label) for label, _ in items) + 2
    lines = []
    for label, value in items:
        first, *rest = (value or "-").split("\n")
        lines.append(f"{label + ':':<{pad}}{first}".rstrip())
        lines += [" " * pad + more for more in rest]
    return "\n".join(lines)


def dash(value: Any) -> str:
    """A table cell: `-` for nothing, yes/no for booleans, text otherwise."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
