"""The HA scenario suite (issue #17): every file of tests/scenarios/ played on a cluster of
coordinator daemons on test-driver nodes (`tests.support.hascenario`), one test each,
named by the file's stem. A scenario marked `xfail` shows a known bug of the controllers
(its reason names it); strict, so the fix of that bug makes the run say so, unless the
file says `xfail-strict: false` (a bug that shows by timing, not on every run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from store.client import Store
from tests.support.hascenario import load, run_scenario
from tests.support.hascenario_spec import Scenario, ScenarioError

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def _params() -> list[object]:
    """One parameter per file; an invalid file is a test that fails with its error."""
    params: list[object] = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        try:
            scenario: Scenario | ScenarioError = load(path)
        except ScenarioError as e:
            scenario = e
        marks = [pytest.mark.xfail(reason=scenario.xfail, strict=scenario.xfail_strict)] \
            if isinstance(scenario, Scenario) and scenario.xfail else []
        params.append(pytest.param(scenario, id=path.stem, marks=marks))
    return params


@pytest.mark.parametrize("scenario", _params())
async def test_scenario(scenario: Scenario | ScenarioError, store: Store, zk_hosts: str,
                        zk_root: str, tmp_path: Path) -> None:
    if isinstance(scenario, ScenarioError):
        pytest.fail(str(scenario), pytrace=False)
    await run_scenario(scenario, store=store, zk_hosts=zk_hosts, zk_root=zk_root,
                       directory=tmp_path)


def test_there_are_enough_scenarios() -> None:
    assert len(list(SCENARIOS.glob("*.yaml"))) >= 20
