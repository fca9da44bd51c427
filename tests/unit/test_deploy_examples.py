"""The deployment examples (deploy/, docs/deploy.md) stay valid: every example herd-node and
herd-api config loads with the daemons' own loaders (the files they name are created in a
scratch copy: the loaders check that they exist), each node config names its own node,
TLS to ZooKeeper and libvirt's TLS migration are on, and the systemd units pass
`systemd-analyze verify` (with the binary paths pointed at this checkout's)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.config import load_config as load_node_config
from server.config import load_config as load_api_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
VENV_BIN = Path(sys.executable).parent  # where herd-node and herd-api are installed


def relocated(example: Path, scratch: Path) -> Path:
    """The example with every /etc/herd file it names created under `scratch`."""
    text = example.read_text()
    for path in sorted(set(re.findall(r"/etc/herd/[\w./-]+", text))):
        local = scratch / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("herd:example-secret\n" if path.endswith("zk-auth") else "x\n")
        text = text.replace(path, str(local))
    out = scratch / example.name
    out.write_text(text)
    return out


@pytest.mark.parametrize("name", ["hv1", "hv2", "hv3"])
def test_the_node_examples_load(name: str, tmp_path: Path) -> None:
    config = load_node_config(relocated(DEPLOY / "examples" / f"node-{name}.yaml", tmp_path), {})
    assert config.name == name and config.coordinator
    assert config.migration_uri is not None and config.migration_uri.startswith("qemu+tls://")
    target = config.zk_target
    assert target.user == "herd" and target.tls is not None
    assert set(yaml.safe_load((DEPLOY / "examples" / f"node-{name}.yaml").read_text())
               ["fence"]["nodes"]) == {"hv1", "hv2", "hv3"}


def test_the_api_example_loads(tmp_path: Path) -> None:
    config = load_api_config(relocated(DEPLOY / "examples" / "api.yaml", tmp_path), {})
    assert config.zk_target.tls is not None and config.tls_cert is not None
    assert not config.anonymous_reads


def test_the_ensemble_example_serves_tls_only() -> None:
    lines = (DEPLOY / "examples" / "zoo.cfg").read_text().splitlines()
    assert not any(line.startswith("clientPort=") for line in lines)
    assert "secureClientPort=2281" in lines and "sslQuorum=true" in lines


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize("unit", ["herd-node.service", "herd-api.service",
                                  "herd-watchdog.service"])
def test_the_units_verify(unit: str, tmp_path: Path) -> None:
    text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/herd/bin", str(VENV_BIN))
    text = re.sub(r"^(Requires|After)=.*libvirtd.*$", "After=network-online.target", text,
                  flags=re.M)  # this machine need not run libvirtd as a unit
    text = text.replace("User=herd\n", "").replace("Group=herd\n", "")
    (tmp_path / unit).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if unit in line]
    assert done.returncode == 0 and problems == [], done.stderr
