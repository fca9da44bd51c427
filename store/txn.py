"""Multi-znode transactions: atomic apply of a list of operations, and VM rename.

- `commit(store, ops)` sends a list of creates / version-checked sets / deletes / checks as
  ONE ZooKeeper transaction; only when the encoded operations exceed ZooKeeper's request
  size does it split them into several, and the result says so (`transactions`).
- `plan_rename(store, old, new)` reads the VM's whole subtree and returns the operations of
  its rename: first a version check of every source znode, then the copies under the new
  name, then a create+delete of the old `owner` (so the commit fails if any node started
  owning the VM meanwhile), then the deletes, deepest first. `rename_vm` plans and commits;
  a change to any source znode between the read and the commit fails the whole rename with
  `Conflict` and changes nothing.
- `prepare(ops)` encodes and sizes operations once; `commit_prepared_async(store, parts,
  done)` sends several prepared lists as ONE transaction without blocking (the API
  server's group commit of defines; `commit_async` is the one-list case).

Called by the API server (define, apply, rename, delete) and by benchmarks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)

from store import codec
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import AlreadyExists, Conflict, NotFound, Refused, StoreError, Unavailable
from vocabulary import UP_STATES

# ZooKeeper's default jute.maxbuffer is 0xfffff bytes; leave room for headers.
MAX_TXN_BYTES = 900_000
# Per-operation overhead in a multi request (headers, version, flags, ACL).
_OP_OVERHEAD = 64


@dataclass(frozen=True)
class Create:
    path: str
    doc: Doc
    ephemeral: bool = False
    sequence: bool = False


@dataclass(frozen=True)
class Set:
    path: str
    doc: Doc
    version: int


@dataclass(frozen=True)
class Delete:
    path: str
    version: int = -1


@dataclass(frozen=True)
class Check:
    path: str
    version: int


Op = Create | Set | Delete | Check


@dataclass
class CommitResult:
    """How a list of operations was committed: `transactions` > 1 means it was split."""

    operations: int
    transactions: int
    zxids: list[int] = field(default_factory=list)

    @property
    def split(self) -> bool:
        return self.transactions > 1


def _op_size(op: Op) -> int:
    size = len(op.path.encode()) + _OP_OVERHEAD
    if isinstance(op, Create | Set):
        size += len(codec.encode(op.doc))
    return size


def chunk(ops: Sequence[Op], *, limit: int = MAX_TXN_BYTES) -> list[list[Op]]:
    """Split `ops` into request-sized transactions, keeping their order."""
    chunks: list[list[Op]] = [[]]
    used = 0
    for op in ops:
        size = _op_size(op)
        if size > limit:
            raise StoreError(f"{op.path}: one operation of {size} bytes exceeds a transaction")
        if used + size > limit and chunks[-1]:
            chunks.append([])
            used = 0
        chunks[-1].append(op)
        used += size
    return [c for c in chunks if c]


def commit(store: Store, ops: Sequence[Op]) -> CommitResult:
    """Commit `ops` atomically (one transaction unless over ZooKeeper's request size)."""
    if not ops:
        return CommitResult(0, 0)
    if not store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    chunks = chunk(ops)
    result = CommitResult(len(ops), len(chunks))
    for i, part in enumerate(chunks):
        try:
            _commit_one(store, part)
        except StoreError as e:
            if i:
                raise type(e)(f"{e} (after {i} of {len(chunks)} transactions committed)") from e
            raise
    return result


def commit_pipelined(
    store: Store, transactions: Sequence[Sequence[Op]], *, window: int = 512
) -> list[StoreError | None]:
    """Commit many independent transactions with up to `window` of them in flight.

    Each list of operations is atomic on its own (e.g. one VM's znodes); their replies are
    awaited in order. Returns, per transaction, None or the error that refused it.
    """
    if not store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    out: list[StoreError | None] = []
    in_flight: deque[tuple[Sequence[Op], object]] = deque()
    for ops in transactions:
        in_flight.append((ops, _transaction(store, ops).commit_async()))
        if len(in_flight) >= window:
            out.append(_outcome(store, *in_flight.popleft()))
    out.extend(_outcome(store, ops, result) for ops, result in in_flight)
    return out


def _outcome(store: Store, ops: Sequence[Op], result: object) -> StoreError | None:
    try:
        _check_results(ops, store._call(result.get, timeout=store._op_timeout))  # type: ignore[attr-defined]
    except StoreError as e:
        return e
    return None


@dataclass(frozen=True)
class Prepared:
    """Operations with their documents encoded once, and the request size they take."""

    ops: tuple[Op, ...]
    data: tuple[bytes, ...]
    size: int


def prepare(ops: Sequence[Op], *, limit: int | None = MAX_TXN_BYTES) -> Prepared:
    """Encode every document of `ops` once and size the request; with `limit`, refuses
    (`StoreError`, nothing sent) operations that would not fit one transaction."""
    data = tuple(codec.encode(op.doc) if isinstance(op, Create | Set) else b"" for op in ops)
    size = sum(len(op.path.encode()) + len(d) for op, d in zip(ops, data, strict=True))
    size += _OP_OVERHEAD * len(ops)
    if limit is not None and size > limit:
        raise StoreError(f"the operations take {size} bytes, more than one ZooKeeper "
                         f"transaction ({limit})")
    return Prepared(tuple(ops), data, size)


def _transaction(store: Store, ops: Sequence[Op], *, limit: int | None = None) -> Any:
    """kazoo's transaction of `ops`, each document encoded once; with `limit`, refuses
    operations that would not fit one request."""
    return _kazoo_transaction(store, [prepare(ops, limit=limit)])


def _kazoo_transaction(store: Store, parts: Sequence[Prepared]) -> Any:
    """kazoo's transaction of the parts' operations, in order, with their encoded data."""
    t = store.client.transaction()
    for part in parts:
        for op, data in zip(part.ops, part.data, strict=True):
            if isinstance(op, Create):
                t.create(op.path, data, ephemeral=op.ephemeral, sequence=op.sequence)
            elif isinstance(op, Set):
                t.set_data(op.path, data, version=op.version)
            elif isinstance(op, Delete):
                t.delete(op.path, version=op.version)
            else:
                t.check(op.path, op.version)
    return t


Done = Callable[[StoreError | None], None]


def commit_async(store: Store, ops: Sequence[Op], done: Done) -> None:
    """Send `ops` as ONE transaction without blocking; `done(None | error)` runs on kazoo's
    completion thread when ZooKeeper answers (errors mapped as `commit` maps them).

    For the asyncio API server: many commits in flight pipeline on one connection instead
    of parking a thread each. Raises at once, sending nothing, when the connection is
    suspended or the operations need more than one transaction.
    """
    if not store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    commit_prepared_async(store, [prepare(ops)], done)


def commit_prepared_async(store: Store, parts: Sequence[Prepared], done: Done) -> None:
    """Send the operations of every part, in order, as ONE transaction without blocking
    (see `commit_async`): all of them are applied or none. The caller keeps the parts
    within one transaction (`MAX_TXN_BYTES` in all); an error names the first operation
    that failed. For group commits: the API server sends the defines that arrive together
    as one transaction."""
    if not store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    ops = [op for part in parts for op in part.ops]
    result = _kazoo_transaction(store, parts).commit_async()

    def finished(res: Any) -> None:
        try:
            _check_results(ops, res.get_nowait())
        except StoreError as e:
            done(e)
        except Exception as e:  # connection loss and the like: kazoo's own errors
            done(Unavailable(f"ZooKeeper unavailable: {type(e).__name__}: {e}"))
        else:
            done(None)

    result.rawlink(finished)


def _commit_one(store: Store, ops: Sequence[Op]) -> None:
    commit_one(store, ops)


def commit_one(store: Store, ops: Sequence[Op]) -> list[Any]:
    """Commit `ops` as exactly one transaction; returns kazoo's result per operation (the
    new ZnodeStat of each Set, the path of each Create, True for deletes and checks)."""
    if not store.writable:
        raise Unavailable("ZooKeeper connection is suspended; not writing")
    t = _transaction(store, ops, limit=MAX_TXN_BYTES)
    results: list[Any] = store._call(store._bounded(t.commit_async, write=True))
    _check_results(ops, results)
    return results


def _check_results(ops: Sequence[Op], results: list[Any]) -> None:
    for op, res in zip(ops, results, strict=True):
        rolled_back = isinstance(res, RolledBackError | RuntimeInconsistency)
        if isinstance(res, Exception) and not rolled_back:
            raise _mapped(op, res)


def _mapped(op: Op, e: Exception) -> StoreError:
    if isinstance(e, NoNodeError):
        return NotFound(op.path)
    if isinstance(e, NodeExistsError):
        return AlreadyExists(op.path)
    if isinstance(e, BadVersionError):
        return Conflict(f"{op.path} changed since it was read")
    if isinstance(e, NotEmptyError):
        return Refused(f"{op.path} has children")
    return StoreError(f"{op.path}: {type(e).__name__}")


# --- subtrees -------------------------------------------------------------------------------

def read_subtree(store: Store, path: str) -> dict[str, Versioned]:
    """Every znode at and below `path`, parents before children (pipelined per level)."""
    out: dict[str, Versioned] = {}
    level = [path]
    while level:
        found = store.get_many(level)
        if path not in out and path not in found:
            raise NotFound(path)
        out.update(found)
        level = [f"{p}/{c}" for p, v in found.items() if v.stat.numChildren
                 for c in store.children(p)]
    return out


def delete_subtree_ops(tree: dict[str, Versioned]) -> list[Op]:
    """Version-checked deletes of a subtree read by `read_subtree`, deepest first."""
    ordered = sorted(tree, key=lambda p: p.count("/"), reverse=True)
    return [Delete(p, tree[p].version) for p in ordered]


Rewrite = Callable[[str, Doc], Doc]
"""Given a source znode's path below the VM and its document, the document for the target."""


def plan_rename(store: Store, old: str, new: str, *, rewrite: Rewrite) -> list[Op]:
    """The operations that move VM `old`'s subtree to `new` (see the module docstring)."""
    paths = store.paths
    src, dst = paths.vm(old), paths.vm(new)
    if store.exists(dst) is not None:
        raise AlreadyExists(f"VM {new!r} exists already")
    tree = read_subtree(store, src)
    _refuse_running(tree, src, old)
    ops: list[Op] = [Check(p, v.version) for p, v in tree.items()]
    for p, v in tree.items():
        rel = p[len(src):]
        ops.append(Create(dst + rel, rewrite(rel, v.doc)))
    owner = paths.vm_owner(old)
    ops += [Create(owner, {}), Delete(owner)]
    ops += delete_subtree_ops(tree)
    return ops


def _refuse_running(tree: dict[str, Versioned], src: str, name: str) -> None:
    owner = tree.get(src + "/owner")
    if owner is not None:
        node = owner.doc.get("node", "a node")
        raise Refused(f"VM {name!r} runs on {node}; stop it before renaming")
    spec = tree[src].doc.get("spec", {})
    if spec.get("state") == "running":
        raise Refused(f"VM {name!r} is desired running; stop it before renaming")
    status = tree.get(src + "/status")
    state = status.doc.get("state") if status else None
    if state in UP_STATES:
        raise Refused(f"VM {name!r} is {state}; stop it before renaming")


def rename_vm(store: Store, old: str, new: str, *, rewrite: Rewrite,
              extra: Sequence[Op] = ()) -> CommitResult:
    """Rename VM `old` to `new` in one transaction (with `extra` operations of the caller's);
    raises and changes nothing on any race."""
    ops = [*plan_rename(store, old, new, rewrite=rewrite), *extra]
    if len(chunk(ops)) > 1:
        raise StoreError(f"VM {old!r} is too large to rename in one transaction")
    return commit(store, ops)
