"""`herdctl token create|list|revoke`: the cluster's API tokens (admin only), over the
REST API (`POST|GET /token`, `DELETE /token/{name}`).

`create NAME --role ROLE` prints the secret once, with a warning on stderr: the cluster
keeps only its hash, so it can never be shown again (revoke and create another if it is
lost). Each command gets its data from the API; the formatters of `ctl.views` and
`ctl.output` print it. Registered by `ctl.main`.
"""

from __future__ import annotations

from typing import Any

import click

from ctl.common import Ctl, emit, output_option, pass_ctl, term_width
from ctl.output import FORMATS, render, to_json, to_yaml
from ctl.views import SECRET_WARNING, TOKEN_COLUMNS, token_created
from vocabulary import Role


@click.group("token")
def token_group() -> None:
    """API tokens and their roles (needs an admin token)."""


def create(ctl: Ctl, name: str, role: str) -> dict[str, Any]:
    answer: dict[str, Any] = ctl.client.post("/token", {"name": name, "role": role})
    return answer


@token_group.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]),
              help="viewer: reads; operator: VMs and nodes; admin: also config and tokens")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def create_command(ctl: Ctl, name: str, *, role: str, fmt: str) -> None:
    """Make a token; its secret is printed now and never again."""
    token = create(ctl, name, role)
    click.echo(f"herdctl: warning: {SECRET_WARNING}", err=True)
    emit(token_created(token) if fmt == "text" else to_json(token) if fmt == "json"
         else to_yaml(token))


@token_group.command("list")
@output_option(*(f for f in FORMATS if f != "name"), default="table")
@pass_ctl
def list_command(ctl: Ctl, fmt: str) -> None:
    """The tokens: name, role, created, last used (never a secret)."""
    items = ctl.client.get("/token")["items"]
    emit(render(items, fmt, columns=TOKEN_COLUMNS, kind="token", width=term_width()))


@token_group.command("revoke")
@click.argument("name")
@pass_ctl
def revoke_command(ctl: Ctl, name: str) -> None:
    """Revoke a token: every herd-api refuses it from now on."""
    answer = ctl.client.call("DELETE", f"/token/{name}")
    emit(f"token/{answer['name']} revoked")
