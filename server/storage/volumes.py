"""`/volume` and `/volume/{pool}/{vol}` (issue #15): list (by pool, node, or the VM whose
disks name them), create, show and delete volumes. A new volume is written with its
`status` (`pending`); the node that holds it makes the image in libvirt and says `ready`
(or `failed`, and why). `insert` is also the write of a clone (`server.storage.volumeops`)
and `free_in`/`place`/`full` the room checks of resizes and of `apply`.

Where a volume lives: a local pool's volume on the node the request names, else on the
usable node (node status `pools`) with the most free space that fits it; a shared or rbd
pool's volume is made by such a node too and reachable from all. No node where it fits is
a 507, a node where the pool is not usable a 422; nothing is written then. Delete marks
the volume; its node removes the image, then the volume (`store.volumes`). Reading needs
`viewer`, writing `operator`. Called through the route table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields

from schemas.domaindisks import volume_keys
from schemas.names import Name
from schemas.volumes import VolumeSchema
from server.access import Ctx, reading, writing
from server.audit import note_object
from server.cache import render
from server.errors import ApiError, conflict, not_found
from server.http import json_response, load_body, load_query, path_name
from store import volumes
from store.codec import Doc
from store.errors import AlreadyExists, NotFound
from store.model import Node
from store.objects import new_object
from store.txn import commit

_VOLUME = VolumeSchema()


class VolumeQuery(Schema):
    class Meta:
        unknown = RAISE

    pool = Name(load_default=None)
    node = Name(load_default=None)
    vm = Name(load_default=None)  # the volumes the VM's disks name


class VolumeObject(Schema):
    class Meta:
        unknown = INCLUDE


_QUERY = VolumeQuery()


def _key(request: web.Request) -> str:
    return f"{path_name(request, 'pool')}/{path_name(request, 'vol')}"


async def list_volumes(request: web.Request) -> web.Response:
    c = reading(request)
    query = load_query(request, _QUERY)
    keys = c.cache.docs.names("Volume")
    if query["vm"] is not None:
        vm = c.cache.vm(query["vm"])
        keys = sorted(set(keys) & volume_keys(vm.xml if vm is not None else None))
    items = [render(c.cache, ("Volume", key)) for key in keys]
    items = [v for v in items if v and query["pool"] in (None, v["spec"]["pool"])
             and query["node"] in (None, v["spec"].get("node"))]
    return json_response({"items": items, "count": len(items)})


async def get_volume(request: web.Request) -> web.Response:
    c = reading(request)
    key = _key(request)
    if c.cache.docs.get("Volume", key) is None:
        raise not_found("Volume", key)
    return json_response(render(c.cache, ("Volume", key)))


def _free(node: Node, pool: str) -> int | None:
    """Bytes free in `pool` on `node`, or None when the pool is not usable there."""
    status = node.status_doc or {}
    entry = (status.get("pools") or {}).get(pool)
    usable = node.alive and status.get("daemonState") == "run"
    return int(entry["available"]) if usable and entry and entry.get("usable") else None


def free_in(c: Ctx, pool: str) -> dict[str, int]:
    """Bytes free in `pool` on every node where it is usable (`_free`)."""
    return {n.name: f for n in c.cache.all_nodes() if (f := _free(n, pool)) is not None}


def place(free: dict[str, int], spec: dict[str, Any]) -> str:
    """The node the volume is made on (see the module doc), given `free_in` its pool."""
    pool, size, wanted = spec["pool"], spec["size"], spec.get("node")
    if wanted is not None:
        if wanted not in free:
            raise ValidationError({"spec": {"node": [
                f"Pool {pool!r} is not usable on node {wanted!r}."]}})
        fits = free[wanted] >= size
        return wanted if fits else full(pool, size, {wanted: free[wanted]})
    room = {name: f for name, f in free.items() if f >= size}
    if not room:
        return full(pool, size, free)
    return min(room, key=lambda name: (-room[name], name))


def full(pool: str, size: int, free: dict[str, int], *, field: tuple[str, ...] = ("spec",)
         ) -> str:
    """507: no node has `size` bytes free in `pool`; the details name `size` under `field`."""
    most = max(free.values(), default=0)
    details: dict[str, Any] = {"size": [
        f"More than any node has free in pool {pool!r} ({most} bytes)."]}
    for key in reversed(field):
        details = {key: details}
    raise ApiError(507, "insufficient_storage", f"no node has {size} bytes free in pool "
                   f"{pool!r} (the most: {most})", details=details)


def copy_node(spec: dict[str, Any], source: dict[str, Any] | None, *,
              local: bool) -> str | None:
    """Where a new volume whose `spec.source` is the volume `source` (its spec; None: no
    such volume, 422) is made: a local pool's on its source's node (another one named:
    422 naming `node`), else the node named, or the source's."""
    if source is None:
        raise ValidationError({"spec": {"source": {"volume": [
            f"Pool {spec['pool']!r} has no volume {spec['source']['volume']!r}."]}}})
    wanted, home = spec.get("node"), source.get("node")
    if local and wanted is not None and wanted != home:
        raise ValidationError({"spec": {"node": [
            f"Pool {spec['pool']!r} is local: a copy is made on its source's node "
            f"({home}), not {wanted!r}."]}})
    return wanted if wanted is not None else home


