"""`herdctl dev up | status | down`: the local cluster of `ctl.dev.cluster` (ZooKeeper,
N herd-node daemons on libvirt's test driver, herd-api), recorded in a state directory:
`--dir`, else `$HERD_DEV_DIR`, else `~/.herd/dev`. The other commands find the API there
by default. Registered by `ctl.main`.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from ctl.common import emit, output_option
from ctl.dev import cluster, state
from ctl.dev.state import default_dir, state_path
from ctl.errors import CtlError
from ctl.output import Column, pairs, table, to_json, to_yaml


class DevFailure(CtlError):
    """`dev up` or `dev down` did not get there."""


def dir_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                        default=None, help="state directory (default: $HERD_DEV_DIR or "
                        "~/.herd/dev)")(func)


@click.group("dev")
def dev_group() -> None:
    """A local cluster for development and demos."""


@dev_group.command("up")
@click.option("--nodes", type=click.IntRange(1, 16), default=3, show_default=True,
              help="how many node daemons")
@click.option("--timeout", type=click.FloatRange(1, 600), default=90, show_default=True,
              help="seconds to wait until everything is healthy")
@click.option("--hypervisor", type=click.Choice(["test", "qemu"]), default="test",
              show_default=True, help="test: libvirt's test driver per node (fast, no guests); "
              "qemu: a real libvirtd per node in namespaces of its own (root; live migration)")
@dir_option
def up(nodes: int, timeout: float, hypervisor: str, *, directory: Path | None) -> None:
    """Start ZooKeeper, the node daemons and the API; return once all are healthy."""
    directory = (directory or default_dir()).expanduser().resolve()
    started = time.monotonic()
    try:
        dev = cluster.up(directory, nodes=nodes, timeout=timeout, say=emit,
                         hypervisor=hypervisor)
    except cluster.DevError as e:
        raise DevFailure(str(e)) from None
    emit(f"dev cluster up in {time.monotonic() - started:.1f}s; API {dev.url}")
    emit(f"state: {state_path(directory)} (herdctl finds the API there"
         + ("" if directory == default_dir().expanduser().resolve()
            else f" with HERD_DEV_DIR={directory}") + ")")
    emit(f"web console: {dev.url}/ui/ (sign in with the token `herdctl dev token` prints)")


@dev_group.command("token")
@dir_option
def token(directory: Path | None) -> None:
    """Print the dev cluster's admin token (to sign in to the web console)."""
    directory = (directory or default_dir()).expanduser().resolve()
    dev = state.load(directory)
    if dev is None or not dev.token:
        raise DevFailure(f"no dev cluster recorded in {directory}")
    emit(dev.token)


@dev_group.command("down")
@dir_option
def down(directory: Path | None) -> None:
    """Stop everything `dev up` started (TERM, then KILL), by PID."""
    directory = (directory or default_dir()).expanduser().resolve()
    try:
        stopped = cluster.down(directory, say=emit)
    except cluster.DevError as e:
        raise DevFailure(str(e)) from None
    emit(f"dev cluster down ({len(stopped)} processes)" if stopped
         else f"no dev cluster recorded in {directory}")


@dev_group.command("start-node")
@click.argument("name")
@dir_option
def start_node(name: str, directory: Path | None) -> None:
    """Start a node's herd-node again (after a kill or a fence); a QEMU host that was
    powered off boots first."""
    directory = (directory or default_dir()).expanduser().resolve()
    try:
        cluster.revive_node(directory, name, say=emit)
    except cluster.DevError as e:
        raise DevFailure(str(e)) from None


PROCESS_COLUMNS = (
    Column("ROLE", lambda p: str(p["role"])),
    Column("PID", lambda p: str(p["pid"])),
    Column("RUNNING", lambda p: "yes" if p["running"] else "no"),
    Column("LOG", lambda p: str(p["log"]), flex=True),
)


@dev_group.command("status")
@dir_option
@output_option("text", "json", "yaml", default="text")
def status(directory: Path | None, fmt: str) -> None:
    """The recorded processes and the cluster summary."""
    directory = (directory or default_dir()).expanduser().resolve()
    found = cluster.status(directory)
    if found is None:
        raise DevFailure(f"no dev cluster recorded in {directory}")
    if fmt != "text":
        emit(to_json(found) if fmt == "json" else to_yaml(found))
        return
    summary = found["cluster"] or {}
    emit(pairs([("Directory", found["dir"]), ("API", found["url"] or "-"),
                ("ZooKeeper", found["zk_hosts"] or "-"),
                ("Primary", str(summary.get("primary") or summary.get("error") or "-"))]))
    emit(table(found["processes"], PROCESS_COLUMNS))
    if any(not p["running"] for p in found["processes"]):
        raise DevFailure("some processes of the dev cluster are not running")
