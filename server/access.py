"""How handlers reach the cluster: the app's store and cache, fresh reads for writes that
depend on a read, the read-your-writes settle after a write, and the commits (on their
own, or grouped with other defines: `commit_grouped`).

A write returns only once this server's cache shows it (`settled_vm`, `settled_node`):
the same client's next GET, on this server, sees what it wrote. The wait follows the
watch (`ClusterCache.wait_for`); after `SETTLE_TIMEOUT` a direct read answers instead.
`xml_check(request)` is the domain XML policy as it applies to the request's token (the
one place that decides who may use the policy's exceptions: `_exceptions_allowed`).
Called by the handler modules.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from schemas.xmlpolicy import XmlPolicy
from server.auth import role_of
from server.cache import ClusterCache
from server.config import ServerConfig
from server.errors import ApiError, not_found
from server.groupcommit import GroupCommit
from server.keys import CACHE, COMMITS, CONFIG, STORE
from server.nics import NicCheck
from server.objects import XmlCheck
from store import txn
from store.client import Store
from store.errors import StoreError, Unavailable
from store.model import VM, Node, read_vm, vm_paths
from store.txn import commit_async
from vocabulary import Role

SETTLE_TIMEOUT = 10.0
_RNG = random.SystemRandom()  # new MACs (server.nics)


@dataclass(frozen=True)
class Ctx:
    store: Store
    cache: ClusterCache
    config: ServerConfig
    commits: GroupCommit


def ctx(request: web.Request) -> Ctx:
    app = request.app
    return Ctx(app[STORE], app[CACHE], app[CONFIG], app[COMMITS])


def reading(request: web.Request) -> Ctx:
    """The context of a read: the cache must be in sync (else 503)."""
    c = ctx(request)
    c.cache.require_synced()
    return c


def writing(request: web.Request) -> Ctx:
    """The context of a write: ZooKeeper must be writable now (else 503, at once)."""
    c = ctx(request)
    if not c.store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    c.cache.require_synced()
    return c


def _exceptions_allowed(request: web.Request) -> bool:
    """Whether the request's token may use the XML policy's named exceptions: admin
    tokens only (issue 13)."""
    return role_of(request) == Role.ADMIN


def xml_check(request: web.Request) -> XmlCheck:
    """The cluster's domain XML policy (/herd/config `xmlPolicy`, from the cache) as it
    applies to this request."""
    cache = ctx(request).cache
    policy = XmlPolicy.from_config(cache.setting("xmlPolicy", None))
    nics = NicCheck(lambda name: cache.network(name) is not None, cache.macs, _RNG)
    return XmlCheck(policy, exceptions_allowed=_exceptions_allowed(request), nics=nics)


def cached_vm(c: Ctx, name: str) -> VM:
    rec = c.cache.vm(name)
    if rec is None:
        raise not_found("VM", name)
    return rec


def cached_node(c: Ctx, name: str) -> Node:
    rec = c.cache.node(name)
    if rec is None:
        raise not_found("Node", name)
    return rec


def fresh_vm(store: Store, name: str) -> VM | None:
    """The VM's znodes read from ZooKeeper now (one pipelined round trip). Blocking."""
    found = store.get_many(vm_paths(store.paths, name))
    vm = read_vm(name, found.get, store.paths)
    return vm if vm.exists else None


async def settled_vm(c: Ctx, name: str, done: Callable[[VM], bool]) -> VM:
    """The VM once the cache shows `done(vm)`; read directly after the settle timeout."""
    def check() -> VM | None:
        rec = c.cache.vm(name)
        return rec if rec is not None and done(rec) else None

    rec = await c.cache.wait_for(("VM", name), check, timeout=SETTLE_TIMEOUT)
    if rec is None:
        rec = await asyncio.to_thread(fresh_vm, c.store, name)
    if rec is None:
        raise not_found("VM", name)
    return rec


async def settled_gone(c: Ctx, kind: str, name: str) -> None:
    """Return once the cache no longer has the object (or after the settle timeout)."""
    def check() -> bool | None:
        found = c.cache.docs.get(kind, name) if kind in c.cache.docs.folders else \
            {"VM": c.cache.vm, "Node": c.cache.node}[kind](name)
        return True if found is None else None

    await c.cache.wait_for((kind, name), check, timeout=SETTLE_TIMEOUT)


async def settled_node(c: Ctx, name: str, mzxid: int) -> Node:
    def check() -> Node | None:
        rec = c.cache.node(name)
        return rec if rec is not None and rec.mzxid >= mzxid else None

    rec = await c.cache.wait_for(("Node", name), check, timeout=SETTLE_TIMEOUT)
    return rec if rec is not None else cached_node(c, name)


async def commit(store: Store, ops: list[txn.Op]) -> None:
    """Commit `ops` as one transaction without holding a thread (pipelined with every
    other commit in flight). Operations too large for one transaction are a 413, never a
    split or a 500; the other store errors are raised as they are."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[StoreError | None] = loop.create_future()

    def done(error: StoreError | None) -> None:
        loop.call_soon_threadsafe(_settle_future, answer, error)

    try:
        commit_async(store, ops, done)
    except StoreError as e:
        if type(e) is not StoreError:
            raise
        raise ApiError(413, "too_large", f"{e}; make the change smaller") from None
    error = await answer
    if error is not None:
        raise error


async def commit_grouped(c: Ctx, ops: list[txn.Op]) -> None:
    """`commit`, but sent in one transaction with the other grouped commits that reach
    this point in the same pass of the loop (`server.groupcommit`); the answer is the one
    a commit of its own would get. For independent creates (define)."""
    try:
        prepared = txn.prepare(ops)
    except StoreError as e:
        raise ApiError(413, "too_large", f"{e}; make the change smaller") from None
    await c.commits.commit(prepared)


def _settle_future(future: asyncio.Future[StoreError | None], error: StoreError | None) -> None:
    if not future.done():
        future.set_result(error)
