"""HA scenario files (tests/scenarios/*.yaml): their format, loaded and checked (pure).

A scenario is a small table: the cluster (`nodes`, `config`, `vms`, `rules`) and `steps`,
each either an action (`do: <action>` with its arguments) or one expectation
(`expect...: <what>`, optional `timeout` in seconds). `load(path)` returns a `Scenario` or
raises `ScenarioError` naming the file, the place in it and what is wrong (an unknown
key, a missing one, a wrong type, a node or VM that the scenario never names). Read by
`tests.support.hascenario` (the runner) and tests/integration/test_ha_scenarios.py;
the format itself is described in tests/scenarios/README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vocabulary import (
    DaemonState,
    DesiredDomainState,
    DesiredState,
    DomainState,
    RuleKind,
    Selector,
    VMState,
)

DEFAULT_TIMEOUT = 20.0  # seconds an expectation may take before the scenario fails


class ScenarioError(ValueError):
    """A scenario file that cannot be run as written."""


@dataclass(frozen=True)
class Kind:
    """One accepted type of value: a test and its name for error messages."""

    name: str
    test: Callable[[Any], bool]


def _names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


STR = Kind("a string", lambda v: isinstance(v, str))
OPT_STR = Kind("a string or null", lambda v: v is None or isinstance(v, str))
INT = Kind("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
NUM = Kind("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool))
BOOL = Kind("true or false", lambda v: isinstance(v, bool))
NAMES = Kind("a list of names", _names)
MAP = Kind("a mapping", lambda v: isinstance(v, dict))
LIST = Kind("a list", lambda v: isinstance(v, list))
EVENT = Kind("an event kind or a mapping", lambda v: isinstance(v, str | dict))

NODE_FIELDS = {"name": STR, "memory": INT, "cpus": INT, "fence": STR}
VM_FIELDS = {"name": STR, "node": OPT_STR, "state": STR, "limits": NAMES, "selector": STR,
             "autorestart": BOOL, "memory": INT, "vcpus": INT}
RULE_FIELDS = {"name": STR, "kind": STR, "strict": BOOL, "vms": NAMES}
SCENARIO_FIELDS = {"description": STR, "xfail": STR, "xfail-strict": BOOL, "nodes": LIST,
                   "config": MAP, "vms": LIST, "rules": LIST, "steps": LIST}

# action -> its arguments (name -> kind) and which of them are required
ACTIONS: dict[str, tuple[dict[str, Kind], tuple[str, ...]]] = {
    "flush": ({"node": STR}, ("node",)), "ready": ({"node": STR}, ("node",)),
    "crash": ({"node": STR}, ("node",)), "boot": ({"node": STR}, ("node",)),
    "maintenance": ({"enabled": BOOL}, ("enabled",)), "config": ({"set": MAP}, ("set",)),
    "rule-add": (RULE_FIELDS, ("name", "kind", "vms")), "rule-delete": ({"name": STR}, ("name",)),
    "define": ({"vm": MAP}, ("vm",)), "start": ({"vm": STR}, ("vm",)),
    "stop": ({"vm": STR}, ("vm",)), "disable": ({"vm": STR}, ("vm",)),
}
# expectation -> the kind of its value
EXPECTS: dict[str, Kind] = {
    "expect": MAP, "expect-node": MAP, "expect-apart": NAMES, "expect-together": NAMES,
    "expect-count": MAP, "expect-event": EVENT, "expect-fenced": NAMES,
    "expect-placement-reason": MAP, "expect-primary": STR,
}
VM_EXPECT = {"node": OPT_STR, "state": STR, "want": STR, "placed": OPT_STR, "lastNode": OPT_STR,
             "autorestartPending": BOOL, "home": OPT_STR}
NODE_EXPECT = {"domainState": STR, "daemonState": STR, "want": STR, "alive": BOOL,
               "memFree": INT, "vms": INT}  # the last two: as the node published them
EVENT_FIELDS = {"kind": STR, "node": STR, "vm": STR, "message": STR}
FENCES = ("ok", "fail")
# The words a value may take (an expectation with a typo would only time out).
WORDS: dict[str, tuple[str, ...]] = {
    "state": tuple(s.value for s in VMState), "want": tuple(s.value for s in DesiredState),
    "selector": tuple(s.value for s in Selector), "kind": tuple(k.value for k in RuleKind),
    "daemonState": tuple(s.value for s in DaemonState),
    "domainState": tuple(s.value for s in DomainState),
    "node-want": tuple(s.value for s in DesiredDomainState)}


@dataclass(frozen=True)
class NodeSpec:
    name: str
    memory: int = 32768  # MiB
    cpus: int = 8
    fence: str = "ok"  # what its fence agent does: ok (exit 0) or fail (exit 1)


@dataclass(frozen=True)
class VMSpec:
    name: str
    node: str | None = None
    state: str = "running"
    limits: tuple[str, ...] = ()
    selector: str = "none"
    autorestart: bool = False
    memory: int = 512  # MiB
    vcpus: int = 1


@dataclass(frozen=True)
class RuleSpec:
    name: str
    kind: str
    vms: tuple[str, ...]
    strict: bool = True


@dataclass(frozen=True)
class Step:
    number: int  # 1-based, as error messages name it
    action: str  # a key of ACTIONS or of EXPECTS
    args: Any  # the action's arguments (a dict) or the expectation's value
    timeout: float
    text: str  # the step as written (one line of YAML)


@dataclass(frozen=True)
class Scenario:
    name: str  # the file's stem
    description: str
    nodes: tuple[NodeSpec, ...]
    config: dict[str, Any]
    vms: tuple[VMSpec, ...]
    rules: tuple[RuleSpec, ...]
    steps: tuple[Step, ...]
    xfail: str | None = None  # a known bug of the controllers, named precisely
    xfail_strict: bool = True  # False only where the bug shows by timing, not every run


def fields(where: str, doc: Any, known: Mapping[str, Kind], required: tuple[str, ...] = ()
           ) -> dict[str, Any]:
    """`doc` checked against `known` keys and their kinds, `required` present."""
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: expected a mapping, got {doc!r}")
    unknown = sorted((k for k in doc if k not in known), key=str)
    if unknown:
        hint = " (YAML reads a bare on/off/yes/no as a boolean)" \
            if isinstance(unknown[0], bool) else ""
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}{hint} (known: "
                            f"{', '.join(sorted(known))})")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ScenarioError(f"{where}: {missing[0]!r} is required")
    for key, value in doc.items():
        if not known[key].test(value):
            raise ScenarioError(f"{where}: {key!r} must be {known[key].name}, got {value!r}")
    return dict(doc)


def one_of(where: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ScenarioError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def load(path: Path) -> Scenario:
    """The scenario in `path` (see the module docstring); `ScenarioError` when invalid."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path.name}: not YAML: {e}") from None
    doc = fields(path.name, raw, SCENARIO_FIELDS, ("nodes", "steps"))
    nodes = tuple(_node(f"{path.name}: nodes[{i}]", n) for i, n in enumerate(doc["nodes"]))
    vms = tuple(vm_spec(f"{path.name}: vms[{i}]", v) for i, v in enumerate(doc.get("vms", [])))
    rules = tuple(rule_spec(f"{path.name}: rules[{i}]", r)
                  for i, r in enumerate(doc.get("rules", [])))
    steps = tuple(step(f"{path.name}: steps[{i}]", i + 1, s) for i, s in enumerate(doc["steps"]))
    scenario = Scenario(name=path.stem, description=str(doc.get("description", "")),
                        nodes=nodes, config=dict(doc.get("config", {})), vms=vms, rules=rules,
                        steps=steps, xfail=doc.get("xfail"),
                        xfail_strict=doc.get("xfail-strict", True))
    check_references(path.name, scenario)
    return scenario


