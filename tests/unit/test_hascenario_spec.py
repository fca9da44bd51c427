"""The HA scenario loader (`tests.support.hascenario_spec`): every file of tests/scenarios/
loads, and a file that cannot be run is refused with an error naming the file, the place
in it and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hascenario_spec import DEFAULT_TIMEOUT, ScenarioError, VMSpec, load

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

MINIMAL = """
nodes: [hv1, {name: hv2, memory: 4096, fence: fail}]
vms:
  - {name: web, node: hv1}
steps:
  - {do: flush, node: hv1}
  - {expect: {web: {node: hv2, state: running}}, timeout: 5}
"""


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_scenario_file_loads() -> None:
    paths = sorted(SCENARIOS.glob("*.yaml"))
    assert len(paths) >= 20
    for path in paths:
        assert load(path).name == path.stem


def test_a_minimal_scenario_with_its_defaults(tmp_path: Path) -> None:
    sc = load(write(tmp_path, MINIMAL))
    assert [n.name for n in sc.nodes] == ["hv1", "hv2"]
    assert (sc.nodes[0].memory, sc.nodes[0].fence, sc.nodes[1].fence) == (32768, "ok", "fail")
    assert sc.vms == (VMSpec(name="web", node="hv1"),)
    assert [(s.number, s.action, s.timeout) for s in sc.steps] == [
        (1, "flush", DEFAULT_TIMEOUT), (2, "expect", 5.0)]
    assert sc.xfail is None and sc.xfail_strict


@pytest.mark.parametrize(("text", "message"), [
    (MINIMAL.replace("node: hv1}\nsteps", "node: hv1, memroy: 2}\nsteps"),
     "case.yaml: vms[0]: unknown key 'memroy'"),
    (MINIMAL.replace("{do: flush, node: hv1}", "{do: flush, node: hv9}"),
     "case.yaml: steps[0] (flush): no node 'hv9' in this scenario (it has: hv1, hv2)"),
    (MINIMAL.replace("{do: flush, node: hv1}", "{do: flsh, node: hv1}"),
     "case.yaml: steps[0]: do: 'flsh' is not one of"),
    (MINIMAL.replace("{do: flush, node: hv1}", "{do: maintenance, on: true}"),
     "unknown key True (YAML reads a bare on/off/yes/no as a boolean)"),
    (MINIMAL.replace("state: running}}", "state: runing}}"),
     "case.yaml: steps[1] (expect): web: state: 'runing' is not one of"),
    (MINIMAL.replace("{web: {node", "{db: {node"),
     "case.yaml: steps[1] (expect): no VM 'db' in this scenario"),
    (MINIMAL.replace("timeout: 5", "timeout: 0"), "timeout must be a positive number"),
    (MINIMAL.replace("  - {do: flush", "  - {expect-apart: [web], do: flush"),
     "case.yaml: steps[0] (flush): unknown key 'expect-apart'"),
    (MINIMAL.replace("vms:\n", "rules:\n  - {name: r, kind: apart, vms: [web, x]}\nvms:\n"),
     "case.yaml: rule r: no VM 'x' in this scenario"),
    (MINIMAL.replace("nodes: [hv1,", "nodes: [hv1, hv1,"), "case.yaml: nodes: 'hv1' is named"),
    ("nodes: [hv1]\n", "case.yaml: 'steps' is required"),
    ("nodes: [hv1\n", "case.yaml: not YAML"),
])
def test_a_bad_file_is_refused_saying_where_and_why(tmp_path: Path, text: str,
                                                    message: str) -> None:
    with pytest.raises(ScenarioError) as found:
        load(write(tmp_path, text))
    assert message in str(found.value)
