"""`herdctl node list|info|flush|ready` and `herdctl cluster status`, over the REST API.

`flush`/`ready` with `--wait` open `GET /watch` first, then send the request, and print
each move of the VMs concerned as it happens (`ctl.progress`), then a summary; without
`--wait` they only send the request. Registered by `ctl.main`.
"""

from __future__ import annotations

from typing import Any

import click

from ctl.cmd_console import current_figures
from ctl.common import Ctl, emit, output_option, pass_ctl, term_width, wait_option
from ctl.output import FORMATS, render, to_json, to_yaml
from ctl.progress import follow
from ctl.views import NODE_COLUMNS, cluster_status, node_info, rebalance_text


@click.group("node")
def node_group() -> None:
    """Hypervisor nodes."""


@node_group.command("list")
@output_option(*FORMATS, default="table")
@pass_ctl
def list_nodes(ctl: Ctl, fmt: str) -> None:
    """List nodes with their states and resources."""
    answer = ctl.client.get("/node")
    emit(render(answer["items"], fmt, columns=NODE_COLUMNS, kind="node", width=term_width()))
    if fmt in ("table", "wide") and (ctl.client.get("/status").get("config") or {}).get(
            "maintenance"):
        click.echo("cluster maintenance is on: no node is fenced, no VM recovered", err=True)


@node_group.command("info")
@click.argument("name")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def info(ctl: Ctl, name: str, *, fmt: str) -> None:
    """Everything about one node."""
    node = ctl.client.get(f"/node/{name}")
    if fmt != "text":
        emit(to_json(node) if fmt == "json" else to_yaml(node))
        return
    up = (node.get("status") or {}).get("endpoint") and node.get("alive")
    emit(node_info(node, figures=current_figures(ctl, f"/node/{name}/figures", "total")
                   if up else None))


def summary_text(result: dict[str, Any]) -> str:
    """The last line of a waited flush or ready: what became of the VMs."""
    parts = []
    if result["moved"]:
        parts.append(f"{len(result['moved'])} moved (" + ", ".join(
            f"{m['name']} {m['from'] or '-'}→{m['to']}" for m in result["moved"]) + ")")
    if result["started"]:
        parts.append(f"{len(result['started'])} started (" + ", ".join(
            f"{s['name']} on {s['node']}" for s in result["started"]) + ")")
    if result["stopped"]:
        parts.append(f"{len(result['stopped'])} stopped (" + ", ".join(
            f"{s['name']}: {s['reason'] or s['state']}" for s in result["stopped"]) + ")")
    if result["stayed"]:
        parts.append(f"{len(result['stayed'])} running where they were")
    return f"node/{result['node']} {result['state']}: " + ("; ".join(parts) or "no VM concerned")


def _domain_verb(verb: str, help_text: str) -> click.Command:
    @click.argument("name")
    @wait_option
    @pass_ctl
    def command(ctl: Ctl, name: str, *, wait: bool) -> None:
        client = ctl.client
        if not wait:
            view = client.post(f"/node/{name}/domain-state", {"state": verb})
            emit(f"node/{name}: {verb} requested (now {view.get('state')})")
            return
        client.get(f"/node/{name}")  # a node that does not exist: 404 before any watch
        result = follow(client, node=name, verb=verb, timeout=ctl.timeout, say=emit,
                        request=lambda: client.post(f"/node/{name}/domain-state",
                                                    {"state": verb}))
        emit(summary_text(result))
    command.__doc__ = help_text
    return click.command(verb)(command)


node_group.add_command(_domain_verb("flush", "Move every VM off a node (they remember it)."))
node_group.add_command(_domain_verb("ready", "Let a node take VMs again; its VMs come back."))


@click.group("cluster")
def cluster_group() -> None:
    """The cluster as a whole."""


@cluster_group.command("status")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def status(ctl: Ctl, fmt: str) -> None:
    """The primary coordinator, nodes by state, VMs by state."""
    summary = ctl.client.get("/status")
    emit(cluster_status(summary) if fmt == "text" else to_json(summary) if fmt == "json"
         else to_yaml(summary))


@cluster_group.command("maintenance")
@click.argument("switch", type=click.Choice(["on", "off"]))
@pass_ctl
def maintenance(ctl: Ctl, switch: str) -> None:
    """Cluster maintenance: while on, no node is fenced and no VM recovered (admin)."""
    answer = ctl.client.post("/maintenance", {"maintenance": switch == "on"})
    emit("maintenance on: fencing and recovery are paused" if answer["maintenance"]
         else "maintenance off: failed nodes are fenced and their VMs recovered")


@cluster_group.command("rebalance")
@click.option("--dry-run", is_flag=True, help="show the plan, move nothing")
@click.option("--threshold", type=click.FloatRange(0, 1000), default=0.0, show_default=True,
              help="move only while each move lowers the imbalance by more than this")
@click.option("--selector", type=click.Choice(["mem", "memprov", "vcpus", "load", "vms"]),
              help="the measure to even out (default: the cluster's selector)")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def rebalance(ctl: Ctl, fmt: str, *, dry_run: bool, threshold: float,
              selector: str | None) -> None:
    """Even the nodes out by live migrations, within limits and affinity rules."""
    body = {"dryRun": dry_run, "threshold": threshold,
            **({"selector": selector} if selector else {})}
    plan = ctl.client.post("/rebalance", body)
    emit(rebalance_text(plan) if fmt == "text" else to_json(plan) if fmt == "json"
         else to_yaml(plan))
