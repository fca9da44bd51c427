"""Herd installed the way docs/deploy.md installs it (issue #13): the wheel that
`python -m build` makes from this checkout goes into a fresh virtualenv, and the programs
of THAT virtualenv run a cluster from the example configs in `deploy/examples/` — three
herd-node processes (hv1-hv3, libvirt's test driver in place of qemu:///system) and
herd-api over HTTPS — against a 3-member ZooKeeper ensemble with digest auth and TLS on.
herdctl (also the installed one) then does what the guide's steps 7 and 8 do: a managed
token, a VM defined and started on hv2, the audit trail of both.

Only the host-specific values of the examples change (ZooKeeper's addresses, the files
under /etc/herd, the libvirt URI, the API's port): every other key is the example's own.
The install reads packages from the index (pip's cache after `make setup`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctl.dev.nodes import write_node_file
from ctl.dev.zookeeper import free_port
from tests.support.zkserver import ZooKeeperCluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
NODES = ("hv1", "hv2", "hv3")
PACKAGES = {"vocabulary", "schemas", "statemachine", "store", "reconciler", "server", "ctl"}
XML = "<domain type='test'><name>web1</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>" \
      "<os><type>hvm</type></os></domain>"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` of this checkout: an sdist, then the wheel built from it."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(out), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = list(out.glob("herd-*.whl"))
    assert len(wheels) == 1 and list(out.glob("herd-*.tar.gz")), list(out.iterdir())
    return wheels[0]


def test_the_wheel_holds_the_packages_and_the_three_programs(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = z.read(entry_points).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == PACKAGES  # no tests, no bench, no stray modules
    for program in ("herdctl = ctl.main:main", "herd-node = reconciler.main:main",
                    "herd-api = server.main:main"):
        assert program in scripts


class Installed:
    """A fresh virtualenv with the wheel in it, and the /etc/herd of the test's hosts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "opt-herd" / "bin"
        self.etc = root / "etc-herd"
        self.procs: list[subprocess.Popen[str]] = []
        self.metrics: dict[str, str] = {}  # node -> the metrics_address it was given

    def program(self, name: str) -> str:
        return str(self.bin / name)

    def start(self, name: str, config: Path) -> subprocess.Popen[str]:
        log = open(self.root / f"{config.stem}.log", "w")  # noqa: SIM115 - the child's
        proc = subprocess.Popen([self.program(name), "--config", str(config)],
                                stdout=subprocess.PIPE if name == "herd-api" else log,
                                stderr=log, stdin=subprocess.DEVNULL, text=True)
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def install(wheel: Path, root: Path) -> Installed:
    """Step 4 of docs/deploy.md, with the wheel: a virtualenv, `pip install 'WHEEL[libvirt]'`."""
    inst = Installed(root)
    subprocess.run([sys.executable, "-m", "venv", str(inst.bin.parent)], check=True,
                   timeout=120)
    done = subprocess.run([inst.program("pip"), "install", "-q", "--disable-pip-version-check",
                           f"{wheel}[libvirt]"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return inst


def etc_herd(inst: Installed, zk: ZooKeeperCluster) -> dict[str, Any]:
    """/etc/herd of the hosts: the ZooKeeper credential and the TLS files (steps 2-3)."""
    assert zk.pki is not None
    tls = inst.etc / "tls"
    tls.mkdir(parents=True)
    for source, target in ((zk.pki.ca, "ca.pem"), (zk.pki.client_cert, "client.pem"),
                           (zk.pki.client_key, "client.key")):
        shutil.copy(source, tls / target)
    (inst.etc / "zk-auth").write_text(":".join(zk.identity) + "\n")
    (inst.etc / "zk-auth").chmod(0o600)
    secure = ",".join(f"127.0.0.1:{m.secure_port}" for m in zk.members)
    return {"zk_hosts": secure, "zk_auth_file": str(inst.etc / "zk-auth"),
            "zk_tls_ca": str(tls / "ca.pem"), "zk_tls_cert": str(tls / "client.pem"),
            "zk_tls_key": str(tls / "client.key")}


def localised(example: str, target: Path, changes: dict[str, Any]) -> Path:
    """The example config with this machine's values for `changes`; all else as shipped."""
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    assert set(changes) <= set(doc) | {"libvirt_uri"}, set(changes) - set(doc)
    doc.update(changes)
    target.write_text(yaml.safe_dump(doc))
    target.chmod(0o600)
    return target


def serve_api(inst: Installed, zk_keys: dict[str, Any], zk: ZooKeeperCluster
              ) -> tuple[str, str]:
    """herd-api from the API example over HTTPS, with a break-glass token made the way
    step 7 makes it; answers its URL and that token."""
    assert zk.pki is not None
    config = localised("api.yaml", inst.etc / "api.yaml", {
        **zk_keys, "listen_host": "127.0.0.1", "listen_port": 0,
        "tls_cert": str(zk.pki.client_cert.with_name("server.pem")),
        "tls_key": str(zk.pki.client_cert.with_name("server.key")),
        "token_file": str(inst.etc / "tokens")})
    made = subprocess.run([inst.program("herd-api"), "token", "create", "--token-file",
                           str(inst.etc / "tokens"), "--label", "bootstrap"],
                          capture_output=True, text=True, check=True, timeout=60)
    proc = inst.start("herd-api", config)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("herd-api: serving on https://"), \
        (inst.root / "api.log").read_text()[-3000:]
    return line.split()[-1], made.stdout.strip()


@pytest.fixture(scope="module")
def cluster(wheel: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Installed, str, str]]:
    root = tmp_path_factory.mktemp("hosts")
    inst = install(wheel, root)
    zk = ZooKeeperCluster(root / "zk", members=3)
    zk.start(timeout=60)
    try:
        zk_keys = etc_herd(inst, zk)
        for name in NODES:
            inst.metrics[name] = f"127.0.0.1:{free_port()}"
            inst.start("herd-node", localised(f"node-{name}.yaml", inst.etc / f"{name}.yaml", {
                **zk_keys, "libvirt_uri": write_node_file(root, name), "address": "127.0.0.1",
                "metrics_address": inst.metrics[name]}))
        yield inst, *serve_api(inst, zk_keys, zk)
    finally:
        inst.stop()
        zk.stop()


class Herdctl:
    """The installed herdctl with one token, trusting the cluster's CA (SSL_CERT_FILE)."""

    def __init__(self, inst: Installed, url: str, token: str) -> None:
        self.program = inst.program("herdctl")
        self.env = dict(os.environ, HERD_API=url, HERD_TOKEN=token,
                        SSL_CERT_FILE=str(inst.etc / "tls" / "ca.pem"),
                        HERD_DEV_DIR=str(inst.root / "no-dev-cluster"))

    def __call__(self, *args: str) -> str:
        done = subprocess.run([self.program, *args], env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


def ready_nodes(herdctl: Herdctl) -> set[str]:
    return {n["metadata"]["name"] for n in herdctl.json("node", "list")
            if n["status"].get("daemonState") == "run" and n["status"].get("domainState")
            == "ready" and n.get("alive")}


def test_a_cluster_from_the_examples_runs_a_vm(cluster: tuple[Installed, str, str],
                                               tmp_path: Path) -> None:
    inst, url, bootstrap = cluster
    admin = Herdctl(inst, url, bootstrap)
    deadline = time.monotonic() + 60
    while ready_nodes(admin) != set(NODES):  # the nodes register as their daemons come up
        assert time.monotonic() < deadline, admin("node", "list")
        time.sleep(0.25)  # another process's start-up: polled through the CLI under test
    ops = Herdctl(inst, url, admin.json("token", "create", "ops", "--role", "operator")["secret"])
    (tmp_path / "web1.xml").write_text(XML)
    assert "placed on hv2" in ops("vm", "define", str(tmp_path / "web1.xml"), "--node", "hv2")
    assert ops("vm", "start", "web1", "--wait").strip().startswith("vm/web1 running")
    [vm] = ops.json("vm", "list")
    assert (vm["metadata"]["name"], vm["status"]["state"], vm["status"]["node"]) == \
        ("web1", "running", "hv2")
    # The node's exporter (metrics_address of the example) publishes the guest it runs.
    with urllib.request.urlopen(f"http://{inst.metrics['hv2']}/metrics", timeout=30) as resp:
        scraped = resp.read().decode()
    assert 'herd_vm_cpu_seconds_total{node="hv2",vm="web1"}' in scraped, scraped[:2000]
    audit = admin.json("events", "--audit")
    writes = {(e["token"], e["method"], e["object"], e["status"]) for e in audit}
    assert {("file:bootstrap", "POST", "token/ops", 201), ("ops", "POST", "vm/web1", 201),
            ("ops", "POST", "vm/web1", 200)} <= writes, writes
