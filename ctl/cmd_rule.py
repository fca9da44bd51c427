"""`herdctl rule list|info|add|remove` (issue #17): affinity rules, VMs kept `together` on
one node or `apart` on different nodes (strictly, or as a preference), over the REST API
(`/rule`; adding and removing needs an operator token). A rule naming VMs that do not
exist yet is added, with a warning for each on stderr. `RULE_COLUMNS` is also `herdctl get
rule`'s table. Registered by `ctl.main`.
"""

from __future__ import annotations

from typing import Any

import click

from ctl.common import Ctl, emit, output_option, pass_ctl, term_width
from ctl.output import FORMATS, Column, dash, render, to_json, to_yaml


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


RULE_COLUMNS = (
    Column("NAME", lambda r: str((r.get("metadata") or {}).get("name", "?"))),
    Column("KIND", lambda r: dash(_spec(r).get("kind"))),
    Column("STRICT", lambda r: dash(bool(_spec(r).get("strict")))),
    Column("VMS", lambda r: dash(_spec(r).get("vms")), flex=True),
)


@click.group("rule")
def rule_group() -> None:
    """Affinity rules: VMs kept together on one node, or apart on different nodes."""


@rule_group.command("list")
@output_option(*FORMATS, default="table")
@pass_ctl
def rule_list(ctl: Ctl, fmt: str) -> None:
    """List affinity rules."""
    items = ctl.client.get("/rule")["items"]
    emit(render(items, fmt, columns=RULE_COLUMNS, kind="rule", width=term_width()))


@rule_group.command("info")
@click.argument("name")
@output_option("json", "yaml", default="yaml")
@pass_ctl
def rule_info(ctl: Ctl, name: str, *, fmt: str) -> None:
    """One rule (its YAML applies back with `herdctl apply -f`)."""
    rule = ctl.client.get(f"/rule/{name}")
    emit(to_json(rule) if fmt == "json" else to_yaml(rule))


@rule_group.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["apart", "together"]), required=True,
              help="together: on one node; apart: each on a node of its own")
@click.option("--vm", "vms", multiple=True, required=True, metavar="VM",
              help="a VM of the rule (repeat: 2 to 64)")
@click.option("--strict", is_flag=True, help="never break it: a VM waits rather than "
              "break it (default: a preference, broken only when nothing else fits)")
@pass_ctl
def rule_add(ctl: Ctl, /, name: str, *, kind: str, vms: tuple[str, ...],
             strict: bool) -> None:
    """Add an affinity rule."""
    made = ctl.client.post("/rule", {"name": name, "kind": kind, "strict": strict,
                                     "vms": list(vms)})
    for warning in made.get("warnings") or ():
        click.echo(f"herdctl: warning: {warning}", err=True)
    emit(f"rule/{name} added")


@rule_group.command("remove")
@click.argument("name")
@pass_ctl
def rule_remove(ctl: Ctl, name: str) -> None:
    """Remove an affinity rule."""
    ctl.client.call("DELETE", f"/rule/{name}")
    emit(f"rule/{name} removed")
