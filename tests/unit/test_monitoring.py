"""The monitoring files (`monitoring/`, issue #16) checked by Prometheus's own tool: the alert
rules pass `promtool check rules`, their unit tests (`herd-alerts.test.yml`: a VM desired
running fires HerdVMNotRunning after 5 minutes not running and not before, a node whose
alive znode is gone fires HerdNodeDown) pass `promtool test rules`, and the Grafana
dashboard parses, has its variables, and every expression in it is valid PromQL (checked
by promtool as recording rules, Grafana's variables replaced). Whether the metric names
exist is checked against the running exporters in tests/integration/test_api_metrics.py,
which uses the helpers here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "herd-alerts.yml"
RULE_TESTS = MONITORING / "herd-alerts.test.yml"
DASHBOARD = MONITORING / "grafana-herd.json"
METRIC = re.compile(r"\bherd_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$node": ".*", "$vm": ".*"}


def promtool(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is missing: Debian's package `prometheus` (scripts/setup.sh "
                    "installs it)")
    return subprocess.run([tool, *map(str, args)], input=stdin, capture_output=True,
                          text=True, check=False)


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _strings_under(node: Any, keys: set[str]) -> list[str]:
    """Every string value under one of `keys`, anywhere in a JSON document."""
    if isinstance(node, list):
        return [s for item in node for s in _strings_under(item, keys)]
    if not isinstance(node, dict):
        return []
    found = [v for k, v in node.items() if k in keys and isinstance(v, str)]
    return found + [s for k, v in node.items() for s in _strings_under(v, keys)
                    if not (k in keys and isinstance(v, str))]


def dashboard_expressions() -> list[str]:
    """The PromQL of every panel target and every query variable."""
    doc = dashboard()
    queries = [v["definition"] for v in doc["templating"]["list"] if v["type"] == "query"]
    return _strings_under(doc["panels"], {"expr"}) + queries


def rule_expressions() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def metric_names(expressions: list[str]) -> set[str]:
    """The herd_* metric names the expressions use (histogram series as their family)."""
    names = {m for e in expressions for m in METRIC.findall(e)}
    return {next((n[:-len(s)] for s in SUFFIXES if n.endswith(s)), n) for n in names}


def test_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_rules_fire_when_and_only_when_they_should() -> None:
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case["alert_rule_test"]}
    assert {"HerdVMNotRunning", "HerdNodeDown"} <= tested


def test_every_alert_has_severity_summary_and_description() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "HerdNodeDown", "HerdVMNotRunning", "HerdFenceFailed", "HerdZooKeeperSessionLost",
        "HerdPoolNearlyFull", "HerdNodeMemoryNearlyFull"}
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert set(rule["annotations"]) >= {"summary", "description"}, rule["alert"]


def test_dashboard_has_its_variables_and_datasource() -> None:
    doc = dashboard()
    assert 36 <= doc["schemaVersion"] <= 41
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert {variables["node"]["type"], variables["vm"]["type"]} == {"query"}
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        for source in [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]:
            assert source == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
    titles = {p["title"] for p in panels}
    assert {"CPU %", "VMs by state", "Nodes alive", "API latency p95 per route"} <= titles


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    exprs = dashboard_expressions()
    assert any("rate(herd_vm_cpu_seconds_total" in e and "* 100" in e for e in exprs)
    rules = []
    for i, expr in enumerate(exprs):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        if expr.startswith("label_values("):  # Grafana's, not PromQL: check its selector
            expr = expr.removeprefix("label_values(").rsplit(",", 1)[0]
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
