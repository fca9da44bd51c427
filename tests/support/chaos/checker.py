"""The fault suite's checker: Herd's reliability promises, judged from the evidence only
(the runs of an independent recorder, the client's own record of its requests and their
answers, the final ZooKeeper snapshot, the harness's record of deaths and exits). Pure:
no I/O, no clock, so tests/unit/test_chaos_checker.py feeds it hand-made histories that
must fail.

The checks (`CHECKS`, in report order):
- `one-runner`: never two nodes running one VM at the same time (from the runs);
- `writes-kept`: every acknowledged API write is in ZooKeeper: the VM exists under the
  name its last rename gave it, its metadata fields, desired state, restart request and
  generation are those of its last acknowledged write (or of a later write whose answer
  was lost, or of a controller's documented override), and a renamed-away name is gone;
  a node's desired domain state is its last acknowledged flush/ready (or a fence's);
- `whole-objects`: no object is half-written: spec, placement and status all exist and
  parse, and agree (the names in the znode path, the metadata and the domain XML; known
  states; placement and owner on known nodes, placement inside the limits);
- `desired-running`: every VM whose desired state is running runs (status, owner and the
  recorded history agree) on one live node inside its limits; no other VM runs;
- `no-unexplained-stop`: no run ended without a cause: each end is a host death or comes
  after a client request that stops, restarts or moves that VM (or flushes/readies nodes).
  Pauses (SIGSTOP), ZooKeeper outages and API restarts stop nothing, and a daemon restart
  alone stops nothing unless the recorder counts it as a host death (on test-driver nodes
  it is one: the guests live in the daemon's libvirt connection; on QEMU hosts it is not,
  only a fence's power-off is, so there a daemon restart that stops a VM fails here);
- `autorestart`: no VM is left autorestartPending while its home node is ready;
- `processes`: no process died by itself (only the faults and the fence agent kill), and
  every SIGTERM stopped its daemon in time.
Called by tests/support/chaos/run.py; its results go to tests/support/chaos/report.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from tests.support.chaos.model import (
    META_FIELDS,
    NODE_VERBS,
    OK,
    STATE_OF_VERB,
    STOPPERS,
    UNKNOWN,
    ZVM,
    Evidence,
    Op,
    ZNode,
)
from tests.support.history import DOWN, Run, double_runs

VM_STATES = frozenset({"stopped", "starting", "running", "shutting-down", "stopping",
                       "restarting", "migrating", "failed", "disabled", "unknown"})
DESIRED = frozenset({"running", "stopped", "disabled"})
SKEW = 0.5  # seconds: client and node clocks are one machine's, events are logged late
NODE_LAG = 15.0  # seconds: a flush or ready asked this long before a run began may stop it


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str  # a VM or node name
    message: str
    at: float | None = None  # when, in the history (for the report's excerpt)


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    examined: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations


Found = tuple[int, list[Violation]]


def doc(value: dict[str, Any] | str | None) -> dict[str, Any]:
    """A parsed document, or {} for an absent or unparseable one."""
    return value if isinstance(value, dict) else {}


# --- one runner ------------------------------------------------------------------------------

def one_runner(ev: Evidence) -> Found:
    out = [Violation("one-runner", a.vm, f"ran on {a.node} {_span(a)} and on {b.node} "
                     f"{_span(b)} at the same time", max(a.start, b.start))
           for a, b in double_runs(ev.runs)]
    return len({r.vm for r in ev.runs}), out


def _span(r: Run) -> str:
    end = "..." if math.isinf(r.end) else f"{r.end:.2f}"
    return f"[{r.start:.2f}, {end})"


# --- writes kept -----------------------------------------------------------------------------

@dataclass
class Expectation:
    """What one VM (a slot, across renames) must look like, from its client's record."""

    names: set[str]
    required: bool = False
    gone: set[str] = field(default_factory=set)
    fields: dict[str, list[Any]] = field(default_factory=dict)
    min_restart: int = 0
    min_generation: int = 0  # the newest generation an answer showed
    last_ack: float = 0.0


def _allow(exp: Expectation, key: str, *, value: Any, op: Op) -> None:
    if op.outcome == OK:
        exp.fields[key] = [value]
    elif op.outcome == UNKNOWN:
        exp.fields.setdefault(key, []).append(value)


