"""`herdctl config get|set`: the cluster's defaults (`GET|POST /config`; changing them needs
an admin token): the selector, shutdownTimeout, fenceTimeout, selfFenceTimeout, maintenance,
shutdownPolicy, xmlPolicy.

`get` prints the document (text, json or yaml; the yaml feeds back into `set -f`).
`set KEY=VALUE ...` and/or `set -f FILE` change only the fields named: each VALUE is read
as YAML (`maintenance=true`, `shutdownTimeout=120`, `selector=vcpus`), a FILE holds a
mapping of fields. The server validates the merged document and names any bad field;
nothing is changed then. Registered by `ctl.main`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from ctl.common import Ctl, emit, output_option, pass_ctl
from ctl.errors import InputError
from ctl.output import pairs, to_json, to_yaml

READ_ONLY = ("resourceVersion",)  # in `get`'s answer, never sent back


@click.group("config")
def config_group() -> None:
    """The cluster's defaults (changing them needs an admin token)."""


def config_text(doc: dict[str, Any]) -> str:
    return pairs([(key, value if isinstance(value, str) else json.dumps(value))
                  for key, value in sorted(doc.items())])


@config_group.command("get")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def get_command(ctl: Ctl, fmt: str) -> None:
    """Show the cluster's defaults."""
    doc: dict[str, Any] = ctl.client.get("/config")
    emit(config_text(doc) if fmt == "text" else to_json(doc) if fmt == "json"
         else to_yaml(doc))


def _assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError(f"{text!r}: give KEY=VALUE (e.g. maintenance=true)")
    try:
        return key, yaml.safe_load(value) if value else ""
    except yaml.YAMLError as e:
        raise InputError(f"{key}: the value is not YAML: {e}") from None


def _file_changes(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"{path}: not YAML: {e}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: must hold a mapping of config fields")
    return {k: v for k, v in doc.items() if k not in READ_ONLY}


@config_group.command("set")
@click.argument("assignments", nargs=-1, metavar="KEY=VALUE...")
@click.option("-f", "--filename", type=click.Path(exists=True, dir_okay=False,
              allow_dash=True), help="a YAML mapping of fields (e.g. `config get -o yaml`)")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def set_command(ctl: Ctl, assignments: tuple[str, ...], *, filename: str | None,
                fmt: str) -> None:
    """Change the named defaults; the others stay as they are."""
    changes = _file_changes(filename) if filename else {}
    changes.update(_assignment(a) for a in assignments)
    if not changes:
        raise InputError("nothing to set: give KEY=VALUE or -f FILE")
    doc: dict[str, Any] = ctl.client.post("/config", changes)
    emit(config_text(doc) if fmt == "text" else to_json(doc) if fmt == "json"
         else to_yaml(doc))
