"""When the primary may treat a failed node as fenced: after its fence timeout, or, for a
node of `fence: self`, once its own watchdog has surely powered its guests off. Pure;
used by `reconciler.cluster.controllers`.

A self-fencing node pets its watchdog only within `fresh` seconds of a heartbeat that went
through (`reconciler.node.selffence`), so its last pet came at most `fresh` after the last
heartbeat in its status, and the watchdog fires `timeout` after that pet. Counting from
that heartbeat (and only once the node's session expired), the primary waits `timeout +
fresh + SELF_FENCE_MARGIN` (the margin: the power-off itself, clock skew between hosts).
A node of `fence: self` whose status names no armed watchdog is never treated as fenced:
nothing of it is recovered, as with `fence: none`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vocabulary import FenceMode

SELF_FENCE_MARGIN = 5.0  # seconds


def fence_wait(mode: FenceMode, watchdog: Mapping[str, Any] | None, *,
               fence_timeout: float) -> float | None:
    """Seconds of silence (since the last heartbeat) after which the failed node counts
    as fenced, or None when nothing fences it."""
    if mode != FenceMode.SELF:
        return fence_timeout
    try:
        timeout = float((watchdog or {})["timeout"])
        fresh = float((watchdog or {}).get("fresh", 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    return max(fence_timeout, timeout + fresh + SELF_FENCE_MARGIN)
