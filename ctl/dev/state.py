"""The dev cluster's state file, `<dir>/api.json`: where herdctl finds the local cluster.

It holds the API's URL and token, the ZooKeeper address, the node names and a record of
every process `herdctl dev up` started (`ctl.dev.processes.ProcessRecord`). It is written
as soon as the first process starts and rewritten after each one (atomically, mode 0600:
it holds a token), so `herdctl dev down` can stop everything even after a `dev up` that
failed or was interrupted half-way. The directory is `--dir`, else `$HERD_DEV_DIR`, else
`~/.herd/dev`. Called by `ctl.dev.cluster` (writes) and `ctl.settings` (reads the URL
and token when neither `--api`/`HERD_API` nor `HERD_TOKEN` is given).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctl.dev.processes import ProcessRecord

STATE_FILE = "api.json"


def default_dir() -> Path:
    env = os.environ.get("HERD_DEV_DIR")
    return Path(env).expanduser() if env else Path.home() / ".herd" / "dev"


@dataclass
class DevState:
    """What `dev up` records; `url` and `token` are empty until the API serves."""

    dir: str
    zk_hosts: str = ""
    zk_root: str = "/herd"
    url: str = ""
    token: str = ""
    nodes: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    ready: bool = False  # every part was healthy when `dev up` returned
    hypervisor: str = "test"  # test: libvirt test-driver node files; qemu: ctl.dev.qemu hosts

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "token": self.token, "dir": self.dir,
                "zk_hosts": self.zk_hosts, "zk_root": self.zk_root, "nodes": self.nodes,
                "ready": self.ready, "hypervisor": self.hypervisor,
                "pids": {p.role: p.pid for p in self.processes},
                "processes": [p.to_json() for p in self.processes]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DevState:
        return cls(dir=str(doc.get("dir", "")), zk_hosts=str(doc.get("zk_hosts", "")),
                   zk_root=str(doc.get("zk_root", "/herd")), url=str(doc.get("url", "")),
                   token=str(doc.get("token", "")), nodes=list(doc.get("nodes", [])),
                   ready=bool(doc.get("ready", False)),
                   hypervisor=str(doc.get("hypervisor", "test")),
                   processes=[ProcessRecord.from_json(p) for p in doc.get("processes", [])])


def state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def load(directory: Path) -> DevState | None:
    """The state file of `directory`, or None when there is none (or it is unreadable)."""
    try:
        doc = json.loads(state_path(directory).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    try:
        return DevState.from_json(doc)
    except (KeyError, TypeError, ValueError):
        return None


def save(state: DevState) -> None:
    """Write the state file atomically, readable by its owner only."""
    path = state_path(Path(state.dir))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state.to_json(), f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def remove(directory: Path) -> None:
    try:
        state_path(directory).unlink()
    except FileNotFoundError:
        pass