def _apply(exp: Expectation, op: Op) -> None:
    """Fold one request into the expectation (requests of a slot come in order)."""
    if op.outcome == OK:
        exp.last_ack = op.done
    if op.outcome == OK and op.answer.get("generation"):
        exp.min_generation = max(exp.min_generation, int(op.answer["generation"]))
    if op.verb == "define":
        exp.required = op.outcome == OK
        for key in (*META_FIELDS, "state"):
            if key in op.args:
                _allow(exp, key, value=op.args[key], op=op)
    elif op.verb in STATE_OF_VERB:
        _allow(exp, "state", value=STATE_OF_VERB[op.verb], op=op)
        if op.verb == "restart" and op.outcome == OK:
            exp.min_restart = max(exp.min_restart, int(op.answer.get("restartRequest", 0)))
    elif op.verb == "meta":
        for key, value in op.args.items():
            _allow(exp, key, value=value, op=op)
    elif op.verb == "rename" and op.maybe_applied:
        new = str(op.args["new_name"])
        exp.names = {new} if op.outcome == OK else exp.names | {new}
        if op.outcome == OK:
            exp.gone.add(str(op.vm))
    if op.outcome == OK and op.answer.get("state"):
        exp.fields["state"] = [op.answer["state"]]  # what the answer saw, after the write


def expectations(ops: Iterable[Op]) -> dict[int, Expectation]:
    out: dict[int, Expectation] = {}
    for op in sorted(ops, key=lambda o: o.seq):
        if op.slot is None or op.vm is None:
            continue
        exp = out.setdefault(op.slot, Expectation({op.vm}))
        _apply(exp, op)
    return out


def _controller_states(exp: Expectation, vm: ZVM) -> list[str]:
    """Desired states the primary itself may have written (DESIGN.md section 4): stopped
    when nothing could take the VM, running when autorestart brought it back. Allowed when
    the spec was written after the last answer the client saw (every spec write bumps the
    generation): a value no client write could have set then came from another writer."""
    generation = int(doc(vm.spec).get("metadata", {}).get("generation", 0) or 0)
    return ["running", "stopped"] if generation > exp.min_generation else []


def _field_value(vm: ZVM, key: str) -> Any:
    spec = doc(vm.spec).get("spec", {})
    if key in ("state", "shutdownTimeout"):  # kept in spec itself, not in spec.meta
        return spec.get(key)
    return spec.get("meta", {}).get(key)


def _check_fields(exp: Expectation, vm: ZVM) -> list[str]:
    problems = []
    for key, allowed in sorted(exp.fields.items()):
        value = _field_value(vm, key)
        extra = _controller_states(exp, vm) if key == "state" else []
        if value not in allowed and value not in extra:
            problems.append(f"{key} is {value!r}, the last acknowledged write set "
                            f"{allowed[0]!r}" + (f" (or {allowed[1:]!r})" if allowed[1:] else ""))
    spec_doc = doc(vm.spec)
    restart = int(spec_doc.get("spec", {}).get("restartRequest", 0) or 0)
    if restart < exp.min_restart:
        problems.append(f"restartRequest is {restart}, an acknowledged restart made it "
                        f"{exp.min_restart}")
    generation = int(spec_doc.get("metadata", {}).get("generation", 0) or 0)
    if generation < exp.min_generation:
        problems.append(f"generation is {generation}, an acknowledged write answered "
                        f"{exp.min_generation}")
    return problems


def _check_slot(exp: Expectation, ev: Evidence) -> list[Violation]:
    vms = ev.snapshot.vms
    present = sorted(n for n in exp.names if n in vms)
    label = "/".join(sorted(exp.names))
    out = [Violation("writes-kept", n, f"{n} was renamed away (acknowledged) but exists",
                     exp.last_ack) for n in sorted(exp.gone & set(vms))]
    if not present:
        if exp.required:
            out.append(Violation("writes-kept", label, f"{label} is missing from ZooKeeper "
                                 "after an acknowledged define", exp.last_ack))
        return out
    if len(present) > 1:
        return [*out, Violation("writes-kept", label, f"both {' and '.join(present)} exist: "
                                "a half-done rename", exp.last_ack)]
    out += [Violation("writes-kept", present[0], problem, exp.last_ack)
            for problem in _check_fields(exp, vms[present[0]])]
    return out


def _check_node_ops(ev: Evidence) -> list[Violation]:
    last: dict[str, tuple[Op, list[str]]] = {}
    for op in sorted(ev.ops, key=lambda o: o.seq):
        if op.verb not in NODE_VERBS or op.node is None:
            continue
        want = "flushed" if op.verb == "flush" else "ready"
        if op.outcome == OK:
            last[op.node] = (op, [want])
        elif op.outcome == UNKNOWN and op.node in last:
            last[op.node][1].append(want)
    out = []
    for name, (op, allowed) in sorted(last.items()):
        node = ev.snapshot.nodes.get(name)
        value = doc(node.spec).get("spec", {}).get("domainState") if node else None
        fenced_after = any(t > op.sent for t in ev.fences.get(name, []))
        if value not in allowed and not (fenced_after and value == "flushed"):
            out.append(Violation("writes-kept", name, f"node {name} wants {value!r}, the "
                                 f"last acknowledged request asked {allowed[0]!r}", op.done))
    return out


