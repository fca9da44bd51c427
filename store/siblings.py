"""Objects whose writes are serialized through their parent znode (networks, pools):
rules between siblings (a VNI, a path, a subnet used once) hold under concurrency.

A writer reads every sibling with the parent's version (`read_siblings`), checks its
change against them, and commits the change together with a version-checked set of the
parent (`commit_with`): a concurrent write of any sibling fails that check with
`Conflict`, and the writer reads and checks again (`write_serialized` does all of it).
For objects written rarely. Blocking. Used by `store.networks`, `store.pools` and
`server` (network and pool writes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from store import txn
from store.client import Store, Versioned
from store.errors import Conflict


@dataclass(frozen=True)
class Siblings:
    """Every child's document as read, and the parent's version at that read."""

    folder: str
    version: int
    writes: int
    docs: dict[str, Versioned]

    def specs(self) -> dict[str, dict[str, Any]]:
        return {name: dict(v.doc.get("spec", {})) for name, v in self.docs.items()}


def read_siblings(store: Store, folder: str) -> Siblings:
    parent = store.get(folder)
    names = store.children(folder)
    docs = store.get_many(f"{folder}/{n}" for n in names)
    by_name = {path.rsplit("/", 1)[1]: found for path, found in docs.items()}
    return Siblings(folder, parent.version, int(parent.doc.get("writes", 0)), by_name)


def commit_with(store: Store, seen: Siblings, ops: Sequence[txn.Op]) -> txn.CommitResult:
    """`ops` in ONE transaction with the parent's version check. Raises `Conflict` when
    any sibling was written since `seen` was read."""
    bump = txn.Set(seen.folder, {"writes": seen.writes + 1}, version=seen.version)
    return txn.commit(store, [bump, *ops])


def write_serialized(store: Store, folder: str,
                     plan: Callable[[Siblings], Sequence[txn.Op]], *,
                     attempts: int = 5) -> None:
    """Read the siblings, `plan` the write against them (it raises to refuse), commit with
    the parent's version check; on a concurrent sibling write read and plan again. Raises
    `Conflict` when other writes kept winning for `attempts` tries."""
    for _attempt in range(attempts):
        seen = read_siblings(store, folder)
        try:
            commit_with(store, seen, plan(seen))
            return
        except Conflict:
            continue
    raise Conflict(f"{folder}: other writes kept interfering; retry")
