"""`herdctl vm ...`: define, meta, list, info, the state verbs, migrate/move/unmigrate,
rename and remove, over the REST API (DESIGN.md section 5).

Each command builds a request from its options (`meta_body`, `parse_limits`: pure, and
tested), sends it, and prints what `ctl.output`/`ctl.views` make of the answer. Waiting
verbs (`--wait`) ask the server to answer once the VM got there, within `--timeout`.
Registered by `ctl.main`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ctl.client import ApiError
from ctl.cmd_console import current_figures
from ctl.common import Ctl, emit, output_option, pass_ctl, term_width, wait_option
from ctl.moveprogress import MoveProgress
from ctl.output import FORMATS, pairs, render, to_json, to_yaml
from ctl.views import (
    EVENT_COLUMNS,
    VM_COLUMNS,
    limits_text,
    selector_text,
    vm_info,
)
from schemas.domaindisks import volume_keys
from schemas.names import is_valid_name
from vocabulary import MigrationMethod, Selector, StateVerb, VMState

F = Callable[..., Any]


def parse_limits(text: str) -> list[str]:
    """`hv1,hv2` → ["hv1", "hv2"]; an empty text → [] (any node). Bad names raise."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if not is_valid_name(n)]
    if bad:
        raise click.BadParameter(f"not a node name: {', '.join(bad)}", param_hint="--limit")
    if len(set(names)) != len(names):
        raise click.BadParameter("a node is named twice", param_hint="--limit")
    return names


def meta_body(*, limit: str | None, selector: str | None, autorestart: bool | None,
              migration_method: str | None, shutdown_timeout: int | None,
              migration_max_downtime: int | None = None, max_restart: int | None = None,
              max_relocate: int | None = None) -> dict[str, Any]:
    """The metadata fields of a define or meta request: only the options given."""
    body: dict[str, Any] = {}
    if limit is not None:
        body["limits"] = parse_limits(limit)
    if selector is not None:
        body["selector"] = selector
    if autorestart is not None:
        body["autorestart"] = autorestart
    if migration_method is not None:
        body["migration_method"] = migration_method
    if shutdown_timeout is not None:
        body["shutdown_timeout"] = shutdown_timeout
    if migration_max_downtime is not None:
        body["migration_max_downtime"] = migration_max_downtime
    if max_restart is not None:
        body["max_restart"] = max_restart
    if max_relocate is not None:
        body["max_relocate"] = max_relocate
    return body


