"""Fence agents run for real: a command agent, and the ipmi agent against a stand-in
`ipmitool` on PATH that keeps the chassis power state in a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cluster.fencing import Fencer

IPMITOOL = """#!/bin/sh
# stand-in for ipmitool: args ... chassis power off|status; state in $STATE
for last; do :; done
case "$last" in
  off) [ -n "$REFUSE" ] && { echo "Unable to set Chassis Power Control" >&2; exit 1; }
       echo off > "$STATE"; echo "Chassis Power Control: Down/Off" ;;
  status) echo "Chassis Power is $(cat "$STATE")" ;;
esac
[ "$IPMI_PASSWORD" = secret ] || exit 3
"""


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(0o755)
    return path


def test_command_agent_passes_the_node_and_reads_the_exit_code(tmp_path: Path) -> None:
    ok = script(tmp_path, "ok", f"#!/bin/sh\necho \"$HERD_NODE $1\" > {tmp_path}/seen\n")
    result = Fencer({"default": {"agent": "command", "command": str(ok)}}).fence("hv7")
    assert result.ok and (tmp_path / "seen").read_text().split() == ["hv7", "hv7"]
    bad = script(tmp_path, "bad", "#!/bin/sh\necho 'BMC unreachable' >&2\nexit 4\n")
    result = Fencer({"default": {"agent": "command", "command": str(bad)}}).fence("hv7")
    assert not result.ok and "exited 4" in result.message and "BMC unreachable" in result.message


def test_no_agent_means_no_fence() -> None:
    result = Fencer({}).fence("hv1")
    assert not result.ok and "no fence agent" in result.message


@pytest.mark.parametrize(("refuse", "ok"), [(False, True), (True, False)])
def test_ipmi_succeeds_only_on_a_confirmed_power_off(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     refuse: bool, ok: bool) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script(bindir, "ipmitool", IPMITOOL)
    (tmp_path / "power").write_text("on\n")
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("STATE", str(tmp_path / "power"))
    if refuse:
        monkeypatch.setenv("REFUSE", "1")
    fencer = Fencer({"nodes": {"hv1": {"agent": "ipmi", "host": "10.9.9.9", "user": "admin",
                                       "password": "secret"}}})
    result = fencer.fence("hv1")
    assert result.ok is ok
    assert (tmp_path / "power").read_text().strip() == ("on" if refuse else "off")
