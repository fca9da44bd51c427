"""How VMs, nodes and the cluster look in herdctl's tables and `info` blocks. Pure: no I/O.

The inputs are the API's objects as answered (`GET /vm`, `GET /node`, `GET /status`,
DESIGN.md section 5): a VM has metadata, spec (with meta), placement, status and owner; a
node has spec, status (with resources), alive and primary. Called by the command modules;
tested by tests/unit/test_ctl_views.py.
"""

from __future__ import annotations

import time
from typing import Any

from ctl.output import Column, dash, pairs

DEFAULT_SELECTOR = "mem"  # the cluster default unless /herd/config says otherwise


def _d(obj: dict[str, Any], *keys: str) -> Any:
    """obj[k1][k2]... with None for anything missing along the way."""
    cur: Any = obj
    for key in keys:
        cur = cur.get(key) if isinstance(cur, dict) else None
    return cur


def vm_name(vm: dict[str, Any]) -> str:
    return str(_d(vm, "metadata", "name") or "?")


def vm_node(vm: dict[str, Any]) -> str | None:
    """Where the VM runs (status), else where it is placed."""
    node = _d(vm, "status", "node") or _d(vm, "placement", "node")
    return str(node) if node else None


def vm_reason(vm: dict[str, Any]) -> str:
    return str(_d(vm, "status", "reason") or _d(vm, "placement", "reason") or "")


def limits_text(limits: list[str] | None) -> str:
    return ",".join(limits) if limits else "any"


def selector_text(selector: str | None, default: str = DEFAULT_SELECTOR) -> str:
    return f"default ({default})" if selector in (None, "none") else str(selector)


VM_COLUMNS = (
    Column("NAME", vm_name),
    Column("STATE", lambda v: dash(_d(v, "status", "state"))),
    Column("DESIRED", lambda v: dash(_d(v, "spec", "state"))),
    Column("NODE", lambda v: dash(vm_node(v))),
    Column("LAST NODE", lambda v: dash(_d(v, "placement", "lastNode")), wide=True),
    Column("LIMITS", lambda v: limits_text(_d(v, "spec", "meta", "limits")), wide=True,
           flex=True),
    Column("SELECTOR", lambda v: dash(_d(v, "spec", "meta", "selector")), wide=True),
    Column("AUTORESTART", lambda v: dash(bool(_d(v, "spec", "meta", "autorestart"))),
           wide=True),
    Column("MIGRATION", lambda v: dash(_d(v, "spec", "meta", "migrationMethod")), wide=True),
    Column("REASON", lambda v: dash(vm_reason(v)), flex=True),
)


def _mib(value: Any) -> str:
    return "-" if value is None else f"{int(value) / 1024:.1f}G"


def node_domain(node: dict[str, Any]) -> str:
    """The observed domain state, with the desired one when they differ."""
    have, want = _d(node, "status", "domainState"), _d(node, "spec", "domainState")
    return dash(have) if want in (None, have) else f"{dash(have)}→{want}"


def node_role(node: dict[str, Any]) -> str:
    if node.get("primary"):
        return "primary"
    return "coordinator" if _d(node, "spec", "coordinator") else "-"


def node_fence(node: dict[str, Any]) -> str:
    """The fence mode; for `self`, whether its watchdog is armed (else nothing recovers it)."""
    mode = _d(node, "spec", "fence")
    if mode != "self":
        return dash(mode)
    timeout = _d(node, "status", "watchdog", "timeout")
    return f"self (watchdog armed, {timeout:g} s)" if isinstance(timeout, int | float) \
        else "self (NO watchdog armed: not recoverable)"


def _res(node: dict[str, Any], key: str) -> Any:
    return _d(node, "status", "resources", key)


NODE_COLUMNS = (
    Column("NAME", lambda n: str(_d(n, "metadata", "name"))),
    Column("DAEMON", lambda n: dash(_d(n, "status", "daemonState"))),
    Column("DOMAIN", node_domain),
    Column("ALIVE", lambda n: dash(bool(n.get("alive")))),
    Column("ROLE", node_role),
    Column("VMS", lambda n: dash(_res(n, "vms"))),
    Column("MEM FREE", lambda n: f"{_mib(_res(n, 'memFree'))}/{_mib(_res(n, 'memTotal'))}"),
    Column("VCPUS", lambda n: f"{dash(_res(n, 'vcpuAlloc'))}/{dash(_res(n, 'vcpuTotal'))}"),
    Column("LOAD", lambda n: dash(_res(n, "load")), wide=True),
    Column("VERSION", lambda n: dash(_d(n, "status", "version")), wide=True),
    Column("LIBVIRT", lambda n: dash(_d(n, "status", "libvirtUri")), wide=True, flex=True),
)


def ago(epoch: float | None, *, now: float | None = None) -> str:
    if not epoch:
        return "-"
    seconds = max(0.0, (now if now is not None else time.time()) - float(epoch))
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def conditions_text(conditions: list[dict[str, Any]] | None) -> str:
    if not conditions:
        return "none"
    return "\n".join(f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: "
                     f"{c.get('message', '')}".rstrip(": ") for c in conditions)


