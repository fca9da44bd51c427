"""The real `herdctl` binary against a real dev cluster: `herdctl dev up` in a temp
directory (its own ZooKeeper, three herd-node daemons on libvirt's test driver, herd-api),
shared by the tests of this module and brought down (`herdctl dev down`) at the end,
checked to leave no process behind. Every check goes through herdctl's own output and
exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctl.client import Client
from ctl.dev import processes, state

HERDCTL = str(Path(sys.executable).with_name("herdctl"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
XML = ("<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
       "<os><type>hvm</type></os></domain>")


class Herdctl:
    """Runs herdctl with the dev cluster's HERD_DEV_DIR; answers the finished process."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("HERD_API", "HERD_TOKEN", "COLUMNS")}
        self.env["HERD_DEV_DIR"] = str(directory)

    def __call__(self, *args: str, input: str | None = None, code: int | None = 0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([HERDCTL, *args], input=input, capture_output=True, text=True,
                              env={**self.env, **(env or {})}, timeout=60)
        if code is not None:
            assert done.returncode == code, (
                f"herdctl {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def herdctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Herdctl]:
    directory = tmp_path_factory.mktemp("dev")
    h = Herdctl(directory)
    try:
        h("dev", "up", "--nodes", "3", "--timeout", "60")
        recorded = state.load(directory)
        assert recorded is not None and len(recorded.processes) == 5
        yield h
    finally:
        recorded = state.load(directory)
        down = h("dev", "down", code=None)
        left = [p for p in (recorded.processes if recorded else []) if processes.alive(p)]
        for p in left:
            processes.stop(p, grace=1)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"dev down left {left}"
        assert state.load(directory) is None


def xml_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.xml"
    path.write_text(XML.format(name=name))
    return str(path)


def vm_doc(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": name},
            "spec": {"xml": XML.format(name=name), **spec}}


def names(out: str) -> set[str]:
    return set(out.split())


def test_define_with_metadata_shows_in_info_and_meta_changes_only_what_is_given(
        herdctl: Herdctl, tmp_path: Path) -> None:
    out = herdctl("vm", "define", xml_file(tmp_path, "cli-meta"), "--node", "hv2",
                  "--limit", "hv2,hv3", "--selector", "load", "--autorestart",
                  "--migration-method", "shutdown", "--shutdown-timeout", "45").stdout
    assert out.strip() == "vm/cli-meta defined, placed on hv2"
    info = herdctl("vm", "info", "cli-meta").stdout
    for line in ("Limits:           hv2,hv3", "Selector:         load",
                 "Autorestart:      yes", "Migration method: shutdown",
                 "Shutdown timeout: 45s", "Desired:          stopped"):
        assert line in info, info
    herdctl("vm", "meta", "cli-meta", "--selector", "vms")
    meta = herdctl.json("vm", "info", "cli-meta")["spec"]["meta"]
    assert meta == {"limits": ["hv2", "hv3"], "selector": "vms", "autorestart": True,
                    "migrationMethod": "shutdown"}
    assert "nothing to change" in herdctl("vm", "meta", "cli-meta", code=2).stderr


def test_start_wait_list_filters_rename_and_remove(herdctl: Herdctl, tmp_path: Path) -> None:
    herdctl("vm", "define", xml_file(tmp_path, "cli-run"), "--node", "hv3")
    assert "vm/cli-run" in names(herdctl("vm", "list", "--state", "stopped", "-o", "name").stdout)
    assert herdctl("vm", "start", "cli-run", "--wait").stdout.strip() == \
        "vm/cli-run running on hv3"
    assert "vm/cli-run" in names(herdctl("vm", "list", "--node", "hv3", "-o", "name").stdout)
    assert "vm/cli-run" not in names(herdctl("vm", "list", "--node", "hv1", "-o",
                                             "name").stdout)
    running = herdctl.json("vm", "list", "--state", "running")
    assert "cli-run" in {v["metadata"]["name"] for v in running}
    table = herdctl("vm", "list", "--name", "^cli-run$").stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "STATE", "DESIRED", "NODE"]
    assert table[1].split()[:4] == ["cli-run", "running", "running", "hv3"]
    assert "stop it first" in herdctl("vm", "remove", "cli-run", code=1).stderr
    assert herdctl("vm", "stop", "cli-run", "--wait").stdout.strip() == "vm/cli-run stopped"
    herdctl("vm", "rename", "cli-run", "cli-run2")
    herdctl("vm", "remove", "cli-run2")
    assert "does not exist" in herdctl("vm", "info", "cli-run2", code=1).stderr


def test_get_yaml_applies_back_unchanged(herdctl: Herdctl) -> None:
    out = herdctl("apply", "-f", str(EXAMPLES)).stdout.splitlines()
    assert out == [f"vm/{n} created" for n in ("db1", "pinned", "stubborn", "web1", "web2")]
    assert herdctl("diff", "-f", str(EXAMPLES)).stdout.strip() == "no differences"
    for kind in ("vm", "node"):
        dumped = herdctl("get", kind, "-o", "yaml").stdout
        objects = list(yaml.safe_load_all(dumped))
        again = herdctl("apply", "-f", "-", input=dumped).stdout.splitlines()
        assert again == [f"{kind}/{o['metadata']['name']} unchanged" for o in objects]
    one = herdctl("get", "vm", "web1", "-o", "yaml").stdout
    assert herdctl("apply", "-f", "-", input=one).stdout.strip() == "vm/web1 unchanged"


def test_dry_run_and_diff_show_the_change_and_write_nothing(
        herdctl: Herdctl, tmp_path: Path) -> None:
    path = tmp_path / "web1.yaml"
    web1 = yaml.safe_load(herdctl("get", "vm", "web1", "-o", "yaml").stdout)
    web1["spec"]["meta"]["selector"] = "memprov"
    path.write_text(yaml.safe_dump(web1))
    out = herdctl("apply", "-f", str(path), "--dry-run").stdout
    assert "vm/web1 configured (dry run)" in out
    assert "spec.meta.selector: vms → memprov" in out
    assert "spec.meta.selector: vms → memprov" in herdctl("diff", "-f", str(path)).stdout
    assert herdctl.json("vm", "info", "web1")["spec"]["meta"]["selector"] == "vms"


def test_apply_with_one_invalid_document_applies_nothing(
        herdctl: Herdctl, tmp_path: Path) -> None:
    bad = vm_doc("cli-bad", meta={"selector": "fastest"})
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump_all([vm_doc("cli-ok"), bad]))
    err = herdctl("apply", "-f", str(path), code=2).stderr
    assert "document 2 (vm/cli-bad): spec.meta.selector: Invalid selector 'fastest'" in err
    assert f"{path}:" in err and "nothing was sent" in err
    # valid for the client, refused by the server (a node outside the limits): atomic too
    outside = vm_doc("cli-out", node="hv1", meta={"limits": ["hv2"]})
    path.write_text(yaml.safe_dump_all([vm_doc("cli-ok"), outside]))
    err = herdctl("apply", "-f", str(path), code=1).stderr
    assert "document 2 (vm/cli-out)" in err and "outside the VM's limits" in err
    herdctl("vm", "info", "cli-ok", code=1)
    herdctl("vm", "info", "cli-out", code=1)


