"""`herdctl pool list|info|add|remove` and `herdctl volume list|info|create|clone|resize|
remove` (issue #15), over the REST API (`/pool`, `/volume`). Adding and removing pools
needs an admin token, volumes an operator's. Commands get data from the API; `ctl.output` prints it.
Registered by `ctl.main`.
"""

from __future__ import annotations

from typing import Any

import click

from ctl.common import Ctl, emit, output_option, pass_ctl, term_width
from ctl.output import FORMATS, Column, dash, render, to_json, to_yaml


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _gib(value: Any) -> str:
    return f"{int(value) / (1 << 30):.1f}G" if isinstance(value, int) else "-"


POOL_COLUMNS = (
    Column("NAME", lambda p: str((p.get("metadata") or {}).get("name", "?"))),
    Column("TYPE", lambda p: dash(_spec(p).get("type"))),
    Column("WHERE", lambda p: dash(_spec(p).get("path") or (_spec(p).get("rbd") or {})
                                   .get("pool")), flex=True),
)
VOLUME_COLUMNS = (
    Column("POOL", lambda v: dash(_spec(v).get("pool"))),
    Column("NAME", lambda v: str((v.get("metadata") or {}).get("name", "?"))),
    Column("SIZE", lambda v: _gib(_spec(v).get("size"))),
    Column("FORMAT", lambda v: dash(_spec(v).get("format"))),
    Column("NODE", lambda v: dash(_spec(v).get("node"))),
    Column("STATE", lambda v: "deleting" if v.get("deletion")
           else dash((v.get("status") or {}).get("state"))),
    Column("REASON", lambda v: dash((v.get("status") or {}).get("reason")), wide=True,
           flex=True),
)


@click.group("pool")
def pool_group() -> None:
    """Storage pools: a libvirt pool of the same name on every node."""


@pool_group.command("list")
@output_option(*FORMATS, default="table")
@pass_ctl
def pool_list(ctl: Ctl, fmt: str) -> None:
    """List storage pools."""
    items = ctl.client.get("/pool")["items"]
    emit(render(items, fmt, columns=POOL_COLUMNS, kind="pool", width=term_width()))


@pool_group.command("info")
@click.argument("name")
@output_option("json", "yaml", default="yaml")
@pass_ctl
def pool_info(ctl: Ctl, name: str, *, fmt: str) -> None:
    """One pool, and its state on each node."""
    pool = ctl.client.get(f"/pool/{name}")
    nodes = {str(n["metadata"]["name"]): ((n.get("status") or {}).get("pools") or {}).get(name)
             for n in ctl.client.get("/node")["items"]}
    doc = {**pool, "nodes": nodes}
    emit(to_json(doc) if fmt == "json" else to_yaml(doc))


@pool_group.command("add")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(["local", "shared", "rbd"]), required=True)
@click.option("--path", help="local, shared: the directory (the same path on every node)")
@click.option("--monitor", "monitors", multiple=True, help="rbd: a Ceph monitor (host:port)")
@click.option("--rbd-pool", help="rbd: the Ceph pool")
@click.option("--user", help="rbd: the cephx user")
@click.option("--secret", help="rbd: the name of the cephx key in each node's config")
@pass_ctl
def pool_add(ctl: Ctl, /, name: str, *, kind: str, path: str | None,
             monitors: tuple[str, ...], rbd_pool: str | None, user: str | None,
             secret: str | None) -> None:
    """Add a storage pool."""
    spec: dict[str, Any] = {"type": kind}
    if path is not None:
        spec["path"] = path
    if kind == "rbd":
        spec["rbd"] = {"monitors": list(monitors), "pool": rbd_pool, "user": user,
                       "secret": secret}
    ctl.client.post("/pool", {"apiVersion": "herd/v1", "kind": "Pool",
                              "metadata": {"name": name}, "spec": spec})
    emit(f"pool/{name} added")