def _node(where: str, doc: Any) -> NodeSpec:
    found = fields(where, {"name": doc} if isinstance(doc, str) else doc, NODE_FIELDS, ("name",))
    one_of(where, found.get("fence", "ok"), FENCES)
    return NodeSpec(**found)


def vm_spec(where: str, doc: Any) -> VMSpec:
    found = fields(where, doc, VM_FIELDS, ("name",))
    one_of(where, found.get("state", "running"), WORDS["want"])
    one_of(where, found.get("selector", "none"), WORDS["selector"])
    return VMSpec(**{**found, "limits": tuple(found.get("limits", ()))})


def rule_spec(where: str, doc: Any) -> RuleSpec:
    found = fields(where, doc, RULE_FIELDS, ("name", "kind", "vms"))
    one_of(where, found["kind"], WORDS["kind"])
    if len(found["vms"]) < 2:
        raise ScenarioError(f"{where}: a rule names at least two VMs")
    return RuleSpec(**{**found, "vms": tuple(found["vms"])})


def step(where: str, number: int, doc: Any) -> Step:
    if not isinstance(doc, dict):
        raise ScenarioError(f"{where}: a step is a mapping (do: ... or expect...: ...)")
    text = yaml.safe_dump(doc, default_flow_style=True, width=1000).strip()
    if "do" in doc:
        action = one_of(f"{where}: do", str(doc["do"]), tuple(ACTIONS))
        known, required = ACTIONS[action]
        args = fields(f"{where} ({action})", {k: v for k, v in doc.items() if k != "do"},
                      known, required)
        return Step(number, action, args, DEFAULT_TIMEOUT, text)
    keys = [k for k in doc if k != "timeout"]
    if len(keys) != 1 or keys[0] not in EXPECTS:
        raise ScenarioError(f"{where}: a step is `do: <action>` or one of "
                            f"{', '.join(EXPECTS)} (got {', '.join(map(str, keys)) or 'none'})")
    kind, value = keys[0], doc[keys[0]]
    if not EXPECTS[kind].test(value):
        raise ScenarioError(f"{where}: {kind} takes {EXPECTS[kind].name}, got {value!r}")
    timeout = doc.get("timeout", DEFAULT_TIMEOUT)
    if not NUM.test(timeout) or timeout <= 0:
        raise ScenarioError(f"{where}: timeout must be a positive number, got {timeout!r}")
    return Step(number, kind, value, float(timeout), text)


