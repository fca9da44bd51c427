"""The one builder of a node's status document (`/nodes/<name>/status`).

Two writers share the document, each with its own fields, and both build it here:
- the node's daemon (`reconciler.node.registration.NodeRegistration.publish`) reports what it is:
  `daemonState`, `resources`, `version`, `libvirtUri`, `address`, `migrationUri`,
  `networks` (which of the cluster's networks are up there, and why not), `pools` (the
  storage pools: usable or why not, capacity and free space), `endpoint` (the URL of its
  HTTP endpoint, `reconciler.endpoint`, or None) and the
  `heartbeat`; it seeds `domainState` from its spec only while the status has none;
  it also marks the flush it makes of itself as its host shuts down (`shutdownFlush`: the
  spec generation of that flush; `reconciler.node.shutdown`) and drops the mark once back;
- the primary coordinator (`reconciler.cluster.controllers`) owns `domainState` (the flush/ready
  controller) and marks a fenced node (`daemonState: fenced`).
Every write is a version-checked read-modify-write (`Store.update`), so neither writer
loses the other's fields. Pure: the functions take the current document and return the
new one.
"""

from __future__ import annotations

from typing import Any

from store.codec import Doc

REPORTED = ("daemonState", "resources", "version", "libvirtUri", "address", "migrationUri",
            "networks", "pools", "liveMigration", "endpoint", "watchdog")


def reported(old: Doc, report: Doc, *, seed_domain_state: str, now: float) -> Doc:
    """The status with the daemon's `report` (only its own fields) and a new heartbeat."""
    unknown = set(report) - set(REPORTED)
    if unknown:
        raise ValueError(f"a node reports only {', '.join(REPORTED)}, not {sorted(unknown)}")
    seed = {} if old.get("domainState") else {"domainState": seed_domain_state}
    return {**old, **report, **seed, "heartbeat": now}


def with_domain_state(old: Doc, state: str, **extra: Any) -> Doc:
    """The status with the primary's `domainState` (and `daemonState` for a fence)."""
    unknown = set(extra) - {"daemonState"}
    if unknown:
        raise ValueError(f"the primary sets only domainState and daemonState, not "
                         f"{sorted(unknown)}")
    return {**old, "domainState": state, **extra}


def with_shutdown_flush(old: Doc, generation: int | None) -> Doc:
    """The status with the node's mark of its own flush for a shutdown (the node spec's
    generation that flush wrote), or without it (None)."""
    new = dict(old)
    if generation is None:
        new.pop("shutdownFlush", None)
    else:
        new["shutdownFlush"] = generation
    return new
