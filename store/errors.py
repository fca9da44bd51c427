"""The store's errors: what a caller of `store` can catch, independent of kazoo.

Raised by `store.client`, `store.txn` and `store.layout`; the API server maps them to HTTP
statuses (404, 409, 413, 503) and the daemons retry the transient ones.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class NotFound(StoreError):
    """The znode (object) does not exist."""


class AlreadyExists(StoreError):
    """The znode (object) exists already."""


class Conflict(StoreError):
    """A version check failed: someone else changed the object since it was read."""


class Refused(StoreError):
    """The operation is not allowed in the object's current state (e.g. renaming a running VM)."""


class Unavailable(StoreError):
    """ZooKeeper cannot be reached now (connection suspended or lost); retry later."""


class TooLarge(StoreError):
    """A document or transaction is over ZooKeeper's request size."""


class CorruptDocument(StoreError):
    """A znode holds something that is not a JSON object."""


class LayoutTooNew(StoreError):
    """The cluster's layout version is newer than this program knows."""
