"""herd-api's way to the node endpoints (issue #16): which node, at what URL, with what
ticket, and how a node's refusal reads to the API's client.

A node publishes its endpoint URL in its status (`endpoint`) and the key of this start
of its daemon at `/nodes/<name>/key` (`store.nodekeys`); both reach herd-api through its
watched cache. Every request to a node carries a fresh single-use ticket signed with that
key. The API's one `aiohttp.ClientSession` for the nodes lives in the app (`session_ctx`).
Used by `server.consoles.console`, `.logs` and `.figures`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from server.access import Ctx
from server.errors import ApiError, conflict, not_found
from store import nodekeys
from store.model import VM

NODE_SESSION = web.AppKey("node_session", aiohttp.ClientSession)
CONNECT_TIMEOUT = 10.0  # seconds to reach a node's endpoint


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[NODE_SESSION] = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT))
    yield
    await app[NODE_SESSION].close()


def link(c: Ctx, node: str) -> nodekeys.NodeLink:
    """`node`'s endpoint, or 503 saying why it cannot be reached."""
    found = c.cache.node(node)
    if found is None:
        raise not_found("node", node)
    key = c.cache.nodes.get(nodekeys.key_path(c.store, node))
    found_link = nodekeys.link_of(node, found.status_doc, key.doc if key else None)
    if not found.alive or found_link is None:
        raise ApiError(503, "node_unreachable", f"node {node} has no endpoint up (its "
                       f"herd-node is down, or runs without metrics_address)")
    return found_link


def vm_of(c: Ctx, name: str) -> VM:
    vm = c.cache.vm(name)
    if vm is None:
        raise not_found("vm", name)
    return vm


def running_node(vm: VM) -> str:
    """The node the VM's guest runs on, or 409 saying it does not run."""
    node = vm.running_on
    if node is None or not vm.up:
        raise conflict(f"vm {vm.name} is not running (state {vm.state or 'unknown'})")
    return node


async def refusal(node: str, resp: aiohttp.ClientResponse) -> ApiError:
    """A node's non-success answer as the API's error."""
    try:
        message = str((await resp.json()).get("error") or resp.reason)
    except (aiohttp.ContentTypeError, ValueError, AttributeError):
        message = (await resp.text())[:200] or str(resp.reason)
    if resp.status == 409:
        return conflict(message)
    if resp.status == 404:
        return conflict(f"node {node}: {message}")
    return ApiError(502, "bad_gateway", f"node {node} answered {resp.status}: {message}")


def unreachable(node: str, e: Exception) -> ApiError:
    return ApiError(502, "bad_gateway", f"node {node}'s endpoint does not answer: "
                    f"{e or type(e).__name__}")