def _state_line(vm: dict[str, Any], now: float | None) -> str:
    state = _d(vm, "status", "state") or "unknown"
    since = ago(_d(vm, "status", "since"), now=now)
    line = f"{state} (since {since})" if since != "-" else state
    deadline = _d(vm, "status", "shutdownDeadline")
    if deadline:
        left = max(0.0, float(deadline) - (now if now is not None else time.time()))
        line += f", forced off in {left:.0f}s unless it stops"
    return line


def _desired_line(vm: dict[str, Any]) -> str:
    desired = _d(vm, "spec", "state") or "stopped"
    mode = _d(vm, "spec", "stopMode")
    return f"{desired} ({mode})" if desired != "running" and mode else desired


def _timeout_text(vm: dict[str, Any], defaults: dict[str, Any]) -> str:
    timeout = _d(vm, "spec", "shutdownTimeout")
    if timeout:
        return f"{timeout}s"
    cluster = defaults.get("shutdownTimeout")
    return f"cluster default ({cluster}s)" if cluster else "cluster default"


def volume_line(volume: dict[str, Any]) -> str:
    """One volume of a VM: `pool/name  10.0G qcow2 on hv1, ready (allocation 1.2G)`."""
    spec, status = volume.get("spec") or {}, volume.get("status") or {}
    def gib(n: Any) -> str:
        return f"{n / (1 << 30):.1f}G" if isinstance(n, int) else "?"
    return (f"{spec.get('pool')}/{_d(volume, 'metadata', 'name')}  {gib(spec.get('size'))} "
            f"{spec.get('format')} on {spec.get('node') or '-'}, {status.get('state') or '?'}"
            f" (allocation {gib(status.get('allocation'))})")


def vm_info(vm: dict[str, Any], *, now: float | None = None,
            defaults: dict[str, Any] | None = None,
            volumes: list[dict[str, Any]] | None = None, figures: str | None = None) -> str:
    """The `vm info` block; `defaults` are the cluster's (GET /status `config`), `volumes`
    the VM's volumes as GET /volume answers them."""
    defaults = defaults or {}
    meta = _d(vm, "spec", "meta") or {}
    placed = _d(vm, "placement", "node")
    generation = _d(vm, "metadata", "generation")
    observed = _d(vm, "status", "observedGeneration")
    items = [
        ("Name", vm_name(vm)),
        ("State", _state_line(vm, now)),
        ("Desired", _desired_line(vm)),
        ("Node", dash(_d(vm, "status", "node")) + (
            f" (placed on {placed})" if placed and placed != _d(vm, "status", "node") else "")),
        ("Previous node", dash(_d(vm, "placement", "lastNode"))),
        ("Limits", limits_text(meta.get("limits"))),
        ("Selector", selector_text(meta.get("selector"),
                                   str(defaults.get("selector", DEFAULT_SELECTOR)))),
        ("Autorestart", dash(bool(meta.get("autorestart")))),
        ("Migration method", dash(meta.get("migrationMethod"))),
        ("Max downtime", f"{meta['migrationMaxDowntime']} ms"
         if meta.get("migrationMaxDowntime") else "-"),
        ("Shutdown timeout", _timeout_text(vm, defaults)),
        ("Conditions", conditions_text(_d(vm, "status", "conditions"))),
        ("Reason", dash(_d(vm, "status", "reason"))),
        ("Placement", dash(_d(vm, "placement", "reason"))),
    ]
    if _d(vm, "placement", "autorestartPending"):
        items.append(("Autorestart pending", f"on {_d(vm, 'placement', 'home')} when ready"))
    if generation is not None and observed is not None and observed < generation:
        items.append(("Spec", f"generation {generation}, node has seen {observed}"))
    if volumes:
        items.append(("Volumes", "\n".join(volume_line(v) for v in volumes)))
    if figures is not None:
        items.append(("Now", figures))
    return pairs(items)


def node_info(node: dict[str, Any], *, now: float | None = None,
              figures: str | None = None) -> str:
    """The `node info` block."""
    r = _d(node, "status", "resources") or {}
    items = [
        ("Name", str(_d(node, "metadata", "name"))),
        ("Daemon", dash(_d(node, "status", "daemonState"))),
        ("Domain state", node_domain(node)),
        ("Alive", dash(bool(node.get("alive")))),
        ("Role", node_role(node)),
        ("Fence", node_fence(node)),
        ("VMs", dash(r.get("vms"))),
        ("Memory", f"{_mib(r.get('memFree'))} free of {_mib(r.get('memTotal'))}, "
                   f"{_mib(r.get('memAlloc'))} allocated to VMs"),
        ("vCPUs", f"{dash(r.get('vcpuAlloc'))} allocated of {dash(r.get('vcpuTotal'))}"),
        ("Load", dash(r.get("load"))),
        ("Heartbeat", ago(_d(node, "status", "heartbeat"), now=now)),
        ("Version", dash(_d(node, "status", "version"))),
        ("Libvirt", dash(_d(node, "status", "libvirtUri"))),
        ("Endpoint", dash(_d(node, "status", "endpoint"))),
    ]
    if figures is not None:
        items.append(("Now (its VMs)", figures))
    return pairs(items)