def writes_kept(ev: Evidence) -> Found:
    exps = expectations(ev.ops)
    out = [v for exp in exps.values() for v in _check_slot(exp, ev)]
    return len(exps), out + _check_node_ops(ev)


# --- whole objects ---------------------------------------------------------------------------

def _xml_name(xml: Any) -> str | None:
    try:
        return (ElementTree.fromstring(str(xml)).findtext("name") or "").strip() or None
    except ElementTree.ParseError:
        return None


def _parts_missing(vm: ZVM) -> list[str]:
    out = []
    for part in ("spec", "placement", "status"):
        value = getattr(vm, part)
        if value is None:
            out.append(f"no {part}")
        elif isinstance(value, str):
            out.append(f"{part} does not parse ({value[:60]})")
    if isinstance(vm.owner, str):
        out.append(f"owner does not parse ({vm.owner[:60]})")
    return out


def _disagreements(vm: ZVM, nodes: dict[str, ZNode]) -> list[str]:
    spec_doc, placement, status = doc(vm.spec), doc(vm.placement), doc(vm.status)
    spec = spec_doc.get("spec", {})
    out = []
    if spec_doc.get("metadata", {}).get("name") != vm.name:
        out.append(f"metadata.name is {spec_doc.get('metadata', {}).get('name')!r}")
    if _xml_name(spec.get("xml")) != vm.name:
        out.append(f"the domain XML names {_xml_name(spec.get('xml'))!r}")
    if spec.get("state") not in DESIRED:
        out.append(f"desired state {spec.get('state')!r}")
    if status.get("state") not in VM_STATES:
        out.append(f"status state {status.get('state')!r}")
    node, limits = placement.get("node"), spec.get("meta", {}).get("limits") or []
    if node is not None and node not in nodes:
        out.append(f"placed on unknown node {node!r}")
    if node is not None and limits and node not in limits:
        out.append(f"placed on {node}, outside its limits {limits}")
    owner = doc(vm.owner).get("node") if vm.owner is not None else None
    if vm.owner is not None and owner not in nodes:
        out.append(f"owned by unknown node {owner!r}")
    return out


def whole_objects(ev: Evidence) -> Found:
    out = []
    for name, vm in sorted(ev.snapshot.vms.items()):
        problems = _parts_missing(vm) or _disagreements(vm, ev.snapshot.nodes)
        out += [Violation("whole-objects", name, f"{name}: {p}", ev.snapshot.taken)
                for p in problems]
    for name, node in sorted(ev.snapshot.nodes.items()):
        for part in ("spec", "status"):
            if not isinstance(getattr(node, part), dict):
                out.append(Violation("whole-objects", name, f"node {name}: {part} is "
                                     f"{getattr(node, part)!r}", ev.snapshot.taken))
    return len(ev.snapshot.vms) + len(ev.snapshot.nodes), out


# --- desired running -------------------------------------------------------------------------

