"""herdctl's options and usage errors, run in-process with click's runner: no server is
contacted (every case here fails or succeeds before a request would be sent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from ctl.cmd_vm import meta_body, parse_limits
from ctl.main import cli

Run = Callable[..., Result]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Run:
    """herdctl in-process, with no server configured anywhere (no dev cluster state)."""
    monkeypatch.setenv("HERD_DEV_DIR", "/nonexistent/herd-dev")
    monkeypatch.delenv("HERD_API", raising=False)
    monkeypatch.delenv("HERD_TOKEN", raising=False)

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), prog_name="herdctl", input=input)
    return invoke


def test_limits_are_comma_separated_node_names() -> None:
    assert parse_limits("hv1, hv2,") == ["hv1", "hv2"]
    assert parse_limits("") == []
    with pytest.raises(click.BadParameter, match="not a node name: HV1"):
        parse_limits("HV1")
    with pytest.raises(click.BadParameter, match="twice"):
        parse_limits("hv1,hv1")


def test_only_the_options_given_are_sent() -> None:
    def body(*, limit: str | None = None, autorestart: bool | None = None,
             shutdown_timeout: int | None = None) -> dict[str, Any]:
        return meta_body(limit=limit, selector=None, autorestart=autorestart,
                         migration_method=None, shutdown_timeout=shutdown_timeout)
    assert body() == {}
    assert body(autorestart=False) == {"autorestart": False}
    assert body(limit="", shutdown_timeout=30) == {"limits": [], "shutdown_timeout": 30}


def test_meta_without_any_option_is_a_usage_error(run: Run) -> None:
    result = run("vm", "meta", "web1")
    assert result.exit_code == 2
    assert "nothing to change" in result.output


@pytest.mark.parametrize("args", [
    ("vm", "list", "--state", "bogus"),
    ("vm", "list", "-o", "csv"),
    ("vm", "meta", "web1", "--selector", "fastest"),
    ("vm", "meta", "web1", "--limit", "HV1"),
    ("vm", "meta", "web1", "--shutdown-timeout", "0"),
    ("vm", "start"),
    ("vm", "frobnicate", "x"),
    ("get", "pod"),
    ("rule", "add", "r", "--vm", "a", "--vm", "b"),
    ("rule", "add", "r", "--kind", "near", "--vm", "a", "--vm", "b"),
    ("apply",),
    ("dev", "up", "--nodes", "0"),
])
def test_bad_options_exit_2(run: Run, args: tuple[str, ...]) -> None:
    assert run(*args).exit_code == 2


def test_no_server_anywhere_is_a_usage_error_that_says_what_to_do(run: Run) -> None:
    result = run("vm", "list")
    assert result.exit_code == 2
    assert "herdctl dev up" in result.output


def test_invalid_files_exit_2_before_anything_is_sent(run: Run) -> None:
    result = run("--api", "http://127.0.0.1:1", "apply", "-f", "-",
                 input="apiVersion: herd/v1\nkind: VM\nmetadata: {name: x\n")
    assert result.exit_code == 2
    assert "-:4:1: YAML syntax error" in result.output


def test_help_needs_no_server(run: Run) -> None:
    result = run("vm", "--help")
    assert result.exit_code == 0
    for verb in ("define", "meta", "list", "info", "start", "shutdown", "stop", "restart",
                 "disable", "migrate", "move", "unmigrate", "rename", "remove"):
        assert verb in result.output
