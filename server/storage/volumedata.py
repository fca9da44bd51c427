"""`PUT` and `GET /volume/{pool}/{vol}/data` (issue #15): a volume's bytes through the API,
streamed, never held whole.

The API reaches the libvirtd of the node that holds the volume (`spec.node`) at the URI
that node publishes (`migrationUri`: qemu+tls in production, where the API host needs a
libvirt client certificate, docs/deploy.md) and moves the bytes with a libvirt stream in a
worker thread of the transfer's own (`server.storage.volstream`), bridged to the request
body or the response by a `Pipe` of DEPTH chunks of CHUNK bytes: memory stays bounded
whatever the size, and the loop never waits on libvirt.

Upload (operator): the body is the image file (`server.storage.imagecheck`); a
Content-Length is required (411), at most what the volume takes (413 naming the size);
refused (409) unless the volume is `ready`, while a VM that holds it runs or should, and
while this API process already streams into it. A body that ends early or a client that
goes away aborts the libvirt stream (virStreamAbort), and nothing is answered as done.
Download (viewer): the image file, `application/octet-stream`, its Content-Length the
file's size as libvirt gives it; a failure after the first byte cuts the connection (the
client sees fewer bytes than announced). The node's libvirt unreachable or failing is a
502, the node not up a 503. Called through the route table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from marshmallow import Schema, ValidationError, fields

from server.access import Ctx, reading
from server.deadline import lift_deadline
from server.errors import ApiError, bad_request, conflict, not_found
from server.http import json_response, path_name
from server.storage import volstream
from server.storage.imagecheck import HEAD, qcow2_problem, upload_limit
from server.storage.pipe import Aborted, Pipe
from vocabulary import DesiredState

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes per hand-off between the loop and the libvirt thread
DEPTH = 8  # chunks in flight per transfer (8 MiB)
IDLE = 120.0  # seconds without progress before a transfer is given up
_busy: set[str] = set()  # volumes this process streams into now


@dataclass(frozen=True)
class Target:
    pool: str
    name: str
    node: str
    uri: str
    format: str
    capacity: int  # as the node last reported it

    @property
    def key(self) -> str:
        return f"{self.pool}/{self.name}"


class VolumeUploaded(Schema):
    pool = fields.String(required=True)
    name = fields.String(required=True)
    node = fields.String(required=True)
    bytes = fields.Integer(required=True)


def _target(c: Ctx, request: web.Request) -> Target:
    """The volume of the path, ready, on a node that is up (404, 409, 503 otherwise)."""
    pool, name = path_name(request, "pool"), path_name(request, "vol")
    key = f"{pool}/{name}"
    found = c.cache.docs.get("Volume", key)
    if found is None:
        raise not_found("Volume", key)
    status = c.cache.docs.get("Volume", f"{key}/status")
    state = (status.doc if status else {}).get("state")
    if found.doc.get("deletion"):
        raise conflict(f"Volume {key} is being deleted")
    if state != "ready":
        raise conflict(f"Volume {key} is not ready (state {state!r})", state=state)
    spec = found.doc["spec"]
    node = c.cache.node(str(spec.get("node")))
    uri = (node.status_doc.get("migrationUri") if node is not None else None)
    if node is None or not node.alive or not uri:
        raise ApiError(503, "unavailable", f"node {spec.get('node')!r}, which holds volume "
                       f"{key}, is not up (or publishes no migrationUri)",
                       headers={"Retry-After": str(c.config.retry_after)})
    return Target(pool, name, node.name, str(uri), str(spec.get("format", "qcow2")),
                  int((status.doc if status else {}).get("capacity") or spec["size"]))


def _not_in_use(c: Ctx, key: str) -> None:
    """409 while a VM that holds the volume runs, or is wanted running."""
    attached = c.cache.docs.get("Volume", f"{key}/attachment")
    name = attached.doc.get("vm") if attached is not None else None
    vm = c.cache.vm(str(name)) if name else None
    if vm is not None and (vm.want == DesiredState.RUNNING or vm.running_on is not None):
        raise conflict(f"Volume {key} is attached to VM {name!r}, which runs (or should): "
                       "stop it first", vm=name)


def _length(request: web.Request, target: Target, capacity: int) -> int:
    length = request.content_length
    if length is None:
        raise ApiError(411, "length_required", "an upload needs a Content-Length (the "
                       "image file's size); chunked bodies are not taken")
    if length == 0:
        raise bad_request("the body is empty: send the image file", body=["Empty."])
    limit = upload_limit(target.format, capacity)
    if length > limit:
        raise ApiError(413, "too_large", f"{length} bytes do not fit volume {target.key} "
                       f"({target.format}, capacity {capacity} bytes: at most {limit})",
                       details={"Content-Length": [
                           f"{length} bytes: more than the volume takes ({limit})."]})
    return length


async def _open(target: Target) -> volstream.Volume:
    try:
        return await asyncio.to_thread(volstream.open_volume, target.uri, target.pool,
                                       target.name)
    except volstream.StreamError as e:
        if e.missing:
            raise ApiError(404, "not_found", f"{e} (the node has not made it, or lost "
                           "it)") from None
        raise ApiError(502, "bad_gateway", str(e)) from None


def _start(volume: volstream.Volume, pipe: Pipe, key: str,
           work: Callable[[volstream.Volume, Pipe], int]) -> None:
    """Run `work(volume, pipe)` in its own thread, closing the volume after it."""
    def closing() -> int:
        try:
            return work(volume, pipe)
        finally:
            volume.close()

    volstream.run_in_thread(key, closing, pipe)


async def upload(request: web.Request) -> web.Response:
    c = reading(request)  # no ZooKeeper write: the node's libvirt takes the bytes
    target = _target(c, request)
    _not_in_use(c, target.key)
    _length(request, target, target.capacity)
    if target.key in _busy:
        raise conflict(f"Volume {target.key} takes an upload already")
    _busy.add(target.key)
    try:
        lift_deadline(request)  # as long as the bytes flow (IDLE bounds each step)
        volume = await _open(target)
        try:
            length = _length(request, target, volume.capacity)  # libvirt's figure rules
            first = await _read(request, min(CHUNK, length), done=0, length=length)
            _check_image(target, first, volume.capacity)
        except BaseException:
            await asyncio.to_thread(volume.close)
            raise
        count = await _pump_up(request, volume, target, first, length)
    finally:
        _busy.discard(target.key)
    log.info("volume %s: %d bytes uploaded to %s", target.key, count, target.node)
    return json_response({"pool": target.pool, "name": target.name, "node": target.node,
                          "bytes": count})


def _check_image(target: Target, first: bytes, capacity: int) -> None:
    if target.format == "qcow2":
        problem = qcow2_problem(first[:HEAD], capacity)
        if problem is not None:
            raise ValidationError({"body": [problem]})


async def _read(request: web.Request, size: int, *, done: int, length: int) -> bytes:
    """`size` bytes of the body when `done` is 0 (the head the checks read), else the
    next chunk as it arrived (no joining: at most the transport's read size)."""
    try:
        async with asyncio.timeout(IDLE):
            if done == 0:
                return await request.content.readexactly(size)
            data = await request.content.readany()
    except Exception as e:  # short (IncompleteReadError), idle, or the connection lost
        raise _incomplete(done, length, type(e).__name__) from None
    if not data:
        raise _incomplete(done, length, "end of body")
    return data


def _incomplete(done: int, length: int, why: str) -> ApiError:
    return bad_request(f"the body ended after {done} of {length} bytes ({why}): nothing "
                       "was completed", body=["Incomplete."])


async def _pump_up(request: web.Request, volume: volstream.Volume, target: Target,
                   chunk: bytes, length: int) -> int:
    pipe = Pipe(asyncio.get_running_loop(), depth=DEPTH, idle=IDLE)
    _start(volume, pipe, target.key, lambda v, p: volstream.upload(v, p, length=length))
    done = 0
    try:
        while await pipe.put(chunk):
            done += len(chunk)
            if done == length:
                await pipe.put(None)
                break
            chunk = await _read(request, min(CHUNK, length - done), done=done, length=length)
        return await pipe.result()
    except volstream.StreamError as e:
        raise ApiError(502, "bad_gateway", str(e)) from None
    except Aborted as e:
        raise ApiError(502, "bad_gateway", f"upload to {target.key} stopped: {e}") from None
    except BaseException as e:
        pipe.abort()  # the body ended early, the client left, or the server stops
        log.warning("volume %s: upload aborted after %d of %d bytes", target.key, done, length)
        if not isinstance(e, asyncio.CancelledError):
            await pipe.settled()  # libvirt's stream is aborted before anyone is told
        raise


async def download(request: web.Request) -> web.StreamResponse:
    c = reading(request)
    target = _target(c, request)
    lift_deadline(request)
    volume = await _open(target)
    pipe = Pipe(asyncio.get_running_loop(), depth=DEPTH, idle=IDLE)
    _start(volume, pipe, target.key, lambda v, p: volstream.download(v, p, chunk=CHUNK))
    try:
        first = await pipe.get()  # a failure to start is still an error answer
    except (volstream.StreamError, Aborted) as e:
        raise ApiError(502, "bad_gateway", str(e)) from None
    except BaseException:
        pipe.abort()
        raise
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                       "Content-Length": str(volume.physical)})
    await resp.prepare(request)
    sent = await _pump_down(request, resp, pipe, first)
    if sent != volume.physical:
        log.warning("volume %s: download cut after %d of %d bytes", target.key, sent,
                    volume.physical)
        if request.transport is not None:
            request.transport.close()  # the client sees fewer bytes than announced
    return resp


async def _pump_down(request: web.Request, resp: web.StreamResponse, pipe: Pipe,
                     chunk: bytes | None) -> int:
    """Write the chunks as the thread reads them; the bytes sent (short on a failure)."""
    sent = 0
    try:
        while chunk is not None:
            await resp.write(chunk)
            sent += len(chunk)
            chunk = await pipe.get()
        await pipe.result()
    except (volstream.StreamError, Aborted, ConnectionError) as e:
        log.warning("download %s: %s", request.path, e)
        pipe.abort()
    except BaseException:
        pipe.abort()
        raise
    return sent
