"""Benchmark: live migration with storage copy (issue #15) on two real QEMU hosts
(`herdctl dev up --hypervisor qemu` machinery, in-process).

Each guest (32 MiB, disk-less but for one virtio disk) has a 1 GiB qcow2 volume on the
hosts' `local` pool (each host's own directory) holding 512 MiB of a byte pattern written
by `qemu-io` before it starts, so the copy has real work (the other 512 MiB are
unallocated: neither side copies them).

- Herd: `POST /vm/{vm}/node` migrate to hv2 (`wait`: the answer comes once status says it
  runs there), then unmigrate back to hv1, alternating. Beside the whole time, Herd's own
  `migrated` event gives the source's libvirt call (`libvirtCallMs`) and `herdMs` (from
  status `migrating` to the arrival recorded, minus the call); a watch followed in a thread
  times the status changes (migrating, progress samples, handed over, running there).
- Native, in the same run, interleaved: a second guest with its own volume, defined
  straight in libvirt (Herd does not know it, and the bench checks it is left alone),
  moved by `virsh -c <source> migrate --live --p2p --persistent --undefinesource
  --copy-storage-all` (the whole command), alternating; the source's old copy is deleted
  after, untimed, as Herd deletes its leftover after answering.
- The target volume alone: 1 GiB qcow2 in `local` on the target, by virsh vol-create-as
  (whole command) and by the libvirt call (`createXML`), which both migrations do inside.
Goal: Herd adds <= 100 ms (p50) plus the time it takes to create the target volume.
Run: `.venv/bin/python -m bench.storage_bench` (root). Writes bench/results/storage.*.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import libvirt

from bench.common import save
from ctl.client import ApiError, Client
from ctl.dev import cluster
from ctl.dev.guest import guest_xml, with_volume_disks
from ctl.dev.qemu import QemuHosts
from ctl.dev.state import DevState

GiB, MiB = 1 << 30, 1 << 20
POOL, POOL_PATH = "local", "/var/lib/libvirt/herd-pools/local"
HERD, PLAIN, PROBE = "bench-herd", "bench-plain", "bench-probe"
NODES = ("hv1", "hv2")
WAIT = 300.0
PHASES = ("api_to_migrating", "migrating_to_call", "call_to_released", "released_to_claimed",
          "claimed_to_recorded", "recorded_to_answer")


def _run(*argv: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT,
                          stdin=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}: {done.stdout}{done.stderr}")
    return took


def _image(dev: DevState, host: str, volume: str) -> Path:
    return Path(dev.dir) / "hosts" / host / "lib" / "herd-pools" / POOL / volume


def _follow(client: Client, kind: str, name: str, check: Any) -> dict[str, Any]:
    """The object once check(object) holds (GET, then its watch events)."""
    version = client.get("/vm")["resourceVersion"]  # the cache's, for every kind
    path = f"/{kind.lower()}/{name}"
    now = client.get(path)
    deadline = time.monotonic() + WAIT
    while not check(now):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{kind} {name} never got there: {now}")
        for event in client.watch(timeout=10.0, kind=kind, resourceVersion=version):
            version = event.get("resourceVersion", version)
            if event.get("name") == name and event.get("object"):
                now = event["object"]
                if check(now):
                    break
    return dict(now)


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status") or {})


# --- set-up ---------------------------------------------------------------------------------

def setup(dev: DevState, client: Client, hosts: QemuHosts, data_mib: int) -> None:
    """The pool on both hosts; Herd's guest on hv1 and the plain libvirt one on hv1, each
    with a 1 GiB qcow2 volume holding `data_mib` MiB of pattern."""
    client.post("/pool", {"apiVersion": "herd/v1", "kind": "Pool", "metadata": {"name": POOL},
                          "spec": {"type": "local", "path": POOL_PATH}})
    for node in NODES:
        _follow(client, "Node", node, lambda n: (_status(n).get("pools") or {})
                .get(POOL, {}).get("usable"))
    client.post("/volume", {"apiVersion": "herd/v1", "kind": "Volume",
                            "metadata": {"name": HERD},
                            "spec": {"pool": POOL, "size": GiB, "format": "qcow2",
                                     "node": "hv1"}})
    _follow(client, "Volume", f"{POOL}/{HERD}", lambda v: _status(v).get("state") == "ready")
    _run("virsh", "-q", "-c", hosts["hv1"].uri, "vol-create-as", POOL, PLAIN, str(GiB),
         "--format", "qcow2")
    for name in (HERD, PLAIN):
        _run("qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {data_mib}M",
             str(_image(dev, "hv1", name)))
    client.post("/vm", {"xml": with_volume_disks(guest_xml(HERD), (POOL, HERD)),
                        "node": "hv1", "shutdown_timeout": 1})
    client.post(f"/vm/{HERD}/state", {"state": "start", "wait": True, "timeout": 120},
                timeout=130)
    conn = libvirt.open(hosts["hv1"].uri)
    try:  # not Herd's: its node daemons must leave it alone
        conn.defineXML(with_volume_disks(guest_xml(PLAIN), (POOL, PLAIN))).create()
    finally:
        conn.close()


# --- Herd -----------------------------------------------------------------------------------

class Timeline(threading.Thread):
    """The VM's status changes (time.time() each arrived) while it migrates to `target`,
    until it runs there."""

    def __init__(self, client: Client, name: str, target: str) -> None:
        super().__init__(daemon=True)
        self.seen: list[tuple[float, dict[str, Any]]] = []
        version = client.get("/vm")["resourceVersion"]
        self.events = client.watch(timeout=WAIT, kind="VM", name=name,
                                   resourceVersion=version)
        self.target = target

    def run(self) -> None:
        for event in self.events:
            status = _status(event.get("object") or {})
            self.seen.append((time.time(), status))
            if status.get("state") == "running" and status.get("node") == self.target:
                return

    def marks(self, t0: float) -> dict[str, Any]:
        """Seconds from t0 to: status migrating, each progress sample, handed over."""
        def first(check: Any) -> float | None:
            return next((round(t - t0, 3) for t, s in self.seen if check(s)), None)
        samples = sorted({(round(t - t0, 3), (s.get("migration") or {}).get("diskCopied"))
                          for t, s in self.seen
                          if "diskCopied" in (s.get("migration") or {})})
        return {"migrating_s": first(lambda s: s.get("state") == "migrating"),
                "handed_over_s": first(lambda s: (s.get("migration") or {})
                                       .get("handedOver")),
                "progress": [{"at_s": at, "diskCopied": copied} for at, copied in samples],
                "events": len(self.seen)}


def herd_round(client: Client, target: str, *, unmigrate: bool) -> dict[str, Any]:
    """One migration through the API: the whole time, and the status timeline."""
    timeline = Timeline(Client(client.url, token=client.token, timeout=WAIT), HERD, target)
    timeline.start()
    body: dict[str, Any] = {"action": "unmigrate" if unmigrate else "migrate", "wait": True,
                            "timeout": WAIT, **({} if unmigrate else {"node": target})}
    t0 = time.time()
    start = time.perf_counter()
    client.post(f"/vm/{HERD}/node", body, timeout=WAIT + 10)
    took = time.perf_counter() - start
    t1 = time.time()
    timeline.join(timeout=10)
    # the old copy goes after the answer: let it go before the next (timed) migration
    _follow(client, "Volume", f"{POOL}/{HERD}", lambda v: not v.get("leftovers"))
    return {"total_s": took, "t0": t0, "t1": t1, "target": target, **timeline.marks(t0)}


def migrated_events(dev: DevState) -> list[dict[str, Any]]:
    from store import events
    from store.client import Store

    store = Store(dev.zk_hosts, dev.zk_root)
    store.start()
    try:
        found = [e for e in events.recent(store, limit=1000)
                 if e.get("vm") == HERD and e.get("kind") == "migrated"]
    finally:
        store.stop()
    return sorted(found, key=lambda e: float(e["started"]))


def with_events(herd: list[dict[str, Any]], found: list[dict[str, Any]]) -> None:
    """Each round's `migrated` event (in order): the call, herdMs, and the time before
    status said migrating (API, placement, the source's plan) and after the arrival was
    recorded (status running there, the API's cache, the answer)."""
    if len(found) != len(herd):
        raise RuntimeError(f"{len(found)} migrated events for {len(herd)} migrations")
    for r, e in zip(herd, found, strict=True):
        r.update(call_s=e["libvirtCallMs"] / 1000, herd_ms=e["herdMs"],
                 libvirt_job_ms=e.get("libvirtMs"), downtime_ms=e.get("downtimeMs"),
                 overhead_s=r["total_s"] - e["libvirtCallMs"] / 1000,
                 started=float(e["started"]), ended=float(e["ended"]))


def _logged(dev: DevState, node: str, what: str, *, after: float) -> float:
    """When the node's log first says `bench-herd: <what>` after `after` (its asctime)."""
    for line in (Path(dev.dir) / "nodes" / f"{node}.log").read_text().splitlines():
        if f" {HERD}: {what}" in line:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= after:
                return at
    raise RuntimeError(f"{node}'s log never says {what!r} after {after}")


def with_phases(dev: DevState, herd: list[dict[str, Any]]) -> None:
    """Each round's phases (ms), from the event, the bench's clock and the node logs (the
    same machine's clock): API call -> status migrating -> the call starts; the call;
    its end -> owner released on the source -> claimed on the target -> arrival recorded
    -> the API's answer."""
    for r in herd:
        source = "hv1" if r["target"] == "hv2" else "hv2"
        call_end = _logged(dev, source, "live-migrated to", after=r["t0"])
        released = _logged(dev, source, "released the owner", after=call_end)
        claimed = _logged(dev, r["target"], "claimed the owner", after=call_end)
        marks = [("api_to_migrating", r["t0"], r["started"]),
                 ("migrating_to_call", r["started"], call_end - r["call_s"]),
                 ("call_to_released", call_end, released),
                 ("released_to_claimed", released, claimed),
                 ("claimed_to_recorded", claimed, r["ended"]),
                 ("recorded_to_answer", r["ended"], r["t1"])]
        r["phases_ms"] = {name: round((b - a) * 1000) for name, a, b in marks}


# --- native ---------------------------------------------------------------------------------

def native_round(hosts: QemuHosts, source: str, target: str) -> float:
    """virsh migrate with the storage copy; then the source's copy goes (untimed)."""
    took = _run("virsh", "-q", "-c", hosts[source].uri, "migrate", "--live", "--p2p",
                "--persistent", "--undefinesource", "--copy-storage-all", PLAIN,
                hosts[target].migration_uri)
    _run("virsh", "-q", "-c", hosts[source].uri, "vol-delete", "--pool", POOL, PLAIN)
    return took


def volume_create(hosts: QemuHosts, host: str) -> tuple[float, float]:
    """A 1 GiB qcow2 volume on `host`: virsh vol-create-as (whole command), the libvirt
    call alone; each deleted after (untimed)."""
    uri = hosts[host].uri
    by_virsh = _run("virsh", "-q", "-c", uri, "vol-create-as", POOL, PROBE, str(GiB),
                    "--format", "qcow2")
    _run("virsh", "-q", "-c", uri, "vol-delete", "--pool", POOL, PROBE)
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolLookupByName(POOL)
        xml = (f"<volume><name>{PROBE}</name><capacity unit='bytes'>{GiB}</capacity>"
               "<target><format type='qcow2'/></target></volume>")
        start = time.perf_counter()
        vol = pool.createXML(xml, 0)
        by_call = time.perf_counter() - start
        vol.delete(0)
    finally:
        conn.close()
    return by_virsh, by_call


def plain_left_alone(dev: DevState, client: Client, hosts: QemuHosts, on: str,
                     data_mib: int) -> None:
    """The plain guest runs on `on` only, Herd has no VM of it, and its data came along."""
    try:
        client.get(f"/vm/{PLAIN}")
        raise RuntimeError(f"Herd took {PLAIN} over")
    except ApiError as e:
        if e.status != 404:
            raise
    for host in NODES:
        pids = hosts[host].guest_pids()
        if (PLAIN in pids) != (host == on):
            raise RuntimeError(f"{PLAIN} {'not ' if host == on else ''}running on {host}")
    _run("qemu-io", "-r", "-U", "-f", "qcow2", "-c", f"read -P 0x5a 0 {data_mib}M",
         str(_image(dev, on, PLAIN)))


# --- the run --------------------------------------------------------------------------------

def rounds(dev: DevState, client: Client, *, count: int, data_mib: int) -> dict[str, Any]:
    hosts = cluster.hosts_of(dev)
    herd: list[dict[str, Any]] = []
    native: list[float] = []
    create_virsh: list[float] = []
    create_call: list[float] = []
    for i in range(2 * count):
        source, target = ("hv1", "hv2") if i % 2 == 0 else ("hv2", "hv1")
        for way in ("herd", "virsh") if i % 4 < 2 else ("virsh", "herd"):  # each first
            if way == "herd":                                               # half the time
                herd.append(herd_round(client, target, unmigrate=i % 2 == 1))
            else:
                native.append(native_round(hosts, source, target))
        by_virsh, by_call = volume_create(hosts, target)
        create_virsh.append(by_virsh)
        create_call.append(by_call)
        print(f"{source} -> {target}: Herd {herd[-1]['total_s']:.2f} s, virsh "
              f"{native[-1]:.2f} s, target volume {by_virsh * 1000:.0f} / "
              f"{by_call * 1000:.0f} ms")
        plain_left_alone(dev, client, hosts, target, data_mib)
    with_events(herd, migrated_events(dev))
    with_phases(dev, herd)
    for node in NODES:  # the node daemons never acted on (or spoke of) the plain guest
        if PLAIN in (Path(dev.dir) / "nodes" / f"{node}.log").read_text():
            raise RuntimeError(f"herd-node {node} touched {PLAIN}")
    return {"herd": herd, "virsh_s": native, "create_virsh_s": create_virsh,
            "create_call_s": create_call}


def _ms(values: list[float], scale: float = 1000.0) -> str:
    ms = [v * scale for v in values]
    return f"{statistics.median(ms):.0f} ms ({min(ms):.0f}-{max(ms):.0f})"


def report(f: dict[str, Any]) -> None:
    herd, n = f["herd"], len(f["herd"])
    total = [r["total_s"] for r in herd]
    call = [r["call_s"] for r in herd]
    overhead = [r["overhead_s"] for r in herd]
    create = statistics.median(f["create_call_s"]) * 1000
    f["summary_ms"] = {k: {"median": round(statistics.median(v) * 1000),
                           "min": round(min(v) * 1000), "max": round(max(v) * 1000)}
                       for k, v in (("herd_total", total), ("herd_call", call),
                                    ("herd_overhead", overhead), ("virsh", f["virsh_s"]),
                                    ("create_virsh", f["create_virsh_s"]),
                                    ("create_call", f["create_call_s"]))}
    what = f"1 GiB qcow2 volume, {f['data_mib']} MiB written"
    rows = [
        (f"live migration with storage copy ({what}), API call -> running on target, "
         f"median (min-max) of {n}", _ms(total),
         f"{_ms(f['virsh_s'])} (`virsh migrate --live --p2p --copy-storage-all`)", "-"),
        ("... of which the source's migrateToURI3 call", _ms(call), "-", "-"),
        ("Herd's own time (total minus its call, per migration)", _ms(overhead), "-",
         f"<= 100 ms + target volume ({create:.0f} ms)"),
        ("... where (median ms): API call -> status migrating -> the call starts; the "
         "call ends -> source releases -> target claims -> arrival recorded -> API answers",
         " / ".join(f"{statistics.median(r['phases_ms'][p] for r in herd):.0f}"
                    for p in PHASES), "-", "-"),
        ("... `herdMs` of the `migrated` event (status migrating -> arrival, minus call)",
         _ms([r["herd_ms"] for r in herd], 1.0), "-", "-"),
        ("libvirt's job time on the destination / guest downtime of Herd's, median",
         f"{statistics.median(r['libvirt_job_ms'] for r in herd):.0f} / "
         f"{statistics.median(r['downtime_ms'] for r in herd):.0f} ms", "-", "-"),
        ("creating the 1 GiB qcow2 target volume alone: libvirt call (virsh vol-create-as)",
         _ms(f["create_call_s"]), _ms(f["create_virsh_s"]), "-"),
    ]
    save("storage", f, rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage_bench")
    parser.add_argument("--rounds", type=int, default=4, help="migrations each way")
    parser.add_argument("--data", type=int, default=512, help="MiB written into each volume")
    parser.add_argument("--dir", type=Path, help="keep the cluster's files (logs) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herd-bench-storage-") as tmp:
        directory = args.dir or Path(tmp)
        dev = cluster.up(directory, nodes=len(NODES), timeout=180, say=print,
                         hypervisor="qemu")
        try:
            client = Client(dev.url, token=dev.token, timeout=120)
            setup(dev, client, cluster.hosts_of(dev), args.data)
            figures = rounds(dev, client, count=args.rounds, data_mib=args.data)
        finally:
            cluster.down(directory, say=lambda _message: None)
    report({"data_mib": args.data, **figures})


if __name__ == "__main__":
    main()
