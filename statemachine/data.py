"""The values `plan` works on: the lifecycle actions, and the four records.

Role: the records of the VM lifecycle. `Desired`, `Observed` and `Recorded` are built by
the node reconciler (from the VM spec and placement, from libvirt, and from the status znode)
and handed to `statemachine.plan`, which answers with a `Step`: the one action to carry out
and the status to write. Their states, modes and methods are `vocabulary`'s enums; a field
may also hold the plain string of a member (as loaded from ZooKeeper). Pure: no I/O,
nothing of the project is imported but `vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vocabulary import UP_RUN_STATES, DesiredState, MigrationMethod, RunState, StopMode, VMState


class Action(StrEnum):
    """What the reconciler does to libvirt (and ZooKeeper ownership) for one step."""

    NONE = "none"
    START = "start"  # define from the spec XML if needed, then start
    SHUTDOWN = "shutdown"  # send an ACPI shutdown
    DESTROY = "destroy"  # force off
    MIGRATE_LIVE = "migrate-live"  # peer-to-peer live migration to the placement's node
    RELEASE = "release"  # domain is off here, VM is elsewhere or deleted: undefine, drop owner
    UNDEFINE = "undefine"


def _check(name: str, value: object, enum: type[StrEnum]) -> None:
    if value not in enum._value2member_map_:  # a member, or the plain string of one
        allowed = [member.value for member in enum]
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass(frozen=True, kw_only=True)
class Desired:
    """What ZooKeeper asks for this VM, as seen from this node."""

    target: DesiredState
    stop_mode: StopMode = StopMode.GRACEFUL
    restart_request: int = 0
    placed_here: bool = True  # placement.node is this node
    migration_method: MigrationMethod = MigrationMethod.ANY
    live_supported: bool = False  # this node's libvirt driver can live-migrate
    shutdown_timeout: float = 180.0  # seconds from ACPI shutdown to forced off
    exists: bool = True  # False once the VM was deleted from ZooKeeper

    def __post_init__(self) -> None:
        _check("target", self.target, DesiredState)
        _check("stop_mode", self.stop_mode, StopMode)
        _check("migration_method", self.migration_method, MigrationMethod)
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must be >= 0, not {self.shutdown_timeout!r}")


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What this node's libvirt reports about the VM's domain."""

    domain: RunState
    migrating_out: bool = False  # a live migration job of this domain is in flight here

    def __post_init__(self) -> None:
        _check("domain", self.domain, RunState)

    @property
    def up(self) -> bool:
        """True when the guest is alive (running or paused)."""
        return self.domain in UP_RUN_STATES


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """What the VM's status znode says: survives daemon restarts."""

    state: VMState
    shutdown_deadline: float | None = None  # absolute time at which a shutdown is forced
    observed_restart: int = 0  # the last restart request carried out
    since: float = 0.0  # when `state` was entered


@dataclass(frozen=True, kw_only=True)
class Step:
    """The answer of `plan`: one action, and the status to write (before acting)."""

    action: Action
    state: VMState
    shutdown_deadline: float | None
    observed_restart: int
    requeue_after: float | None  # seconds until the reconciler must look again; None = on change
    reason: str
    trigger: str  # the lifecycle trigger that produced this step (for logs and tests)

    def changes(self, recorded: Recorded) -> bool:
        """True when the status to write differs from `recorded` (state, deadline, restart)."""
        return (self.state, self.shutdown_deadline, self.observed_restart) != (
            recorded.state,
            recorded.shutdown_deadline,
            recorded.observed_restart,
        )