@pool_group.command("remove")
@click.argument("name")
@pass_ctl
def pool_remove(ctl: Ctl, name: str) -> None:
    """Remove an empty pool (its data stays on the nodes)."""
    ctl.client.call("DELETE", f"/pool/{name}")
    emit(f"pool/{name} removed")


@click.group("volume")
def volume_group() -> None:
    """Volumes: disk images in storage pools."""


@volume_group.command("list")
@click.option("--pool")
@click.option("--node")
@click.option("--vm", help="the volumes this VM's disks name")
@output_option(*FORMATS, default="table")
@pass_ctl
def volume_list(ctl: Ctl, *, pool: str | None, node: str | None, vm: str | None,
                fmt: str) -> None:
    """List volumes (of a pool, on a node, of a VM)."""
    items = ctl.client.get("/volume", pool=pool, node=node, vm=vm)["items"]
    emit(render(items, fmt, columns=VOLUME_COLUMNS, kind="volume", width=term_width()))


@volume_group.command("info")
@click.argument("pool")
@click.argument("name")
@output_option("json", "yaml", default="yaml")
@pass_ctl
def volume_info(ctl: Ctl, pool: str, name: str, *, fmt: str) -> None:
    """One volume with its status."""
    vol = ctl.client.get(f"/volume/{pool}/{name}")
    emit(to_json(vol) if fmt == "json" else to_yaml(vol))


@volume_group.command("create")
@click.argument("pool")
@click.argument("name")
@click.option("--size", required=True, help="bytes, or e.g. 256M, 10G")
@click.option("--format", "fmt", type=click.Choice(["qcow2", "raw"]), default="qcow2",
              show_default=True)
@click.option("--node", help="local pools: the node (default: where it fits best)")
@click.option("--clone", help="a volume of the same pool to copy")
@pass_ctl
def volume_create(ctl: Ctl, /, pool: str, name: str, *, size: str, fmt: str,
                  node: str | None, clone: str | None) -> None:
    """Create a volume."""
    spec: dict[str, Any] = {"pool": pool, "size": int(size) if size.isdigit() else size,
                            "format": fmt}
    if node is not None:
        spec["node"] = node
    if clone is not None:
        spec["source"] = {"volume": clone}
    made = ctl.client.post("/volume", {"apiVersion": "herd/v1", "kind": "Volume",
                                       "metadata": {"name": name}, "spec": spec})
    emit(f"volume/{pool}/{name} created on {made['spec'].get('node')}")


@volume_group.command("resize")
@click.argument("pool")
@click.argument("name")
@click.argument("size")
@pass_ctl
def volume_resize(ctl: Ctl, pool: str, name: str, size: str) -> None:
    """Grow a volume to SIZE (bytes, or e.g. 20G); online when its VM runs."""
    done = ctl.client.post(f"/volume/{pool}/{name}",
                           {"size": int(size) if size.isdigit() else size})
    emit(f"volume/{pool}/{name} resizing to {_gib(done['spec'].get('size'))}")


@volume_group.command("clone")
@click.argument("pool")
@click.argument("name")
@click.argument("new")
@click.option("--node", help="shared and rbd pools: the node that makes the copy")
@pass_ctl
def volume_clone(ctl: Ctl, /, pool: str, name: str, new: str, *, node: str | None) -> None:
    """Copy volume NAME into a new volume NEW of the same pool."""
    body: dict[str, Any] = {"name": new, **({"node": node} if node is not None else {})}
    made = ctl.client.post(f"/volume/{pool}/{name}/clone", body)
    emit(f"volume/{pool}/{new} created on {made['spec'].get('node')} from {pool}/{name}")


@volume_group.command("remove")
@click.argument("pool")
@click.argument("name")
@pass_ctl
def volume_remove(ctl: Ctl, pool: str, name: str) -> None:
    """Delete a volume (refused while a VM has it); its node deletes the image."""
    ctl.client.call("DELETE", f"/volume/{pool}/{name}")
    emit(f"volume/{pool}/{name} deleting")
