"""`NetworkReconciler`: client networks on this node, reconciled like VMs, one step at a time.

`reconcile(spec)` loops observe (`Links.observe`, `LibvirtNetworks.observe`) -> plan ONE
step (`statemachine.netplan.plan_network`, pure) -> act, until the plan says done or
blocked, within a bound; it never looks at what was done before (level-triggered: running
it again is always safe). It answers a `NetOutcome`: the network's `NetworkUp` for the
node's status, and the work queue's `Result` (blocked or failed: look again later).
`collect(specs)` removes what Herd made for networks no longer wanted (`plan_removal`);
`remove(network)` removes one network's. A failing command or libvirt call ends the pass
with a reason (`failure_reason`), never an exception.

Called by `reconciler.daemon`: a reconcile per network key, and `collect` with EVERY
network this node should have (read from a synced cache: an empty list removes them all);
the daemon runs `collect` and the reconciles of one node one at a time (e.g. on one queue
key), so that a collection never races a creation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from reconciler.libvirt.interface import HypervisorError
from reconciler.network.links import LinkError
from reconciler.runtime.workqueue import Result, brief
from statemachine.netplan import (
    LIBVIRT_ACTIONS,
    LibvirtNet,
    LinkObservation,
    LinkSpec,
    NetAction,
    NetObserved,
    NetStep,
    NetworkUp,
    bridge_of,
    keep_all_but,
    keep_for,
    plan_network,
    plan_removal,
    status_of,
)

log = logging.getLogger(__name__)

BLOCKED_LOOK = 30.0  # blocked (or the kernel lacks a link type): look again this soon
ERROR_LOOK = 5.0  # a command or libvirt call failed: look again this soon
STEPS = 24  # steps of one pass, plus two per peer (each FDB entry is one step)
REASON_MAX = 256  # characters of a reason (the node status schema's limit)

NetError = (LinkError, HypervisorError)


class LinkDriver(Protocol):
    """The node's links (`reconciler.network.links.Links`, or a fake)."""

    async def observe(self) -> LinkObservation: ...

    async def apply(self, step: NetStep) -> None: ...


class NetDriver(Protocol):
    """The node's libvirt networks (`reconciler.network.libvirtnet.LibvirtNetworks`)."""

    async def observe(self) -> Mapping[str, LibvirtNet]: ...

    async def apply(self, step: NetStep) -> None: ...


@dataclass(frozen=True, kw_only=True)
class NetOutcome:
    """How a pass ended: the network's status here, what the queue does next, the steps."""

    status: NetworkUp
    result: Result
    steps: tuple[NetStep, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Cleanup:
    """How a collection ended: what it removed, what next, and why it stopped early."""

    removed: tuple[NetStep, ...]
    result: Result
    error: str = ""


def failure_reason(step: NetStep, error: Exception) -> str:
    """A step's failure as a status reason: 'no VXLAN support: ...' when the kernel lacks
    the link type, else '<action> <device>: <short error>'; at most REASON_MAX characters."""
    if isinstance(error, LinkError) and error.unsupported and step.action in _UNSUPPORTED:
        return _short(f"{_UNSUPPORTED[step.action]}: {error.stderr}")
    return _short(f"{step.action} {step.device or step.network}: {brief(error)}")


_UNSUPPORTED = {NetAction.CREATE_VXLAN: "no VXLAN support",
                NetAction.CREATE_VLAN: "no VLAN support"}


def _short(reason: str) -> str:
    return reason if len(reason) <= REASON_MAX else reason[:REASON_MAX - 3] + "..."


class NetworkReconciler:
    """Reconciles the client networks of one node; one instance per daemon."""

    def __init__(self, links: LinkDriver, nets: NetDriver, *, steps: int = STEPS,
                 blocked_look: float = BLOCKED_LOOK, error_look: float = ERROR_LOOK) -> None:
        self.links = links
        self.nets = nets
        self.steps = steps
        self.blocked_look = blocked_look
        self.error_look = error_look

    async def observe(self) -> NetObserved:
        """The node's links and libvirt networks, now."""
        links = await self.links.observe()
        return NetObserved(links=links, nets=dict(await self.nets.observe()))

    async def reconcile(self, spec: LinkSpec) -> NetOutcome:
        """Bring one network up on this node, or say why it cannot be."""
        bound = self.steps + 2 * len(spec.peers)
        taken: list[NetStep] = []
        step = acting = None
        try:
            for _ in range(bound):
                acting, step = None, plan_network(spec, await self.observe())
                if step.final:
                    after = None if step.action == NetAction.DONE else self.blocked_look
                    return self._outcome(status_of(spec, step), after, taken=taken)
                acting = step
                await self._act(step)
                taken.append(step)
        except NetError as err:
            reason = (failure_reason(acting, err) if acting is not None
                      else f"cannot observe: {brief(err)}")
            unsupported = isinstance(err, LinkError) and err.unsupported
            log.warning("network %s: %s", spec.network, reason)
            return self._outcome(self._down(spec, reason),
                                 self.blocked_look if unsupported else self.error_look, taken=taken)
        reason = f"not converged in {bound} steps (last: {step.rule if step else '-'})"
        return self._outcome(self._down(spec, reason), 0.0, taken=taken)

    async def collect(self, specs: Iterable[LinkSpec]) -> Cleanup:
        """Remove Herd's links and libvirt networks that none of `specs` (every network
        this node should have) keeps; the operator's are never touched."""
        keep = keep_for(specs)
        return await self._clean(lambda seen: plan_removal(keep, seen))

    async def remove(self, network: str) -> Cleanup:
        """Remove everything Herd made on this node for `network`."""
        return await self._clean(lambda seen: plan_removal(keep_all_but(network, seen), seen))

    async def _clean(self, plan: Callable[[NetObserved], NetStep]) -> Cleanup:
        removed: list[NetStep] = []
        acting: NetStep | None = None
        try:
            for _ in range(self.steps * 4):
                acting, step = None, plan(await self.observe())
                if step.final:
                    return Cleanup(removed=tuple(removed), result=Result.done())
                acting = step
                await self._act(step)
                removed.append(step)
        except NetError as err:
            error = (failure_reason(acting, err) if acting is not None
                     else f"cannot observe: {brief(err)}")
            log.warning("network cleanup: %s", error)
            return Cleanup(removed=tuple(removed), result=Result.after(self.error_look),
                           error=error)
        return Cleanup(removed=tuple(removed), result=Result.after(0.0),
                       error="more to remove than one pass does")

    async def _act(self, step: NetStep) -> None:
        log.info("network %s: %s %s (%s)", step.network, step.action, step.device, step.rule)
        if step.action in LIBVIRT_ACTIONS:
            await self.nets.apply(step)
        else:
            await self.links.apply(step)

    @staticmethod
    def _down(spec: LinkSpec, reason: str) -> NetworkUp:
        return NetworkUp(network=spec.network, up=False, reason=reason, bridge=bridge_of(spec))

    @staticmethod
    def _outcome(status: NetworkUp, after: float | None, *,
                 taken: list[NetStep]) -> NetOutcome:
        result = Result.done() if after is None else Result.after(after)
        return NetOutcome(status=replace(status, reason=_short(status.reason)), result=result,
                          steps=tuple(taken))
