"""herd-node's configuration: file, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_config
from store.configfile import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return path


def test_file_values_and_flag_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "name: hv1\nzk-hosts: 10.0.0.1:2181,10.0.0.2:2181\ncoordinator: true\n"
                           "libvirt_uri: test:///tmp/hv1.xml\nworkers: 8\n")
    cfg = load_config(path, {"workers": 2, "zk_root": None})
    assert cfg.name == "hv1"
    assert cfg.zk_hosts == "10.0.0.1:2181,10.0.0.2:2181"
    assert cfg.coordinator is True
    assert cfg.workers == 2
    assert cfg.zk_root == "/herd"
    assert cfg.status_interval == 5.0
    assert cfg.initial_domain_state == "flushed"


@pytest.mark.parametrize(("text", "key"), [
    ("name: Bad_Name\n", "name"),
    ("workers: 0\n", "workers"),
    ("zk_root: herd\n", "zk_root"),
    ("libvirt_uri: nonsense\n", "libvirt_uri"),
    ("status_interval: -1\n", "status_interval"),
    ("initial_domain_state: flushing\n", "initial_domain_state"),
    ("migration_concurrency: 0\n", "migration_concurrency"),
    ("migration_timeout: 0\n", "migration_timeout"),
    ("migration_uri: 10.0.0.1\n", "migration_uri"),
    ("colour: blue\n", "colour"),
])
def test_a_bad_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config: {key}: "):
        load_config(write(tmp_path, "name: hv1\n" + text), {})


def test_bad_yaml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed\n"), {})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", {})
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), {})


def test_a_bad_override_is_named_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: zk_hosts: "):
        load_config(write(tmp_path, "name: hv1\n"), {"zk_hosts": "a b"})


def test_fence_agents_are_validated_with_the_key_named(tmp_path: Path) -> None:
    ok = load_config(write(tmp_path, "name: hv1\nfence:\n  default: {agent: command, "
                                     "command: /bin/true}\n"), {})
    assert ok.fence["default"]["command"] == "/bin/true"
    with pytest.raises(ConfigError, match=r"fence\.nodes\.hv2\.host: required by the ipmi"):
        load_config(write(tmp_path, "name: hv1\nfence:\n  nodes:\n    hv2: {agent: ipmi, "
                                    "user: u, password: p}\n"), {})
    with pytest.raises(ConfigError, match=r"fence\.default\.agent: "):
        load_config(write(tmp_path, "name: hv1\nfence:\n  default: {agent: telnet}\n"), {})


def test_the_migration_uri_follows_the_address_unless_given(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path, "name: hv1\n"), {})
    assert plain.migration_uri is None  # live migration to it: refused with a reason
    assert (plain.migration_concurrency, plain.migration_timeout) == (2, 300.0)
    cfg = load_config(write(tmp_path, "name: hv1\naddress: 10.0.0.1\n"), {})
    assert cfg.migration_uri == "qemu+tls://10.0.0.1/system"  # TLS unless told otherwise
    cfg = load_config(write(tmp_path, "name: hv1\naddress: 10.0.0.1\n"
                                      "migration_uri: qemu+tls://hv1.example/system\n"), {})
    assert cfg.migration_uri == "qemu+tls://hv1.example/system"
