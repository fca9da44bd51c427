"""`herdctl vm console|vnc|log NAME` (issue #16): a VM's serial console in the terminal,
its VNC on a local port, its console log; and the current figures `vm info` and `node
info` show. Through herd-api only (`ctl.wsclient` for the
WebSockets). Registered into the `vm` group by `ctl.main`.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlencode

import click

from ctl.client import ApiError
from ctl.common import Ctl, pass_ctl
from ctl.errors import CtlError
from ctl.views import figures_text
from ctl.wsclient import terminal_console, vnc_relay

LOG_CHUNK = 65536


@click.command("console")
@click.argument("name")
@click.option("--force", is_flag=True, help="take the console over from another session")
@pass_ctl
def vm_console(ctl: Ctl, name: str, *, force: bool) -> None:
    """The VM's serial console in this terminal (Ctrl-] leaves). Operator token."""
    if sys.stdin.isatty():
        click.echo(f"Connected to {name}'s serial console (Ctrl-] leaves).", err=True)
    ended = asyncio.run(terminal_console(ctl.client, name, force=force,
                                         stdin=sys.stdin.fileno(), stdout=sys.stdout.buffer))
    click.echo(f"\r\n{ended}", err=True)


@click.command("vnc")
@click.argument("name")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="the local address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="the local port (default: any free one)")
@click.option("--once", is_flag=True, help="end after the first viewer disconnects")
@pass_ctl
def vm_vnc(ctl: Ctl, name: str, *, address: str, port: int, once: bool) -> None:
    """Relay a local port to the VM's VNC (point a viewer at the printed address)."""
    def ready(bound: str) -> None:
        click.echo(f"vnc of {name} on {bound} (e.g. remote-viewer vnc://{bound}); "
                   f"Ctrl-C ends", err=True)
        click.echo(bound)
        sys.stdout.flush()

    try:
        asyncio.run(vnc_relay(ctl.client, name, host=address, port=port, once=once,
                              ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise CtlError(f"cannot listen on {address}:{port}: {e}") from None


@click.command("log")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="go on printing what the guest prints")
@click.option("--lines", "-n", type=click.IntRange(0, 1_000_000), default=None,
              help="only the last N lines")
@pass_ctl
def vm_log(ctl: Ctl, name: str, *, follow: bool, lines: int | None) -> None:
    """The VM's serial console log (the last part its node keeps)."""
    query = {k: v for k, v in (("lines", lines), ("follow", "true" if follow else None))
             if v is not None}
    path = f"/vm/{name}/log" + (f"?{urlencode(query)}" if query else "")
    _size, chunks = ctl.client.download(path, chunk=LOG_CHUNK)
    out = sys.stdout.buffer
    try:
        for chunk in chunks:
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        pass


def current_figures(ctl: Ctl, path: str, key: str) -> str:
    """The current figures the API gathers from a node (`vm info`, `node info`), or why
    there are none."""
    try:
        return figures_text(ctl.client.get(path)[key])
    except ApiError as e:
        return f"- ({e.message})"
