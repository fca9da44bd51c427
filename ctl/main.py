"""Entry point of `herdctl` (console script), called by the shell: the root command group.

Root options: `--api URL` (else `$HERD_API`, else the local dev cluster) and
`--timeout SECONDS` (how long a request, or a `--wait`, may take). The groups come from
`ctl.cmd_vm`, `ctl.cmd_node`, `ctl.cmd_network`, `ctl.cmd_storage` (with
`ctl.cmd_volumedata`'s volume upload|download), `ctl.cmd_rule`, `ctl.cmd_objects`,
`ctl.cmd_token`, `ctl.cmd_config`, `ctl.cmd_events` and `ctl.cmd_dev`. Errors are turned
into `herdctl: <message>` on stderr and the exit codes of `ctl.errors` (1: reported by the
server, 2: usage) in ONE place, `HerdGroup.invoke`.
"""

from __future__ import annotations

from typing import Any

import click

from ctl import (
    cmd_config,
    cmd_console,
    cmd_dev,
    cmd_events,
    cmd_network,
    cmd_node,
    cmd_objects,
    cmd_rule,
    cmd_storage,
    cmd_token,
    cmd_vm,
    cmd_volumedata,
)
from ctl.client import ApiError, Unreachable
from ctl.common import Ctl
from ctl.errors import CtlError, Failure, failure_of, from_api
from ctl.progress import WaitTimeout


class HerdGroup(click.Group):
    """The root group: every error below becomes a `Failure` with its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApiError as e:
            raise from_api(e) from None
        except (Unreachable, WaitTimeout) as e:
            raise Failure(str(e)) from None
        except CtlError as e:
            raise failure_of(e) from None


@click.group(cls=HerdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api", envvar="HERD_API", metavar="URL",
              help="the herd-api server (default: $HERD_API, else the local dev cluster)")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=120, show_default=True,
              envvar="HERD_TIMEOUT", help="seconds a request or a --wait may take")
@click.pass_context
def cli(ctx: click.Context, api: str | None, *, timeout: float) -> None:
    """herdctl: the command-line client of Herd (it speaks HTTP to herd-api)."""
    ctx.obj = Ctl(api=api, timeout=timeout)


for group in (cmd_vm.vm_group, cmd_node.node_group, cmd_node.cluster_group,
              cmd_objects.get, cmd_objects.apply, cmd_objects.diff, cmd_objects.delete,
              cmd_network.network_group, cmd_storage.pool_group, cmd_storage.volume_group,
              cmd_rule.rule_group,
              cmd_token.token_group, cmd_config.config_group,
              cmd_events.events,
              cmd_dev.dev_group):
    cli.add_command(group)
for command in (cmd_volumedata.volume_upload, cmd_volumedata.volume_download):
    cmd_storage.volume_group.add_command(command)
for command in (cmd_console.vm_console, cmd_console.vm_vnc, cmd_console.vm_log):
    cmd_vm.vm_group.add_command(command)


def main() -> None:
    cli(prog_name="herdctl")
