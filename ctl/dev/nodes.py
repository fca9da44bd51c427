"""The simulated hypervisors of a dev cluster: libvirt test-driver node files, each node's
`herd-node` configuration, and the `command` fence agent.

- `write_node_file` writes `<dir>/<name>.xml` (8 vCPUs and 32 GiB by default) and returns
  its URI `test:///<abs path>`: every connection to it parses the file afresh, so each
  node daemon has a hypervisor of its own (see tests/support/libvirt_nodes.py for what
  the test driver does and does not do);
- `write_fence_agent` writes the fence agent: it powers a node off by killing its
  `herd-node` process by the pid file (`<dir>/<node>.pid`); its test-driver guests die
  with it, like a power-off. It exits 0 only once the process is gone;
- `node_config` is the YAML of one node: a coordinator, initially `ready`, fenced by
  that agent.
Called by `ctl.dev.cluster`. No I/O but file writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

FENCE_AGENT = """#!/bin/sh
# herdctl dev cluster fence agent: power the node off by killing its herd-node process.
pidfile="{dir}/$HERD_NODE.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
kill -9 "$pid" 2>/dev/null
while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; do
  sleep 0.05
done
echo "$HERD_NODE $(date +%s.%N)" >> "{dir}/fenced.log"
exit {code}
"""


def write_node_file(directory: Path, name: str, *, cpus: int = 8, memory_mib: int = 32768,
                    domains: Sequence[str] = ()) -> str:
    """Write `<directory>/<name>.xml` (one NUMA node, one socket, `cpus` cores, `memory_mib`
    of memory, the given domain XMLs running) and return its URI, `test:///<abs path>`."""
    path = (directory / f"{name}.xml").resolve()
    cpu = (f"<cpu><mode>static</mode><nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores>"
           f"<threads>1</threads><active>{cpus}</active><mhz>2000</mhz></cpu>")
    body = "\n  ".join([cpu, f"<memory>{memory_mib * 1024}</memory>", *domains])
    path.write_text(f"<node>\n  {body}\n</node>\n")
    return f"test://{path}"


def write_fence_agent(directory: Path, *, exit_code: int = 0) -> Path:
    """The fence agent script for the nodes whose pid files are in `directory`; tests give
    a non-zero `exit_code` for an agent that fails after powering off."""
    path = directory / "fence"
    path.write_text(FENCE_AGENT.format(dir=directory.resolve(), code=exit_code))
    path.chmod(0o755)
    return path


QEMU_FENCE_AGENT = """#!/bin/sh
# herdctl dev cluster fence agent for QEMU hosts: power the host off (its herd-node, its
# guests, its libvirtd, all with SIGKILL), like pulling the plug.
exec "{python}" -m ctl.dev.qemu power-off --dir "{hosts}" --host "$HERD_NODE" \
    --node-pidfile "{dir}/$HERD_NODE.pid" --log "{dir}/fenced.log"
"""


def write_qemu_fence_agent(directory: Path, *, hosts: Path, python: str) -> Path:
    """The fence agent of QEMU dev hosts (see `ctl.dev.qemu` power-off)."""
    path = directory / "fence"
    path.write_text(QEMU_FENCE_AGENT.format(python=python, hosts=hosts.resolve(),
                                            dir=directory.resolve()))
    path.chmod(0o755)
    return path


def node_config(name: str, *, zk_hosts: str, zk_root: str, libvirt_uri: str,
                fence: Path, address: str | None = None, event_log: Path | None = None,
                netns: str | None = None, run_dir: Path | None = None,
                metrics_address: str | None = None,
                console_logs: tuple[str, str] | None = None) -> str:
    """The `herd-node --config` YAML of one dev node (keys of `reconciler.config`). Client
    networks are managed only on nodes with a network namespace of their own (`netns`:
    the QEMU hosts); test-driver nodes share the machine's, where their links would
    collide."""
    doc: dict[str, object] = {
        "name": name, "zk_hosts": zk_hosts, "zk_root": zk_root, "zk_timeout": 4.0,
        "libvirt_uri": libvirt_uri, "coordinator": True, "initial_domain_state": "ready",
        "status_interval": 2.0,
        "fence": {"default": {"agent": "command", "command": str(fence), "timeout": 30}}}
    if address is not None:
        doc["address"] = address
        # The dev cluster's hosts share one machine: migration goes over plain TCP here
        # (real clusters default to qemu+tls, with the node certificates).
        doc["migration_uri"] = f"qemu+tcp://{address}/system"
    if event_log is not None:
        doc["event_log"] = str(event_log)
    if metrics_address is not None:
        doc["metrics_address"] = metrics_address
    if console_logs is not None:  # (as the host's virtlogd sees it, as herd-node does)
        doc["console_log_dir"], doc["console_log_local_dir"] = console_logs
    doc["networks"] = netns is not None
    if netns is not None:
        doc["netns"] = netns
        doc["bridge_device"] = "eth0"  # the host's link to the dev cluster's underlay
    if run_dir is not None:
        doc["run_dir"] = str(run_dir)
    return yaml.safe_dump(doc, sort_keys=False)
