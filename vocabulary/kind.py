"""The kinds of stored object: `kind` of a document in ZooKeeper, in `apply` and the API.

Used by `schemas` (`kind` fields, `load_object` dispatch) and `server` (the `kind` filter
of GET /watch). Pure: imports nothing.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """The `kind` of a stored object."""

    VM = "VM"
    NODE = "Node"
    NETWORK = "Network"
    POOL = "Pool"
    VOLUME = "Volume"
    RULE = "Rule"