def _counts(counts: dict[str, int] | None) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted((counts or {}).items())) or "none"


def cluster_status(summary: dict[str, Any]) -> str:
    """The `cluster status` block from GET /status."""
    nodes, vms = summary.get("nodes") or {}, summary.get("vms") or {}
    return pairs([
        ("Primary", dash(summary.get("primary"))),
        ("Nodes", f"{nodes.get('total', 0)} ({nodes.get('alive', 0)} alive)"),
        ("  daemons", _counts(nodes.get("daemonState"))),
        ("  domains", _counts(nodes.get("domainState"))),
        ("Maintenance", "on: fencing and recovery paused"
         if (summary.get("config") or {}).get("maintenance") else "off"),
        ("VMs", str(vms.get("total", 0))),
        ("  observed", _counts(vms.get("state"))),
        ("  desired", _counts(vms.get("desired"))),
    ])


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


EVENT_COLUMNS = (
    Column("TIME", lambda e: _when(e.get("time"))),
    Column("KIND", lambda e: dash(e.get("kind"))),
    Column("VM", lambda e: dash(e.get("vm")), wide=True),
    Column("NODE", lambda e: dash(e.get("node") or e.get("target")), wide=True),
    Column("MESSAGE", lambda e: dash(e.get("message")), flex=True),
)


TOKEN_COLUMNS = (
    Column("NAME", lambda t: dash(t.get("name")), flex=True),
    Column("ROLE", lambda t: dash(t.get("role"))),
    Column("CREATED", lambda t: _when(t.get("created"))),
    Column("LAST USED", lambda t: _when(t.get("lastUsed"))),
)

AUDIT_COLUMNS = (
    Column("TIME", lambda e: _when(e.get("time"))),
    Column("TOKEN", lambda e: dash(e.get("token"))),
    Column("ROLE", lambda e: dash(e.get("role"))),
    Column("METHOD", lambda e: dash(e.get("method"))),
    Column("ROUTE", lambda e: dash(e.get("route")), wide=True),
    Column("OBJECT", lambda e: dash(e.get("object")), flex=True),
    Column("STATUS", lambda e: dash(e.get("status"))),
)

SECRET_WARNING = ("this secret is shown now and never again (the cluster keeps only its "
                  "hash): store it now, e.g. as HERD_TOKEN")


def token_created(token: dict[str, Any]) -> str:
    """What `token create` prints: the token, its role and its secret (once)."""
    return pairs([("Token", dash(token.get("name"))), ("Role", dash(token.get("role"))),
                  ("Secret", dash(token.get("secret")))])


def _rate(value: float | None) -> str:
    """Bytes per second, short."""
    v = float(value or 0)
    for unit in ("B/s", "KiB/s", "MiB/s"):
        if v < 1024 or unit == "MiB/s":
            return f"{v:.0f} {unit}" if unit == "B/s" else f"{v:.1f} {unit}"
        v /= 1024
    return f"{v:.1f} GiB/s"


def figures_text(f: dict[str, Any]) -> str:
    """A VM's or a node's current figures (GET /vm/{vm}/figures, /node/{node}/figures)."""
    memory = f.get("memoryBytes")
    rss = f.get("rssBytes")
    mem = (f"{memory / 2**20:.0f} MiB" if memory else "-") + (
        f" (host rss {rss / 2**20:.0f} MiB)" if rss else "")
    return (f"CPU {float(f.get('cpuPercent') or 0):.1f} %, memory {mem}\n"
            f"disk read {_rate(f.get('diskReadBytesPerSecond'))} "
            f"({float(f.get('diskReadsPerSecond') or 0):.0f}/s), "
            f"write {_rate(f.get('diskWriteBytesPerSecond'))} "
            f"({float(f.get('diskWritesPerSecond') or 0):.0f}/s)\n"
            f"network rx {_rate(f.get('networkReceiveBytesPerSecond'))}, "
            f"tx {_rate(f.get('networkTransmitBytesPerSecond'))}")



def rebalance_text(plan: dict[str, Any]) -> str:
    """The `cluster rebalance` plan (POST /rebalance)."""
    verb = "would move" if plan.get("dryRun") else "moving"
    lines = [f"imbalance by {plan.get('selector')}: {plan.get('before')} -> "
             f"{plan.get('after')}; {verb} {len(plan.get('moves') or [])} VM(s)"]
    for move in plan.get("moves") or []:
        done = "" if plan.get("dryRun") else ("" if move.get("written") else "  (left out)")
        lines.append(f"  {move['vm']}: {move['from']} -> {move['to']}{done}")
    lines += [f"  {why}" for why in plan.get("skipped") or []]
    return "\n".join(lines)