def meta_options(func: F) -> F:
    options = [
        click.option("--limit", metavar="NODE,NODE", help="nodes it may run on "
                     "(comma-separated; '' for any node)"),
        click.option("--selector", type=click.Choice([s.value for s in Selector]),
                     help="how a node is chosen (none: the cluster default)"),
        click.option("--autorestart/--no-autorestart", default=None,
                     help="start it again when its node comes back, if nothing else fits"),
        click.option("--migration-method", type=click.Choice([m.value for m in MigrationMethod]),
                     help="how it moves between nodes"),
        click.option("--migration-max-downtime", type=click.IntRange(1, 60000), metavar="MS",
                     help="longest final pause of a live migration (default: libvirt's)"),
        click.option("--shutdown-timeout", type=click.IntRange(1, 86400), metavar="SECONDS",
                     help="a graceful shutdown is forced after this long"),
        click.option("--max-restart", type=click.IntRange(0, 100), metavar="N",
                     help="restarts in place after failures or crashes (default 1)"),
        click.option("--max-relocate", type=click.IntRange(0, 100), metavar="N",
                     help="other nodes tried after that, before it is failed (default 1)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("vm")
def vm_group() -> None:
    """Virtual machines."""


@vm_group.command("define")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--node", help="the node to place it on (default: its selector picks)")
@click.option("--state", type=click.Choice(["running", "stopped"]), help="desired state")
@meta_options
@pass_ctl
def define(ctl: Ctl, /, file: str, *, node: str | None, state: str | None,
           **meta: Any) -> None:
    """Define a VM from a libvirt domain XML FILE ('-': standard input)."""
    xml = sys.stdin.read() if file == "-" else Path(file).read_text()
    body: dict[str, Any] = {"xml": xml, **meta_body(**meta)}
    if node is not None:
        body["node"] = node
    if state is not None:
        body["state"] = state
    vm = ctl.client.post("/vm", body)
    placed = (vm.get("placement") or {}).get("node")
    emit(f"vm/{vm['metadata']['name']} defined" + (f", placed on {placed}" if placed else ""))


@vm_group.command("meta")
@click.argument("name")
@meta_options
@pass_ctl
def meta(ctl: Ctl, /, name: str, **options: Any) -> None:
    """Change a VM's metadata: only the options given change (to move it: `vm move`)."""
    body = meta_body(**options)
    if not body:
        raise click.UsageError("nothing to change: give at least one of --limit, --selector, "
                               "--autorestart/--no-autorestart, --migration-method, "
                               "--migration-max-downtime, --shutdown-timeout, --max-restart, "
                               "--max-relocate")
    view = ctl.client.post(f"/vm/{name}/meta", body)
    emit(f"vm/{name} metadata changed")
    emit(pairs([("Limits", limits_text(view.get("limits"))),
                ("Selector", selector_text(view.get("selector"))),
                ("Autorestart", "yes" if view.get("autorestart") else "no"),
                ("Migration method", str(view.get("migration_method"))),
                ("Migration max downtime", f"{view['migration_max_downtime']} ms"
                 if view.get("migration_max_downtime") else "libvirt default"),
                ("Shutdown timeout", f"{view['shutdown_timeout']}s"
                 if view.get("shutdown_timeout") else "cluster default"),
                ("Restart limits", f"{view.get('max_restart', 1)} in place, then "
                 f"{view.get('max_relocate', 1)} other node(s)")]))


@vm_group.command("list")
@output_option(*FORMATS, default="table")
@click.option("--node", help="only VMs placed or running on this node")
@click.option("--state", type=click.Choice([s.value for s in VMState]),
              help="only VMs in this observed state")
@click.option("--name", "pattern", metavar="REGEX",
              help="only VMs whose name matches REGEX, searched in the name (RE2 syntax: "
              "a word matches names containing it, ^web[0-9]$ anchors; no backreferences "
              "or lookaround)")
@pass_ctl
def list_vms(ctl: Ctl, fmt: str, *, node: str | None, state: str | None,
             pattern: str | None) -> None:
    """List VMs (wide: with their metadata)."""
    answer = ctl.client.get("/vm", node=node, state=state, limit=pattern,
                            xml=True if fmt in ("json", "yaml") else None)
    emit(render(answer["items"], fmt, columns=VM_COLUMNS, kind="vm", width=term_width()))


@vm_group.command("events")
@click.argument("name")
@output_option(*FORMATS, default="table")
@click.option("--kind", help="only events of this kind (migrated, migration-failed, ...)")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="at most this many, the newest")
@pass_ctl
def events(ctl: Ctl, name: str, *, fmt: str, kind: str | None, limit: int) -> None:
    """A VM's history: live migrations (duration, downtime), recoveries, decisions."""
    answer = ctl.client.get("/event", vm=name, kind=kind, limit=limit)
    emit(render(answer["items"], fmt, columns=EVENT_COLUMNS, kind="event", width=term_width()))


@vm_group.command("info")
@click.argument("name")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def info(ctl: Ctl, name: str, *, fmt: str) -> None:
    """Everything about one VM."""
    vm = ctl.client.get(f"/vm/{name}")
    if fmt != "text":
        emit(to_json(vm) if fmt == "json" else to_yaml(vm))
        return
    disks = volume_keys(vm["spec"].get("xml")) if isinstance(vm.get("spec"), dict) else set()
    volumes = [_volume(ctl, key) for key in sorted(disks)]
    running = (vm.get("status") or {}).get("state") == "running"
    emit(vm_info(vm, defaults=ctl.client.get("/status").get("config", {}), volumes=volumes,
                 figures=current_figures(ctl, f"/vm/{name}/figures", "figures")
                 if running else None))


def _volume(ctl: Ctl, key: str) -> dict[str, Any]:
    """The volume as the API has it (a missing one: its name and state `missing`)."""
    try:
        found: dict[str, Any] = ctl.client.get(f"/volume/{key}")
        return found
    except ApiError as e:
        if e.status != 404:
            raise
        pool, _, name = key.partition("/")
        return {"metadata": {"name": name}, "spec": {"pool": pool}, "status": {
            "state": "missing"}}


def _state_result(name: str, view: dict[str, Any], *, verb: str, waited: bool) -> str:
    state, node = view.get("state") or "unknown", view.get("node")
    where = f" on {node}" if node else ""
    if waited:
        return f"vm/{name} {state}{where}"
    return f"vm/{name}: {verb} requested (desired {view.get('desired')}; now {state}{where})"


def _state_verb(verb: str, help_text: str) -> click.Command:
    @click.argument("name")
    @wait_option
    @pass_ctl
    def command(ctl: Ctl, name: str, *, wait: bool) -> None:
        body: dict[str, Any] = {"state": verb, "wait": wait}
        if wait:
            body["timeout"] = ctl.timeout
        view = ctl.client.post(f"/vm/{name}/state", body)
        emit(_state_result(name, view, verb=verb, waited=wait))
    command.__doc__ = help_text
    return click.command(verb)(command)


VERB_HELP = {
    StateVerb.START: "Start a VM (desired: running); aborts a shutdown in progress.",
    StateVerb.SHUTDOWN: "Shut a VM down gracefully (ACPI), forced after its shutdown timeout.",
    StateVerb.STOP: "Stop a VM now (forced off).",
    StateVerb.RESTART: "Restart a VM: a graceful shutdown, then start.",
    StateVerb.DISABLE: "Stop a VM and keep it out of autorestart and recovery.",
}
for _verb, _help in VERB_HELP.items():
    vm_group.add_command(_state_verb(_verb.value, _help))


def _placement_result(name: str, view: dict[str, Any], *, waited: bool) -> str:
    node, state = view.get("node"), view.get("state") or "unknown"
    last = view.get("lastNode")
    tail = f" (returns to {last} on unmigrate)" if last else ""
    if waited:
        return f"vm/{name} {state} on {view.get('runningOn') or node}{tail}"
    return f"vm/{name} placed on {node}: {view.get('reason')}{tail}"


def _node_action(action: str, help_text: str, *, target: bool) -> click.Command:
    def command(ctl: Ctl, name: str, *, wait: bool, node: str | None = None,
                force: bool = False) -> None:
        body: dict[str, Any] = {"action": action, "wait": wait}
        if node is not None:
            body["node"] = node
        if force:
            body["force"] = True
        if not wait:
            view = ctl.client.post(f"/vm/{name}/node", body)
        else:
            body["timeout"] = ctl.timeout
            with MoveProgress(ctl.client, name, timeout=ctl.timeout):
                view = ctl.client.post(f"/vm/{name}/node", body)
        emit(_placement_result(name, view, waited=wait))
    command.__doc__ = help_text
    decorated: Callable[..., Any] = pass_ctl(command)
    decorated = wait_option(decorated)
    if target:
        decorated = click.option("--node", help="target node (default: its selector "
                                 "picks)")(decorated)
    if action == "migrate":
        decorated = click.option("--force", is_flag=True, help="migrate a migrated VM again, "
                                 "keeping its first last node")(decorated)
    return click.command(action)(click.argument("name")(decorated))


vm_group.add_command(_node_action("migrate", "Move a VM for a while (unmigrate brings it "
                                  "back).", target=True))
vm_group.add_command(_node_action("move", "Move a VM for good.", target=True))
vm_group.add_command(_node_action("unmigrate", "Bring a migrated VM back to its last node.",
                                  target=False))


@vm_group.command("rename")
@click.argument("old")
@click.argument("new")
@pass_ctl
def rename(ctl: Ctl, old: str, *, new: str) -> None:
    """Rename a stopped VM."""
    ctl.client.post(f"/vm/{old}/rename", {"new_name": new})
    emit(f"vm/{old} renamed to {new}")


@vm_group.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="remove it even if it runs")
@click.option("--delete-volumes", is_flag=True,
              help="delete the volumes it holds alone too (else they stay, detached)")
@pass_ctl
def remove(ctl: Ctl, name: str, *, force: bool, delete_volumes: bool) -> None:
    """Remove a VM (it must be stopped, unless --force)."""
    ctl.client.call("DELETE", f"/vm/{name}", query={"force": force or None,
                                                    "delete_volumes": delete_volumes or None})
    emit(f"vm/{name} removed" + (" with its volumes" if delete_volumes else ""))
