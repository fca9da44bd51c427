"""The files of `apply`, `diff` and `delete -f`: read, parse, validate, before any request.

- `expand(paths)`: files as given; a directory gives its `*.yaml`, `*.yml` and `*.json`
  files, sorted (not recursive); `-` is standard input;
- `parse(text, source)`: every document of a multi-document YAML text (JSON is YAML too),
  with where it starts; a document that is a list gives one object per element; empty
  documents are skipped. A syntax error raises `ManifestError` naming the file, line and
  column;
- `validate(docs)`: every document is loaded with the schema of its kind
  (`schemas.node.load_object`) after dropping the read-only parts that `get` prints
  (status, placement...: the server drops them too); ALL errors of all documents are
  collected and raised together, each naming the file, the line and column of the field,
  the document (number, kind/name) and the field's path. A kind/name given twice is an
  error too. Nothing is sent unless every document is valid.
Called by `ctl.cmd_objects`; tested by tests/unit/test_ctl_manifests.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from ctl.errors import InputError, flatten
from schemas.node import load_object

SUFFIXES = (".yaml", ".yml", ".json")
READ_ONLY = {"VM": ("placement", "status", "owner"), "Node": ("status", "alive", "primary"),
             "Pool": ("nodes",), "Volume": ("status", "deletion", "leftovers")}


class ManifestError(InputError):
    """The files cannot be applied as they are; the message lists every problem."""


@dataclass(frozen=True)
class Document:
    """One object of a file: where it is and what it holds."""

    source: str
    number: int  # 1-based, in its file
    node: yaml.Node  # the composed YAML node: positions of every field
    body: Any

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def label(self) -> str:
        kind = self.body.get("kind", "?") if isinstance(self.body, dict) else "?"
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        name = meta.get("name", "?") if isinstance(meta, dict) else "?"
        return f"document {self.number} ({str(kind).lower()}/{name})"


def expand(paths: Sequence[str]) -> list[str]:
    """The files to read, in order (see the module docstring)."""
    out: list[str] = []
    for given in paths:
        path = Path(given)
        if given == "-" or not path.is_dir():
            out.append(given)
            continue
        found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if not found:
            raise ManifestError(f"{given}: no .yaml, .yml or .json file in this directory")
        out += [str(p) for p in found]
    return out


def read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text()
    except OSError as e:
        raise ManifestError(f"{source}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{source}: not a text file (UTF-8)") from None


def _syntax_error(source: str, e: yaml.YAMLError) -> ManifestError:
    """`file:line:column: YAML syntax error: problem`, with where the construct began."""
    if not isinstance(e, yaml.MarkedYAMLError) or e.problem_mark is None:
        return ManifestError(f"{source}: YAML syntax error: {e}")
    mark, context = e.problem_mark, e.context_mark
    text = f"{source}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {e.problem}"
    if e.context and context is not None:
        text += f" ({e.context} started at line {context.line + 1}, column {context.column + 1})"
    elif e.context:
        text += f" ({e.context})"
    return ManifestError(text)


def _composed(text: str) -> Iterator[tuple[yaml.Node, Any]]:
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node() said there is one
            yield node, loader.construct_document(node)
    finally:
        loader.dispose()


def parse(text: str, source: str) -> list[Document]:
    """The objects of one file (see the module docstring)."""
    docs: list[Document] = []
    try:
        for node, body in _composed(text):
            if body is None:
                continue
            if isinstance(body, list) and isinstance(node, yaml.SequenceNode):
                docs += [Document(source, len(docs) + i, n, b)
                         for i, (n, b) in enumerate(zip(node.value, body, strict=True), 1)]
            else:
                docs.append(Document(source, len(docs) + 1, node, body))
    except yaml.YAMLError as e:
        raise _syntax_error(source, e) from None
    return docs


def load_files(paths: Sequence[str]) -> list[Document]:
    docs: list[Document] = []
    for source in expand(paths):
        docs += parse(read(source), source)
    if not docs:
        raise ManifestError("no objects in " + ", ".join(paths))
    return docs


def strip_read_only(body: Any) -> Any:
    if not isinstance(body, dict):
        return body
    drop = READ_ONLY.get(str(body.get("kind")), ())
    return {k: v for k, v in body.items() if k not in drop}


def locate(node: yaml.Node, path: str) -> yaml.Mark:
    """Where the field at `path` (`spec.meta.limits[0]`) is; its nearest ancestor when the
    field is absent (a missing field is reported at its parent)."""
    steps = path.replace("[", ".[").split(".") if path else []
    for step in steps:
        child: yaml.Node | None = None
        if step.startswith("[") and isinstance(node, yaml.SequenceNode):
            index = int(step[1:-1])
            child = node.value[index] if index < len(node.value) else None
        elif isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == step), None)
        if child is None:
            break
        node = child
    return node.start_mark


def _problems(doc: Document, error: ValidationError) -> list[str]:
    """One line per field error, in the order of the file."""
    found = []
    for path, message in flatten(error.messages):
        mark = locate(doc.node, path)
        found.append(((mark.line, mark.column), f"{doc.source}:{mark.line + 1}:"
                      f"{mark.column + 1}: {doc.label()}: {path or '(document)'}: {message}"))
    return [text for _, text in sorted(found)]


def _duplicates(docs: Sequence[Document]) -> list[str]:
    first: dict[tuple[str, str], Document] = {}
    out = []
    for doc in docs:
        name = str(doc.body["metadata"]["name"])
        if doc.body["kind"] == "Volume":  # a volume's name is its pool's
            name = f"{doc.body['spec']['pool']}/{name}"
        key = (str(doc.body["kind"]), name)
        if key in first:
            other = first[key]
            out.append(f"{doc.source}:{doc.line}: {doc.label()}: also given in {other.source} "
                       f"line {other.line}; give each object once")
        first.setdefault(key, doc)
    return out


def validate(docs: Sequence[Document]) -> list[dict[str, Any]]:
    """Every document, read-only parts dropped, once all are valid (else ManifestError)."""
    problems: list[str] = []
    bodies = []
    for doc in docs:
        body = strip_read_only(doc.body)
        try:
            load_object(body)
        except ValidationError as e:
            problems += _problems(doc, e)
        bodies.append(body)
    if not problems:
        problems = _duplicates(docs)
    if problems:
        count = len(problems)
        head = f"{count} problem{'s' if count > 1 else ''}; nothing was sent:"
        raise ManifestError("\n".join([head, *("  " + p for p in problems)]))
    return bodies
