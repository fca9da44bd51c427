"""`make demo`: a local cluster, and a short story told with the real commands.

It brings a dev cluster up in a directory of its own (`herdctl dev up`, 3 nodes on
libvirt's test driver), applies `examples/`, then runs, printing each command before its
output: a list; a flush of hv1 (its VMs move, the VM limited to hv1 stops); ready (the VMs
come back, the limited one by autorestart); a graceful shutdown of a guest that ignores
ACPI, aborted by a start; and `herdctl dev down`. After every step it checks through the
API (GET /vm, GET /node, GET /watch) that what was shown really happened, and exits
non-zero naming the first step that did not. Nothing is simulated but the hypervisors
(the test driver), and the demo says so. Called by `make demo` (after `make setup`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ctl.client import ApiError, Client, Unreachable
from ctl.dev import processes, state
from ctl.dev.cluster import binary
from ctl.settings import make_client

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
VMS = ("db1", "pinned", "stubborn", "web1", "web2")
WAIT = 30.0  # seconds any one outcome may take to show


class DemoFailed(Exception):
    """A step did not do what the demo shows; the message says which."""


def _node(vm: dict[str, Any]) -> Any:
    return (vm.get("status") or {}).get("node")


def _state(vm: dict[str, Any]) -> Any:
    return (vm.get("status") or {}).get("state")


def _placement(vm: dict[str, Any]) -> dict[str, Any]:
    return vm.get("placement") or {}


class Demo:
    """The story's steps; `herdctl` runs as a subprocess with the demo's HERD_DEV_DIR."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.herdctl = binary("herdctl")
        os.environ["HERD_DEV_DIR"] = str(directory)
        os.environ.pop("HERD_API", None)
        os.environ.pop("HERD_TOKEN", None)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = make_client(None, timeout=WAIT)
        return self._client

    def say(self, text: str) -> None:
        print(f"\n# {text}", flush=True)

    def run(self, *args: str) -> None:
        """Run `herdctl args`, its output shown as it comes; a failure ends the demo."""
        print(f"$ herdctl {' '.join(args)}", flush=True)
        code = subprocess.run([self.herdctl, *args], stdin=subprocess.DEVNULL).returncode
        if code != 0:
            raise DemoFailed(f"`herdctl {' '.join(args)}` exited with {code}")

    def check(self, what: str, ok: bool, *, how: str = "through the API") -> None:
        if not ok:
            raise DemoFailed(f"not so: {what}")
        print(f"  [checked {how}: {what}]", flush=True)

    def vms(self) -> dict[str, dict[str, Any]]:
        return {v["metadata"]["name"]: v for v in self.client.get("/vm")["items"]}

    def wait_vms(self, what: str, done: Callable[[dict[str, dict[str, Any]]], bool]) -> None:
        """Follow GET /watch until `done(all VMs)` holds (or WAIT passes)."""
        seen: dict[str, dict[str, Any]] = {}
        for event in self.client.watch(timeout=WAIT, kind="VM"):
            seen[event["name"]] = event["object"]
            if set(VMS) <= set(seen) and done(seen):
                self.check(what, True)
                return
        raise DemoFailed(f"not so after {WAIT:g}s: {what}")

    # --- the story -----------------------------------------------------------------------

    def up(self) -> None:
        self.say("A local cluster: ZooKeeper, three herd-node daemons (hv1-hv3; their "
                 "hypervisors are libvirt's test driver) and herd-api, as processes.")
        self.run("dev", "up", "--nodes", "3")
        nodes = self.client.get("/node")["items"]
        self.check("3 nodes alive, running and ready",
                   len(nodes) == 3 and all(n["alive"] and (n["status"] or {}).get(
                       "domainState") == "ready" for n in nodes))

    def apply(self) -> None:
        self.say("Five VMs from examples/: web1, web2 (anywhere), db1 (hv2 or hv3), pinned "
                 "(hv1 only, autorestart), stubborn (ignores ACPI shutdown).")
        self.run("apply", "-f", str(EXAMPLES))
        self.wait_vms("all five run; web1, web2 and pinned on hv1", lambda vms: all(
            _state(v) == "running" for v in vms.values()) and all(
            _node(vms[n]) == "hv1" for n in ("web1", "web2", "pinned")))
        self.run("vm", "list", "-o", "wide")

    def flush(self) -> None:
        self.say("Flush hv1: its VMs move (the test driver moves them by shutdown and "
                 "start); pinned may run nowhere else, so it stops, waiting for hv1.")
        self.run("node", "flush", "hv1", "--wait")
        vms = self.vms()
        self.check("nothing runs on hv1", all(_node(v) != "hv1" for v in vms.values()))
        self.check("web1 and web2 run elsewhere and remember hv1", all(
            _state(vms[n]) == "running" and _placement(vms[n]).get("lastNode") == "hv1"
            for n in ("web1", "web2")))
        pinned = _placement(vms["pinned"])
        self.check("pinned is stopped, to autorestart on hv1", _state(vms["pinned"]) ==
                   "stopped" and bool(pinned.get("autorestartPending"))
                   and pinned.get("home") == "hv1")
        self.run("vm", "info", "pinned")

    def ready(self) -> None:
        self.say("hv1 is ready again: web1 and web2 come back, pinned starts by autorestart.")
        self.run("node", "ready", "hv1", "--wait")
        vms = self.vms()
        self.check("web1, web2 and pinned run on hv1 again", all(
            _state(vms[n]) == "running" and _node(vms[n]) == "hv1"
            for n in ("web1", "web2", "pinned")))
        self.check("pinned was started by autorestart",
                   _placement(vms["pinned"]).get("reason") == "autorestart on hv1")
        self.run("vm", "list")

    def shutdown_aborted(self) -> None:
        self.say("A graceful shutdown of stubborn, a guest that ignores it: it stays up, "
                 "shutting down, until its 120 s timeout would force it off. A start "
                 "meanwhile aborts the shutdown; the guest never goes down.")
        events = self.client.watch(timeout=WAIT * 2, kind="VM", name="stubborn")
        states: list[str] = []
        self.run("vm", "shutdown", "stubborn")
        _until(events, states, want="shutting-down")
        self.check("stubborn is shutting down and still up on hv3", states[-1] ==
                   "shutting-down" and _node(self.vms()["stubborn"]) == "hv3")
        self.run("vm", "info", "stubborn")
        self.run("vm", "start", "stubborn", "--wait")
        _until(events, states, want="running")
        self.check(f"stubborn went {' → '.join(_runs(states))}, never stopped",
                   "stopped" not in states and _node(self.vms()["stubborn"]) == "hv3")

    def down(self) -> None:
        self.say("Everything stops; nothing is left running.")
        recorded = state.load(self.dir)
        self.run("cluster", "status")
        self.run("dev", "down")
        left = [p for p in (recorded.processes if recorded else []) if processes.alive(p)]
        self.check("every process of the cluster is gone", recorded is not None and not left,
                   how="by PID in /proc")


