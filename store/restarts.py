"""Restart limits (issue #17): how often a VM is started again in place after it failed to
start or stopped by itself, then on how many other nodes it is tried, then it is failed.

The node that runs a VM keeps, in the VM's status, `restarts`: the times of the restarts
it made after a failure (a failed start, a crash) within RESTART_WINDOW. Before such a
restart (`is_restart`), the
node asks `budget_left`: with `maxRestart` restarts used up it gives the VM up here
(`gave_up`: status failed for this spec generation, with `relocate`), and the primary
places it on a node it has not tried (`relocation`: `placement.tried`, for this spec
generation) until `maxRelocate` nodes were tried; then the VM stays failed with the
reason, and an event says so. A new spec generation (a new desired state, a changed
spec) starts afresh. Pure; used by `reconciler.vm.act` and `reconciler.cluster.controllers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vocabulary import RunState, VMState

RESTART_WINDOW = 600.0  # seconds a restart after a failure counts against maxRestart


def is_restart(recorded: str | None, domain: RunState | None, *, status_here: bool) -> bool:
    """Whether a start now is a restart after a failure: the last start failed here, or
    the guest crashed (as Proxmox's `max_restart`, which counts failed starts). A guest
    found off (powered off inside, or gone with its host) is started again uncounted."""
    if domain == RunState.CRASHED:
        return True
    return status_here and recorded == VMState.FAILED


def recent(times: Sequence[float], *, now: float) -> list[float]:
    return [t for t in times if isinstance(t, int | float) and now - t < RESTART_WINDOW]


def budget_left(status: Mapping[str, Any], *, max_restart: int, now: float) -> bool:
    return len(recent(status.get("restarts") or [], now=now)) < max_restart


def with_restart(status: Mapping[str, Any], *, now: float) -> dict[str, Any]:
    """The status with one more restart counted."""
    return {**status, "restarts": [*recent(status.get("restarts") or [], now=now), now]}


def gave_up(node: str, used: int) -> tuple[str, dict[str, Any]]:
    """The reason and the `relocate` field of a VM given up on `node`."""
    reason = f"gave up on {node} after {used} restart(s) in {RESTART_WINDOW:.0f} s"
    return reason, {"node": node, "restarts": used}


@dataclass(frozen=True)
class Relocation:
    """What the primary does with a VM a node gave up on."""

    tried: tuple[str, ...]  # the nodes given up on, this spec generation
    exhausted: bool  # maxRelocate other nodes were tried: the VM stays failed


def relocation(placement: Mapping[str, Any], *, gave_up_on: str, generation: int,
               max_relocate: int) -> Relocation:
    old = placement.get("tried") or {}
    tried = list(old.get("nodes") or []) if old.get("generation") == generation else []
    if gave_up_on not in tried:
        tried.append(gave_up_on)
    return Relocation(tuple(tried), exhausted=len(tried) > max_relocate)
