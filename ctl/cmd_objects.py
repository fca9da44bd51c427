"""`herdctl get | apply | diff | delete`: whole objects, as in YAML files (DESIGN.md §5).

- `get vm|node|network|rule [NAME] -o yaml` prints objects as the API has them; `apply -f`
  takes that output back unchanged (the read-only parts are dropped before sending);
- `apply -f FILE|DIR|- [--dry-run]`: every document is read and validated first
  (`ctl.manifests`); only then is the whole set sent to `POST /apply`, which applies it
  atomically; one line per object: `vm/web1 created|configured|unchanged`;
- `diff -f`: the same as a dry run, printing each change (field: old → new);
- `delete -f`: removes the VMs the files name (nodes are not deleted through the API).
Errors the server reports about one object name its file and document. Registered by
`ctl.main`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ctl.client import ApiError
from ctl.cmd_rule import RULE_COLUMNS
from ctl.common import Ctl, emit, output_option, pass_ctl, term_width
from ctl.errors import Failure, flatten, from_api
from ctl.manifests import Document, load_files, validate
from ctl.netviews import NETWORK_COLUMNS
from ctl.output import FORMATS, render
from ctl.views import NODE_COLUMNS, VM_COLUMNS

KINDS = {"vm": "vm", "vms": "vm", "node": "node", "nodes": "node", "network": "network",
         "networks": "network", "rule": "rule", "rules": "rule"}
COLUMNS = {"vm": VM_COLUMNS, "node": NODE_COLUMNS, "network": NETWORK_COLUMNS,
           "rule": RULE_COLUMNS}


def files_option(func: Any) -> Any:
    return click.option("-f", "--filename", "files", multiple=True, required=True,
                        metavar="FILE|DIR|-",
                        help="YAML (or JSON) file, directory of them, or '-' (repeatable)")(func)


@click.command("get")
@click.argument("kind", type=click.Choice(sorted(KINDS)))
@click.argument("name", required=False)
@output_option(*FORMATS, default="table")
@pass_ctl
def get(ctl: Ctl, kind: str, *, name: str | None, fmt: str) -> None:
    """Show VMs, nodes, networks or rules; `-o yaml` prints what `apply -f` accepts."""
    kind = KINDS[kind]
    columns = COLUMNS[kind]
    if name is not None:
        data: Any = ctl.client.get(f"/{kind}/{name}")
    elif kind == "vm":
        data = ctl.client.get("/vm", xml=True if fmt in ("json", "yaml") else None)["items"]
    else:
        data = ctl.client.get(f"/{kind}")["items"]
    emit(render(data, fmt, columns=columns, kind=kind, width=term_width()))


def _document_of(docs: Sequence[Document], index: Any) -> Document | None:
    try:
        return docs[int(index)]
    except (ValueError, TypeError, IndexError):
        return None


def apply_failure(e: ApiError, docs: Sequence[Document]) -> Failure:
    """The server's error, its per-object details naming the file and document."""
    failure = from_api(e)
    details = e.details if isinstance(e.details, dict) else {}
    per_object = details.get("objects")
    doc = _document_of(docs, details.get("index"))
    if doc is not None:
        failure = Failure(f"{doc.source}: {doc.label()}: {failure.message}",
                          details=failure.details)
    if isinstance(per_object, dict):
        lines = []
        for index, messages in per_object.items():
            found = _document_of(docs, index)
            where = f"{found.source}: {found.label()}" if found else f"object {index}"
            lines += [f"{where}: {path or '(document)'}: {msg}"
                      for path, msg in flatten(messages)]
        failure.details = lines
    return failure


def _send(ctl: Ctl, files: Sequence[str], *, dry_run: bool) -> list[dict[str, Any]]:
    docs = load_files(files)
    bodies = validate(docs)
    try:
        answer = ctl.client.post("/apply", {"objects": bodies, "dry_run": dry_run})
    except ApiError as e:
        raise apply_failure(e, docs) from None
    results: list[dict[str, Any]] = answer["results"]
    return results


def _value(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if "\n" not in text else "\n      " + text.replace("\n", "\n      ")


def change_lines(result: dict[str, Any]) -> list[str]:
    return [f"    {c['path']}: {_value(c['old'])} → {_value(c['new'])}"
            for c in result.get("changes", [])]


def result_line(result: dict[str, Any], *, dry_run: bool) -> str:
    suffix = " (dry run)" if dry_run else ""
    return f"{str(result['kind']).lower()}/{result['name']} {result['action']}{suffix}"


@click.command("apply")
@files_option
@click.option("--dry-run", is_flag=True, help="validate and show what would change; "
              "write nothing")
@pass_ctl
def apply(ctl: Ctl, files: tuple[str, ...], *, dry_run: bool) -> None:
    """Create or update the objects of the files (VMs, nodes, networks, pools, volumes,
    rules), all at once or none."""
    for result in _send(ctl, files, dry_run=dry_run):
        emit(result_line(result, dry_run=dry_run))
        if dry_run:
            emit("\n".join(change_lines(result)))


@click.command("diff")
@files_option
@pass_ctl
def diff(ctl: Ctl, files: tuple[str, ...]) -> None:
    """Show what `apply` would change, field by field."""
    changed = 0
    for result in _send(ctl, files, dry_run=True):
        if result["action"] == "unchanged":
            continue
        changed += 1
        emit(f"{str(result['kind']).lower()}/{result['name']} ({result['action']})")
        emit("\n".join(change_lines(result)))
    if not changed:
        emit("no differences")


@click.command("delete")
@files_option
@click.option("--force", is_flag=True, help="remove VMs even if they run")
@pass_ctl
def delete(ctl: Ctl, files: tuple[str, ...], *, force: bool) -> None:
    """Remove the VMs the files name (each on its own; nodes are left alone)."""
    docs = load_files(files)
    validate(docs)
    failed = 0
    for doc in docs:
        name = doc.body["metadata"]["name"]
        kind = str(doc.body["kind"]).lower()
        if kind == "node":
            click.echo(f"node/{name} skipped: nodes leave the cluster when their daemon "
                       "stops", err=True)
            continue
        if kind != "vm":
            click.echo(f"{kind}/{name} skipped: remove it with herdctl {kind} remove",
                       err=True)
            continue
        try:
            ctl.client.call("DELETE", f"/vm/{name}", query={"force": True} if force else None)
        except ApiError as e:
            failed += 1
            click.echo(f"herdctl: vm/{name}: {e.message} [{e.status} {e.code}]", err=True)
            continue
        emit(f"vm/{name} deleted")
    if failed:
        raise Failure(f"{failed} of the objects could not be deleted")