def _until(events: Iterator[dict[str, Any]], states: list[str], *, want: str) -> None:
    """Read watch events of one VM until its state is `want`, collecting the states."""
    for event in events:
        states.append(str(_state(event["object"])))
        if states[-1] == want:
            return
    raise DemoFailed(f"stubborn never got {want}; it went {' → '.join(_runs(states))}")


def _runs(states: list[str]) -> list[str]:
    """The states without repeats in a row."""
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def main() -> int:
    directory = Path(tempfile.mkdtemp(prefix="herd-demo-"))
    print(f"Herd demo. The cluster lives in {directory} (HERD_DEV_DIR). Every command is "
          "run for real; after each step the demo checks the outcome through the API.")
    demo = Demo(directory)
    return tell(demo, [demo.up, demo.apply, demo.flush, demo.ready, demo.shutdown_aborted,
                       demo.down])


def tell(demo: Demo, steps: list[Callable[[], None]]) -> int:
    """Run the story's steps; on a failure bring the cluster down, keep the logs, say why."""
    started = time.monotonic()
    directory = demo.dir
    try:
        for step in steps:
            step()
    except (DemoFailed, ApiError, Unreachable, OSError) as e:
        print(f"\nDEMO FAILED: {e}\n(logs are kept in {directory})", file=sys.stderr)
        subprocess.run([demo.herdctl, "dev", "down"], stdin=subprocess.DEVNULL, check=False)
        return 1
    except BaseException:
        subprocess.run([demo.herdctl, "dev", "down"], stdin=subprocess.DEVNULL, check=False)
        raise
    shutil.rmtree(directory, ignore_errors=True)
    print(f"\nDemo done in {time.monotonic() - started:.0f}s: every step happened as shown.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
