"""The API error of a claim a write's transaction lost (issues #14, #15): a MAC another
VM holds (`store.macs`), a volume another VM holds or one that does not exist
(`store.attachments`). Used by `server.vm_handlers` and `server.apply`.
"""

from __future__ import annotations

from typing import Any

from server.access import Ctx
from server.errors import ApiError
from store import attachments, macs
from store.errors import AlreadyExists, StoreError


def claim_clash(c: Ctx, error: StoreError, *, field: tuple[str, ...]) -> ApiError | None:
    """The API error of a claim the write's transaction lost: a MAC another VM holds (422
    `duplicate_mac`, `store.macs`), a volume another VM holds (409 `volume_attached`) or
    one that does not exist (422 `unknown_volume`, `store.attachments`); else None."""
    mac = macs.is_mac_clash(c.store.paths, error)
    volume = attachments.clash_of(c.store.paths, error)
    if mac is not None:
        status, code = 422, "duplicate_mac"
        message = f"MAC {mac} is used by another VM: each NIC in the cluster needs its own"
    elif volume is not None and isinstance(error, AlreadyExists):
        status, code = 409, "volume_attached"
        message = f"volume {volume} is attached to another VM (a <shareable/> disk may share)"
    elif volume is not None:
        status, code, message = 422, "unknown_volume", f"volume {volume} does not exist"
    else:
        return None
    details: dict[str, Any] = {field[-1]: [message]}
    for key in reversed(field[:-1]):
        details = {key: details}
    return ApiError(status, code, message, details=details)