def _check_source(c: Ctx, spec: dict[str, Any]) -> None:
    source = (spec.get("source") or {}).get("volume")
    if source is None:
        return
    found = c.cache.docs.get("Volume", f"{spec['pool']}/{source}")
    pool = c.cache.docs.get("Pool", spec["pool"])
    spec["node"] = copy_node(spec, found.doc.get("spec", {}) if found is not None else None,
                             local=pool is not None and pool.doc["spec"]["type"] == "local")


async def create_volume(request: web.Request) -> web.Response:
    c = writing(request)
    doc: Doc = new_object(await load_body(request, _VOLUME))
    return await insert(c, request, doc)


def check_new(c: Ctx, doc: Doc) -> None:
    """A new volume's pool and source must exist; its node is chosen (`place`)."""
    spec = doc["spec"]
    if c.cache.docs.get("Pool", spec["pool"]) is None:
        raise ValidationError({"spec": {"pool": [f"No pool {spec['pool']!r}."]}})
    _check_source(c, spec)
    spec["node"] = place(free_in(c, spec["pool"]), spec)


async def insert(c: Ctx, request: web.Request, doc: Doc) -> web.Response:
    """Write the new volume `doc` (checked by `check_new`) with its pending status; 201
    once the cache shows both (POST /volume, and clones: `server.storage.volumeops`)."""
    check_new(c, doc)
    spec, name = doc["spec"], doc["metadata"]["name"]
    note_object(request, f"volume/{spec['pool']}/{name}")
    try:
        await asyncio.to_thread(commit, c.store, volumes.create_ops(c.store, spec["pool"],
                                                                    name, doc))
    except AlreadyExists:
        raise conflict(f"Pool {spec['pool']!r} has a volume {name!r} already") from None
    except NotFound:
        raise conflict(f"Pool {spec['pool']!r} was removed meanwhile") from None
    key = f"{spec['pool']}/{name}"
    await c.cache.wait_for(("Volume", key), lambda: c.cache.docs.get("Volume", key) and
                           c.cache.docs.get("Volume", f"{key}/status"), timeout=10.0)
    return json_response(render(c.cache, ("Volume", key)), status=201)


async def delete_volume(request: web.Request) -> web.Response:
    c = writing(request)
    pool, name = path_name(request, "pool"), path_name(request, "vol")
    attached = c.cache.docs.get("Volume", f"{pool}/{name}/attachment")
    if attached is not None:
        raise conflict(f"Volume {pool}/{name} is attached to VM {attached.doc.get('vm')!r}: "
                       "remove it from the VM first", vm=attached.doc.get("vm"))
    try:
        await asyncio.to_thread(c.store.update, c.store.paths.volume(pool, name),
                                volumes.mark_deleted)
    except NotFound:
        raise not_found("Volume", f"{pool}/{name}") from None
    key = f"{pool}/{name}"

    def marked() -> bool | None:
        found = c.cache.docs.get("Volume", key)
        return True if found is None or found.doc.get("deletion") else None

    await c.cache.wait_for(("Volume", key), marked, timeout=10.0)  # read your writes
    return json_response({"pool": pool, "name": name, "deleting": True}, status=202)


class VolumeDeleting(Schema):
    pool = fields.String(required=True)
    name = fields.String(required=True)
    deleting = fields.Boolean(required=True)
