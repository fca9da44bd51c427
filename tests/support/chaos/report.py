"""The one-screen report of a fault-suite seed: the faults injected, the requests and their
outcomes, each check passed or failed, and the first violation with its history excerpt
(the recorder's events around it and the client's requests on that VM or node). Times are
seconds after the client stream started. Pure formatting; called by run.py (the text goes
into test failures and bench/chaos's output) and bench/chaos.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tests.support.chaos.checker import CheckResult, Violation
from tests.support.chaos.model import NODE_VERBS, Fault, Op

if TYPE_CHECKING:
    from tests.support.chaos.run import SeedResult

MAX_FAULT_LINES = 12


def _faults(faults: Sequence[Fault], origin: float) -> list[str]:
    kinds = Counter(f.kind for f in faults)
    lines = [f"faults ({len(faults)}): " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))]
    shown = faults[:MAX_FAULT_LINES]
    lines += [f"  {f.start - origin:7.1f}s  {f.kind:<27} {f.target:<5} {f.note}"[:110]
              for f in shown]
    if len(faults) > len(shown):
        lines.append(f"  ... {len(faults) - len(shown)} more")
    return lines


def _requests(ops: Sequence[Op]) -> str:
    outcomes = Counter(o.outcome for o in ops)
    verbs = Counter(o.verb for o in ops if o.outcome == "ok")
    top = ", ".join(f"{v} {n}" for v, n in verbs.most_common(6))
    return (f"requests: {len(ops)} (ok {outcomes['ok']}, refused {outcomes['refused']}, "
            f"unknown {outcomes['unknown']}); acknowledged: {top}")


def _checks(results: Sequence[CheckResult]) -> list[str]:
    lines = ["checks:"]
    for r in results:
        verdict = "PASS" if r.passed else f"FAIL ({len(r.violations)})"
        lines.append(f"  {verdict:<9} {r.name:<20} {r.title} [{r.examined} examined]")
    return lines


def first_violation(results: Sequence[CheckResult]) -> Violation | None:
    found = [v for r in results for v in r.violations]
    return min(found, key=lambda v: v.at or 0.0) if found else None


def herd_events_about(events: Sequence[Mapping[str, Any]], subject: str, *, origin: float,
                      limit: int = 12) -> list[str]:
    """Herd's own event log on a VM and the nodes it was on (the primary's flushes, readies,
    fences, returns; the nodes' migrations): what Herd says it did, beside what it did."""
    nodes = {str(e["node"]) for e in events if e.get("vm") == subject and e.get("node")}
    about = [e for e in events if e.get("vm") == subject or subject in str(e.get("message"))
             or (e.get("node") in nodes and not e.get("vm"))]
    return [f"  {float(e.get('time', origin)) - origin:8.2f}  {e.get('kind')}: "
            f"{e.get('message')}"[:110] for e in about[-limit:]]


def _node_requests(ops: Sequence[Op], *, origin: float, limit: int = 8) -> list[str]:
    return [f"  {o.sent - origin:8.2f}  #{o.seq} {o.verb} {o.node} -> {o.outcome} "
            f"{o.detail}"[:110] for o in ops if o.verb in NODE_VERBS][-limit:]


def _requests_about(ops: Sequence[Op], subject: str, *, origin: float,
                    limit: int = 8) -> list[str]:
    about = [o for o in ops if subject in (o.vm, o.node, o.args.get("new_name"))]
    return [f"  {o.sent - origin:8.2f}  #{o.seq} {o.verb} {o.vm or o.node or ''} "
            f"{o.args or ''} -> {o.outcome} {o.detail}"[:110] for o in about[-limit:]]


def render(result: SeedResult) -> str:
    """The report of one seed."""
    c, origin = result.config, result.origin
    failed = [r for r in result.results if not r.passed]
    verdict = "PASS" if not failed and not result.harness_errors else \
        f"FAIL ({len(failed)} of {len(result.results)} checks)"
    lines = [f"chaos seed {c.seed}: {c.nodes} nodes, {c.apis} API servers, {c.vms} VMs, "
             f"{result.timings.get('stream', 0):.0f} s of faults: {verdict}"]
    lines += _faults(result.faults, origin)
    lines.append(_requests(result.ops))
    lines.append(f"history: {result.run_count} runs, ended by: " + ", ".join(
        f"{k} {n}" for k, n in sorted(result.run_ends.items())))
    lines += _checks(result.results)
    lines += [f"harness error: {e}" for e in result.harness_errors]
    first = first_violation(result.results)
    if first is not None:
        lines.append(f"first violation [{first.check}]: {first.message}")
        lines.append(f"history of {first.subject} (t={((first.at or origin) - origin):.2f}):")
        lines += ["  " + line for line in result.excerpt] or ["  (no events)"]
        lines.append(f"requests on {first.subject}:")
        lines += _requests_about(result.ops, first.subject, origin=origin) or ["  (none)"]
        lines.append("requests on nodes:")
        lines += _node_requests(result.ops, origin=origin) or ["  (none)"]
        lines.append(f"Herd's events on {first.subject} and its nodes:")
        lines += result.herd_events or ["  (none)"]
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    return "\n".join(lines)
