"""`POST /volume/{pool}/{vol}` (resize) and `POST /volume/{pool}/{vol}/clone` (issue #15).

Resize grows a volume, never shrinks it: a size not above the current `spec.size` is a
422 naming `size`; the growth must fit the free space of the pool on the volume's node
(node status `pools`, as for a new volume: else 507, and 409 when the pool is not usable
there now). The new size is written to `spec.size` (version-checked, the generation one
more: `store.objects.with_spec`); the volume's node then grows the image, online when
the VM holding it runs there (`reconciler.storage.resize`), and its status shows the new
capacity. `grow_check` is also `apply`'s rule for a Volume whose size went up.

Clone makes a new volume of the same pool whose `spec.source` is the volume (size and
format as the source's), written by `server.storage.volumes.insert` like any new volume.
A clone is made on the source's node unless another is named, which a local pool refuses
(422 naming `node`: `volumes.copy_node`); the source must be `ready` (else 409). Both
need `operator`. Called through the route table.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from marshmallow import ValidationError

from schemas.common import HerdSchema
from schemas.names import Name
from schemas.volumes import Size
from server.access import Ctx, writing
from server.audit import note_object
from server.cache import render
from server.errors import ApiError, conflict, not_found
from server.http import json_response, load_body, path_name
from server.storage.volumes import free_in, full, insert
from store.client import Versioned
from store.codec import Doc
from store.errors import NotFound
from store.objects import generation, new_object, with_spec


class ResizeRequest(HerdSchema):
    size = Size(required=True)


class CloneRequest(HerdSchema):
    name = Name(required=True)
    node = Name(load_default=None)


_RESIZE, _CLONE = ResizeRequest(), CloneRequest()


def _cached(c: Ctx, pool: str, name: str) -> Versioned:
    found = c.cache.docs.get("Volume", f"{pool}/{name}")
    if found is None:
        raise not_found("Volume", f"{pool}/{name}")
    if found.doc.get("deletion"):
        raise conflict(f"Volume {pool}/{name} is being deleted")
    return found


def grow_check(free: dict[str, int], spec: dict[str, Any], size: int, *,
               field: tuple[str, ...] = ()) -> None:
    """`size` must be above the volume's `spec.size` (422) and the growth fit its node's
    free space in the pool (`free`: `free_in` the pool; else 507, and 409 when the pool
    is not usable there now); the errors name `size` under `field`."""
    current, node, pool = int(spec["size"]), spec.get("node"), spec["pool"]
    if size <= current:
        details: dict[str, Any] = {"size": [
            f"Must be more than the volume's {current} bytes: volumes only grow."]}
        for key in reversed(field):
            details = {key: details}
        raise ValidationError(details)
    if node not in free:
        raise conflict(f"Pool {pool!r} is not usable on node {node!r} now: the volume "
                       "cannot grow there", node=node)
    if size - current > free[node]:
        full(pool, size - current, {node: free[node]}, field=field)


async def resize_volume(request: web.Request) -> web.Response:
    c = writing(request)
    pool, name = path_name(request, "pool"), path_name(request, "vol")
    size = (await load_body(request, _RESIZE))["size"]
    grow_check(free_in(c, pool), _cached(c, pool, name).doc["spec"], size)
    note_object(request, f"volume/{pool}/{name}")

    def modify(doc: Doc) -> Doc | None:  # checked again against what is stored
        if doc.get("deletion"):
            raise conflict(f"Volume {pool}/{name} is being deleted")
        if size <= int(doc["spec"]["size"]):
            raise ValidationError({"size": [
                f"Must be more than the volume's {doc['spec']['size']} bytes."]})
        return with_spec(doc, size=size)

    try:
        written = await asyncio.to_thread(c.store.update, c.store.paths.volume(pool, name),
                                          modify)
    except NotFound:
        raise not_found("Volume", f"{pool}/{name}") from None
    key, gen = f"{pool}/{name}", generation(written.doc)

    def shown() -> bool | None:  # read your writes
        found = c.cache.docs.get("Volume", key)
        return True if found is None or generation(found.doc) >= gen else None

    await c.cache.wait_for(("Volume", key), shown, timeout=10.0)
    return json_response(render(c.cache, ("Volume", key)))


async def clone_volume(request: web.Request) -> web.Response:
    c = writing(request)
    pool, name = path_name(request, "pool"), path_name(request, "vol")
    body = await load_body(request, _CLONE)
    source = _cached(c, pool, name)
    spec = source.doc["spec"]
    status = c.cache.docs.get("Volume", f"{pool}/{name}/status")
    state = status.doc.get("state") if status is not None else None
    if state != "ready":
        raise conflict(f"Volume {pool}/{name} is {state or 'unknown'}, not ready: it "
                       "cannot be copied yet", state=state)
    doc = new_object({"apiVersion": source.doc.get("apiVersion", "herd/v1"), "kind": "Volume",
                      "metadata": {"name": body["name"]},
                      "spec": {"pool": pool, "size": spec["size"], "format": spec["format"],
                               "node": body["node"], "source": {"volume": name},
                               "description": f"a clone of {pool}/{name}"}})
    try:
        return await insert(c, request, doc)
    except ApiError as e:  # the node too full: the request's fields are name and node
        if e.status == 507:
            e.details = {"node": [e.message]}
        raise
    except ValidationError as e:  # the new volume's spec.node: the request's node
        spec_errors = e.messages.get("spec") if isinstance(e.messages, dict) else None
        if spec_errors is None:
            raise
        raise ValidationError(spec_errors) from None