def open_runs(runs: Iterable[Run]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in runs:
        if math.isinf(r.end):
            out.setdefault(r.vm, set()).add(r.node)
    return out


def _running_problems(vm: ZVM, nodes: dict[str, ZNode], *, where: set[str]) -> list[str]:
    placement, status = doc(vm.placement), doc(vm.status)
    node = placement.get("node")
    if node is None:
        return ["desired running, but placed nowhere"]
    out = []
    if status.get("state") != "running" or status.get("node") != node:
        out.append(f"desired running on {node}, status says {status.get('state')} on "
                   f"{status.get('node')}")
    if doc(vm.owner).get("node") != node:
        out.append(f"placed on {node}, owner is {doc(vm.owner).get('node')}")
    host = nodes.get(node)
    if host is None or not host.alive or doc(host.status).get("daemonState") != "run":
        out.append(f"placed on {node}, which is not alive and running")
    if where != {node}:
        out.append(f"placed on {node}, the history has it running on {sorted(where) or 'none'}")
    return out


def desired_running(ev: Evidence) -> Found:
    where = open_runs(ev.runs)
    out, examined = [], 0
    for name, vm in sorted(ev.snapshot.vms.items()):
        spec = doc(vm.spec).get("spec", {})
        if not isinstance(vm.spec, dict):
            continue
        examined += 1
        if spec.get("state") == "running" and not doc(vm.placement).get("autorestartPending"):
            problems = _running_problems(vm, ev.snapshot.nodes, where=where.get(name, set()))
        elif where.get(name):
            problems = [f"desired {spec.get('state')}, the history has it running on "
                        f"{sorted(where[name])}"]
        else:
            problems = []
        out += [Violation("desired-running", name, f"{name}: {p}", ev.snapshot.taken)
                for p in problems]
    out += [Violation("desired-running", name, f"{name} runs on {sorted(nodes)}, but Herd "
                      "has no such VM (renamed or deleted while running?)", ev.snapshot.taken)
            for name, nodes in sorted(where.items()) if name not in ev.snapshot.vms]
    return examined, out


# --- no unexplained stop ---------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """What may explain the end of one run: requests on its VM since the VM's previous
    run ended, a flush of its node or a ready of another node (which returns VMs there)
    shortly before or during it, or a fence of its node (which flushes it)."""

    run: Run
    since: float  # when the VM's previous run ended (-inf: none)


def _explains(op: Op, w: Window) -> bool:
    run = w.run
    if not op.maybe_applied or op.sent > run.end + SKEW:
        return False
    if op.verb in STOPPERS:
        return op.vm == run.vm and op.sent >= w.since - SKEW
    if op.sent < run.start - NODE_LAG:
        return False
    if op.verb == "flush":  # moves the VMs on that node away
        return op.node == run.node
    # A ready returns the VMs whose lastNode it is (from wherever they run).
    return op.verb == "ready" and op.node != run.node


def _windows(runs: list[Run]) -> list[Window]:
    by_vm: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: r.start):
        by_vm.setdefault(r.vm, []).append(r)
    out = []
    for of_vm in by_vm.values():
        for run in of_vm:
            if run.cause not in DOWN:
                continue
            since = max((r.end for r in of_vm if r is not run and r.end <= run.start + SKEW),
                        default=-math.inf)
            out.append(Window(run, since))
    return sorted(out, key=lambda w: w.run.end)


def no_unexplained_stop(ev: Evidence) -> Found:
    relevant = [o for o in ev.ops if o.verb in STOPPERS or o.verb in NODE_VERBS]
    windows = _windows(ev.runs)
    out = []
    for w in windows:
        fenced = any(w.since - SKEW <= t <= w.run.end + SKEW
                     for t in ev.fences.get(w.run.node, []))
        if fenced or any(_explains(op, w) for op in relevant):
            continue
        out.append(Violation("no-unexplained-stop", w.run.vm, f"{w.run.vm} stopped on "
                             f"{w.run.node} ({w.run.cause}) with no request that stops or "
                             "moves it, no flush and no host death", w.run.end))
    return len(windows), out


# --- autorestart, processes ------------------------------------------------------------------

def _ready(node: ZNode | None) -> bool:
    status = doc(node.status) if node else {}
    return bool(node and node.alive and status.get("daemonState") == "run"
                and status.get("domainState") == "ready")


def autorestart(ev: Evidence) -> Found:
    pending = [(n, vm) for n, vm in sorted(ev.snapshot.vms.items())
               if doc(vm.placement).get("autorestartPending")]
    out = []
    for name, vm in pending:
        home = doc(vm.placement).get("home")
        if home is None or _ready(ev.snapshot.nodes.get(str(home))):
            out.append(Violation("autorestart", name, f"{name} is autorestartPending and its "
                                 f"home {home} is ready, yet it was not started",
                                 ev.snapshot.taken))
    return len(pending), out


def processes(ev: Evidence) -> Found:
    out = [Violation("processes", e.process, f"{e.process} exited by itself (code {e.code}) "
                     f"at {e.at:.2f}", e.at) for e in ev.exits if not e.expected]
    out += [Violation("processes", name, f"{name} did not stop on SIGTERM in time (killed)",
                      at) for name, at in ev.stuck]
    return len(ev.exits), out


Check = Callable[[Evidence], Found]
CHECKS: tuple[tuple[str, str, Check], ...] = (
    ("one-runner", "never two nodes running one VM at once", one_runner),
    ("writes-kept", "every acknowledged write is in ZooKeeper", writes_kept),
    ("whole-objects", "no object is half-written", whole_objects),
    ("desired-running", "desired running = running, on a live node in its limits",
     desired_running),
    ("no-unexplained-stop", "no VM stopped by a fault alone", no_unexplained_stop),
    ("autorestart", "autorestartPending VMs started once home is ready", autorestart),
    ("processes", "no process died by itself or hung on SIGTERM", processes),
)


def check(ev: Evidence) -> list[CheckResult]:
    """Every check's result, in report order."""
    results = []
    for name, title, fn in CHECKS:
        examined, violations = fn(ev)
        results.append(CheckResult(name, title, examined,
                                   sorted(violations, key=lambda v: (v.at or 0.0, v.subject))))
    return results