# --- references: every node, VM and rule a step names is one the scenario has ----------------

def check_references(file: str, sc: Scenario) -> None:
    nodes = _unique(f"{file}: nodes", [n.name for n in sc.nodes])
    defined = [s.args["vm"] for s in sc.steps if s.action == "define"]
    extra = tuple(vm_spec(f"{file}: steps[{s.number - 1}] (define)", s.args["vm"])
                  for s in sc.steps if s.action == "define")
    vms = _unique(f"{file}: vms and defines", [v.name for v in sc.vms] + [v["name"] for v in
                                                                         defined])
    for vm in (*sc.vms, *extra):
        _known(f"{file}: VM {vm.name}", [*([vm.node] if vm.node else []), *vm.limits], nodes,
               "node")
    rules = {r.name for r in sc.rules} | {s.args["name"] for s in sc.steps
                                          if s.action == "rule-add"}
    for rule in sc.rules:
        _known(f"{file}: rule {rule.name}", rule.vms, vms, "VM")
    for st in sc.steps:
        where = f"{file}: steps[{st.number - 1}] ({st.action})"
        if st.action == "rule-add":
            rule_spec(where, st.args)
            _known(where, st.args["vms"], vms, "VM")
        elif st.action == "rule-delete":
            _known(where, [st.args["name"]], rules, "rule")
        elif st.action in ACTIONS:
            _known(where, [st.args["node"]] if "node" in st.args else [], nodes, "node")
            _known(where, [st.args["vm"]] if isinstance(st.args.get("vm"), str) else [], vms,
                   "VM")
        else:
            check_expectation(where, st.action, st.args, nodes=nodes, vms=vms)


def check_expectation(where: str, kind: str, value: Any, *, nodes: set[str],
                      vms: set[str]) -> None:
    """The value of one expectation, against the scenario's nodes and VMs."""
    if kind in ("expect", "expect-placement-reason"):
        _known(where, list(value), vms, "VM")
        for vm, want in value.items():
            if kind == "expect":
                _words(f"{where}: {vm}", fields(f"{where}: {vm}", want, VM_EXPECT))
            elif not isinstance(want, str):
                raise ScenarioError(f"{where}: {vm}: the reason is a substring, got {want!r}")
    elif kind in ("expect-node", "expect-count"):
        _known(where, list(value), nodes, "node")
        for node, want in value.items():
            if kind == "expect-node":
                found = fields(f"{where}: {node}", want, NODE_EXPECT)
                _words(f"{where}: {node}", found, {"want": "node-want"})
            elif not INT.test(want):
                raise ScenarioError(f"{where}: {node}: a count is an integer, got {want!r}")
    elif kind in ("expect-apart", "expect-together"):
        if len(value) < 2:
            raise ScenarioError(f"{where}: names at least two VMs")
        _known(where, value, vms, "VM")
    elif kind in ("expect-fenced", "expect-primary"):
        _known(where, value if isinstance(value, list) else [value], nodes, "node")
    elif kind == "expect-event" and isinstance(value, dict):
        fields(where, value, EVENT_FIELDS, ("kind",))


def _words(where: str, found: dict[str, Any], aliases: Mapping[str, str] | None = None
           ) -> None:
    """The values of `found` whose key has a vocabulary are words of it."""
    for key, value in found.items():
        vocabulary = (aliases or {}).get(key, key)
        if vocabulary in WORDS:
            one_of(f"{where}: {key}", value, WORDS[vocabulary])


def _unique(where: str, names: list[str]) -> set[str]:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ScenarioError(f"{where}: {twice[0]!r} is named twice")
    return set(names)


def _known(where: str, names: Any, known: set[str], what: str) -> None:
    for name in names:
        if name not in known:
            raise ScenarioError(f"{where}: no {what} {name!r} in this scenario (it has: "
                                f"{', '.join(sorted(known)) or 'none'})")