def test_delete_removes_the_vms_a_file_names(herdctl: Herdctl, tmp_path: Path) -> None:
    path = tmp_path / "gone.yaml"
    path.write_text(yaml.safe_dump_all([vm_doc("cli-gone1"), vm_doc("cli-gone2")]))
    herdctl("apply", "-f", str(path))
    assert herdctl("delete", "-f", str(path)).stdout.splitlines() == [
        "vm/cli-gone1 deleted", "vm/cli-gone2 deleted"]
    done = herdctl("delete", "-f", str(path), code=1)
    assert "vm/cli-gone1: VM 'cli-gone1' does not exist" in done.stderr


def test_a_yaml_syntax_error_names_file_line_and_column(herdctl: Herdctl,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: herd/v1\nkind: VM\nmetadata:\n  name: [x\n")
    err = herdctl("apply", "-f", str(path), code=2).stderr
    assert err.startswith(f"herdctl: {path}:5:1: YAML syntax error")


def test_flush_and_ready_wait_and_show_the_moves(herdctl: Herdctl, tmp_path: Path) -> None:
    path = tmp_path / "flush.yaml"
    path.write_text(yaml.safe_dump_all([
        vm_doc("cli-mover", state="running", node="hv2", meta={"limits": ["hv1", "hv2"]}),
        vm_doc("cli-pin", state="running", node="hv2",
               meta={"limits": ["hv2"], "autorestart": True})]))
    herdctl("apply", "-f", str(path))
    for name in ("cli-mover", "cli-pin"):
        herdctl("vm", "start", name, "--wait")
    out = herdctl("node", "flush", "hv2", "--wait").stdout
    # Progress lines follow the watch; a quick burst may skip intermediate states, so the
    # summary line and the cluster's end state are what is checked.
    assert out.startswith("node/hv2: flush requested") and "vm/cli-mover" in out
    assert "cli-mover hv2→hv1" in out.splitlines()[-1]
    assert "cli-pin: no valid target during the flush of hv2" in out.splitlines()[-1]
    nodes = {n["metadata"]["name"]: n for n in herdctl.json("node", "list")}
    assert nodes["hv2"]["status"]["domainState"] == "flushed"
    assert "Autorestart pending: on hv2 when ready" in herdctl("vm", "info", "cli-pin").stdout
    out = herdctl("node", "ready", "hv2", "--wait").stdout
    assert "started (cli-pin on hv2)" in out and "cli-mover hv1→hv2" in out
    on_hv2 = herdctl("vm", "list", "--node", "hv2", "--state", "running", "-o", "name").stdout
    assert {"vm/cli-mover", "vm/cli-pin"} <= names(on_hv2)


def test_exit_codes_and_errors_on_stderr(herdctl: Herdctl) -> None:
    done = herdctl("vm", "info", "no-such-vm", code=1)
    assert done.stdout == "" and done.stderr.startswith("herdctl: VM 'no-such-vm' does not exist")
    assert herdctl("vm", "list", "--state", "bogus", code=2).stdout == ""
    assert "invalid_target" in herdctl("vm", "move", "web1", "--node", "hv9", code=1).stderr
    assert "Connection refused" in herdctl("--api", "http://127.0.0.1:1", "vm", "list",
                                           code=1).stderr
    assert "invalid bearer token" in herdctl("vm", "list", code=1,
                                             env={"HERD_TOKEN": "wrong"}).stderr
    assert "already runs" in herdctl("dev", "up", code=1).stderr
    assert "Primary:" in herdctl("cluster", "status").stdout
    assert "node/hv1" in herdctl("dev", "status").stdout


def test_the_remaining_verbs_and_every_output_format(herdctl: Herdctl, tmp_path: Path) -> None:
    herdctl("vm", "define", xml_file(tmp_path, "cli-verbs"), "--node", "hv1",
            "--limit", "hv1,hv2", "--migration-method", "any")
    herdctl("vm", "start", "cli-verbs", "--wait")
    # every output format of both lists names what it lists
    for fmt in ("table", "wide", "json", "yaml", "name"):
        vms = herdctl("vm", "list", "-o", fmt).stdout
        nodes = herdctl("node", "list", "-o", fmt).stdout
        assert "cli-verbs" in vms and "hv1" in nodes and "hv3" in nodes, fmt
    assert "hv2" in herdctl("node", "info", "hv2").stdout
    node_yaml = herdctl("get", "node", "hv2", "-o", "yaml").stdout
    assert "node/hv2 unchanged" in herdctl("apply", "-f", "-", input=node_yaml).stdout
    # temporary migration and back, then the lifecycle verbs, each to its target state
    herdctl("vm", "migrate", "cli-verbs", "--node", "hv2", "--wait")
    info = herdctl.json("vm", "info", "cli-verbs")
    assert info["status"]["node"] == "hv2" and info["placement"]["lastNode"] == "hv1"
    herdctl("vm", "unmigrate", "cli-verbs", "--wait")
    info = herdctl.json("vm", "info", "cli-verbs")
    assert info["status"]["node"] == "hv1" and info["placement"]["lastNode"] is None
    herdctl("vm", "restart", "cli-verbs", "--wait")
    assert herdctl.json("vm", "info", "cli-verbs")["status"]["observedRestart"] == 1
    herdctl("vm", "shutdown", "cli-verbs", "--wait")
    assert herdctl.json("vm", "info", "cli-verbs")["status"]["state"] == "stopped"
    herdctl("vm", "disable", "cli-verbs", "--wait")
    assert herdctl.json("vm", "info", "cli-verbs")["status"]["state"] == "disabled"
    herdctl("vm", "remove", "cli-verbs")


def test_token_create_list_revoke_and_the_audit_trail(herdctl: Herdctl, tmp_path: Path) -> None:
    made = herdctl("token", "create", "cli-ops", "--role", "operator")
    assert "shown now and never again" in made.stderr
    secret = next(line.split()[-1] for line in made.stdout.splitlines()
                  if line.startswith("Secret:"))
    ops = {"HERD_TOKEN": secret}
    assert {"name": "cli-ops", "role": "operator"}.items() <= \
        next(t for t in herdctl.json("token", "list") if t["name"] == "cli-ops").items()
    table = herdctl("token", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "ROLE", "CREATED"]
    assert "cli-ops" in table and secret not in table
    herdctl("vm", "define", xml_file(tmp_path, "cli-audited"), env=ops)
    refused = herdctl("token", "create", "mine", "--role", "admin", env=ops, code=1)
    assert "needs the role admin" in refused.stderr
    audit = herdctl.json("events", "--audit")
    assert {(e["token"], e["route"], e["object"], e["status"]) for e in audit} >= {
        ("cli-ops", "/api/v1/vm", "vm/cli-audited", 201),
        ("cli-ops", "/api/v1/token", None, 403)}
    assert "cli-ops" in herdctl("events", "--audit").stdout
    assert herdctl("token", "revoke", "cli-ops").stdout.strip() == "token/cli-ops revoked"
    assert "invalid bearer token" in herdctl("vm", "list", env=ops, code=1).stderr
    assert "cli-ops" not in herdctl("token", "list").stdout
    herdctl("vm", "remove", "cli-audited")


def test_config_get_set_and_get_yaml_sets_back(herdctl: Herdctl, tmp_path: Path) -> None:
    before = herdctl.json("config", "get")
    assert before["maintenance"] is False and "selector" in before
    text = herdctl("config", "set", "shutdownTimeout=77", "maintenance=true").stdout
    assert "shutdownTimeout:" in text and "77" in text
    after = herdctl.json("config", "get")
    assert (after["shutdownTimeout"], after["maintenance"]) == (77, True)
    assert after["selector"] == before["selector"]  # only the named fields change
    bad = herdctl("config", "set", "shutdownTimeout=soon", "maintenance=false", code=1)
    assert "shutdownTimeout" in bad.stderr
    assert herdctl.json("config", "get") == after  # nothing changed
    assert "KEY=VALUE" in herdctl("config", "set", "maintenance", code=2).stderr
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump({**before, "resourceVersion": "stale"}))
    herdctl("config", "set", "-f", str(saved))
    restored = herdctl.json("config", "get")
    assert {k: v for k, v in restored.items() if k != "resourceVersion"} == \
        {k: v for k, v in before.items() if k != "resourceVersion"}


def test_networks_reservations_rules_and_get_yaml_applies_back(
        herdctl: Herdctl, tmp_path: Path) -> None:
    herdctl("network", "add", "cli-web", "--type", "managed", "--vni", "4242",
            "--ipv4", "10.142.0.0/24", "--gateway4", "10.142.0.1",
            "--dhcp4", "10.142.0.100-10.142.0.150", "--domain", "web.herd.internal")
    table = herdctl("network", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["NAME", "TYPE", "CARRIER"]
    assert "cli-web" in table and "vxlan 4242" in table
    bad = herdctl("network", "add", "cli-db", "--type", "managed", "--vni", "4242",
                  "--ipv4", "10.142.0.0/25", "--gateway4", "10.142.0.1", code=1)
    assert "vni" in bad.stderr and "ipv4.network" in bad.stderr
    herdctl("network", "reservation", "add", "cli-web", "52:54:00:42:00:01", "10.142.0.10",
            "--hostname", "db1")
    assert "52:54:00:42:00:01" in herdctl("network", "reservation", "list", "cli-web").stdout
    refused = herdctl("network", "acl", "add", "cli-web", "ssh", "--direction", "in",
                      "--rule", "tcp dprt 22 accept", code=1)
    assert "nft:" in refused.stderr
    herdctl("network", "acl", "add", "cli-web", "ssh", "--direction", "in",
            "--rule", "tcp dport 22 accept")
    info = herdctl("network", "info", "cli-web").stdout
    assert "in 1000 ssh: tcp dport 22 accept" in info and "10.142.0.10" in info
    saved = tmp_path / "net.yaml"
    saved.write_text(herdctl("get", "network", "cli-web", "-o", "yaml").stdout)
    assert herdctl("apply", "-f", str(saved)).stdout.strip() == "network/cli-web unchanged"
    vm = tmp_path / "cli-nic.xml"
    vm.write_text(XML.format(name="cli-nic").replace(
        "</domain>", "<devices><interface type='network'><source network='cli-web'/>"
                     "</interface></devices></domain>"))
    herdctl("vm", "define", str(vm))
    assert "named by 1 VM" in herdctl("network", "remove", "cli-web", code=1).stderr
    herdctl("vm", "remove", "cli-nic")
    assert herdctl("network", "remove", "cli-web").stdout.strip() == "network/cli-web removed"
    assert "cli-web" not in herdctl("network", "list").stdout


def test_pools_and_volumes_from_the_cli(herdctl: Herdctl) -> None:
    herdctl("pool", "add", "cli-local", "--type", "local", "--path",
            "/var/lib/herd/pools/cli-local")
    assert "cli-local" in herdctl("pool", "list").stdout
    bad = herdctl("pool", "add", "cli-bad", "--type", "local", "--path", "rel", code=1)
    assert "path" in bad.stderr
    node = herdctl.json("pool", "info", "cli-local")["nodes"]
    assert set(node) == {"hv1", "hv2", "hv3"}
    made = herdctl("volume", "create", "cli-local", "cli-v1", "--size", "64M").stdout
    assert made.startswith("volume/cli-local/cli-v1 created on hv")
    [vol] = herdctl.json("volume", "list", "--pool", "cli-local")
    assert vol["spec"]["size"] == 64 << 20
    xml = XML.format(name="cli-disk").replace(
        "</domain>", "<devices><disk type='volume' device='disk'><source pool='cli-local' "
                     "volume='cli-v1'/><target dev='vda' bus='virtio'/></disk></devices>"
                     "</domain>")
    herdctl("vm", "define", "-", input=xml)
    assert "cli-local/cli-v1  0.1G qcow2 on hv" in herdctl("vm", "info", "cli-disk").stdout
    assert "attached" in herdctl("volume", "remove", "cli-local", "cli-v1", code=1).stderr
    assert herdctl("vm", "remove", "cli-disk", "--delete-volumes").stdout.strip() == \
        "vm/cli-disk removed with its volumes"
    [gone] = herdctl.json("volume", "list", "--pool", "cli-local") or [{"deletion": True}]
    assert gone.get("deletion")


def test_volume_clone_resize_list_by_vm_and_info_yaml_applies_back(
        herdctl: Herdctl, tmp_path: Path) -> None:
    herdctl("pool", "add", "cli-ops", "--type", "local", "--path", "/var/lib/herd/pools/cli-ops")
    herdctl("volume", "create", "cli-ops", "src", "--size", "64M", "--node", "hv1")
    refused = herdctl("volume", "clone", "cli-ops", "src", "cp1", "--node", "hv2", code=1)
    assert "node" in refused.stderr
    dev = state.load(herdctl.dir)
    assert dev is not None
    client = Client(dev.url, token=dev.token)
    version = client.get("/vm")["resourceVersion"]  # the cluster's, for the watch
    if client.get("/volume/cli-ops/src")["status"]["state"] != "ready":  # its node makes it
        assert any(e.get("name") == "cli-ops/src" and (e["object"].get("status") or {}).get(
            "state") == "ready" for e in client.watch(timeout=30, kind="Volume",
                                                      resourceVersion=version))
    said = herdctl("volume", "clone", "cli-ops", "src", "cp1").stdout
    assert said.strip() == "volume/cli-ops/cp1 created on hv1 from cli-ops/src"
    assert "volumes only grow" in herdctl("volume", "resize", "cli-ops", "src", "32M",
                                          code=1).stderr
    assert herdctl("volume", "resize", "cli-ops", "src", "128M").stdout.strip() == \
        "volume/cli-ops/src resizing to 0.1G"
    xml = XML.format(name="cli-held").replace(
        "</domain>", "<devices><disk type='volume' device='disk'><source pool='cli-ops' "
                     "volume='cp1'/><target dev='vda' bus='virtio'/></disk></devices></domain>")
    herdctl("vm", "define", "-", input=xml)
    [held] = herdctl.json("volume", "list", "--vm", "cli-held")
    assert held["metadata"]["name"] == "cp1" and held["spec"]["source"] == {"volume": "src"}
    saved = tmp_path / "storage.yaml"
    saved.write_text(herdctl("pool", "info", "cli-ops", "-o", "yaml").stdout + "---\n" +
                     herdctl("volume", "info", "cli-ops", "cp1", "-o", "yaml").stdout)
    assert herdctl("apply", "-f", str(saved)).stdout.split("\n")[:2] == [
        "pool/cli-ops unchanged", "volume/cli-ops/cp1 unchanged"]
    herdctl("vm", "remove", "cli-held", "--delete-volumes")


def test_affinity_rules_from_the_cli(herdctl: Herdctl, tmp_path: Path) -> None:
    added = herdctl("rule", "add", "cli-apart", "--kind", "apart", "--vm", "cli-r1",
                    "--vm", "cli-r2", "--strict")
    assert added.stdout.strip() == "rule/cli-apart added"
    assert added.stderr.count("herdctl: warning: No VM") == 2  # they may come later
    assert "VM 'cli-r1' is named twice" in herdctl(
        "rule", "add", "cli-bad", "--kind", "together", "--vm", "cli-r1", "--vm", "cli-r1",
        code=1).stderr
    row = next(line for line in herdctl("rule", "list").stdout.splitlines()
               if line.startswith("cli-apart"))
    assert row.split() == ["cli-apart", "apart", "yes", "cli-r1,cli-r2"]
    assert herdctl.json("rule", "info", "cli-apart")["spec"]["strict"] is True
    saved = tmp_path / "rule.yaml"
    saved.write_text(herdctl("get", "rule", "cli-apart", "-o", "yaml").stdout)
    assert herdctl("apply", "-f", str(saved)).stdout.strip() == "rule/cli-apart unchanged"
    assert herdctl("rule", "remove", "cli-apart").stdout.strip() == "rule/cli-apart removed"
    assert "cli-apart" not in herdctl("rule", "list").stdout
