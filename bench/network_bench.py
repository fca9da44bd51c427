"""Benchmark: client networks (issue #14), each figure beside a hand-made alternative measured
in the same run, on network namespaces (bench/netlab.py), libvirt's test driver and a real
ZooKeeper.

1. Network defined -> up everywhere: three herd-node daemons (in-process, networks on,
   each node's links in a namespace of its own on one underlay); 20 managed networks
   created one after another in ZooKeeper (`store.networks`, as the API does); seconds
   from the write until every node's status (`networks.<net>.up`, seen by a watch) says
   up. Beside it, interleaved: the same links made by the least `ip`/`bridge` commands
   (bridge, VXLAN in it, one flood entry per peer: 4 per node, the nodes in parallel).
2. DHCP answer time (client-side, first DISCOVER to ACK) through Herd's `Gateway` (its
   dnsmasq, lease script and lease channel): a client with a reservation and a known
   client whose lease was restored at start; beside a plain dnsmasq started by hand with a
   minimal command line (the lease in its leasefile) in the same namespace, on a second
   bridge. Both run at once and the requests take turns, so both see the same load.
3. Gateway failover: two coordinator daemons, the primary runs the network's gateway; a
   guest on the other node holds a dynamic lease and a probe asks for it every 0.1 s.
   Clean stop of the primary -> the probe's first answer after the outage (the same
   address), and a crash (fenceTimeout 1.0, the fence kills the node's namespace) -> the
   same, with crash -> node status `fenced` as the fence's part of it. Fresh lab and
   daemons per run; stop and crash runs alternate.
Run: `.venv/bin/python -m bench.network_bench [--networks N] [--requests N] [--runs N]`
(root). Called by `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import save, zookeeper
from bench.netlab import (
    Bench,
    Daemons,
    PlainDnsmasq,
    Probe,
    RunRoot,
    define_network,
    native_commands,
    network_doc,
    node_config,
    run_native,
    spread,
    stamped,
    tag,
)
from reconciler.network.dnsmasq import AddressPlan, DhcpPool, GatewaySpec, Lease, Reservation
from reconciler.network.gateway import Gateway, GatewayState
from reconciler.network.gateways import LEASE_SCRIPT
from reconciler.network.leasechannel import LeaseEvent
from store.client import Store
from store.codec import Doc
from tests.support.dhcpclient import request_lease
from tests.support.nodelab import ADDRESS, Lab, fence_agent, sh
from tests.support.nodelab import fenced as fenced_at

NODES = ("a", "b", "c")
GW_NODES = ("a", "b")
RESERVED = ("52:54:00:46:00:01", 10, "db1")  # MAC, host number in the subnet, name
KNOWN = ("52:54:00:46:00:02", 120, "known")
SUBNET = {"herd": "10.46.0", "plain": "10.47.0"}  # of the DHCP benchmark's two servers
DYNAMIC = "52:54:00:45:00:02"
GW_VNI = 4343
IPV4 = {"network": "10.45.0.0/24", "gateway": "10.45.0.1",
        "dhcp": {"start": "10.45.0.100", "end": "10.45.0.150", "leaseTime": 600}}


# --- 1. network defined -> up on every node ---------------------------------------------------

def is_up(name: str) -> Any:
    return lambda d: bool(((d or {}).get("networks", {}).get(name) or {}).get("up"))


async def herd_network(store: Store, index: int) -> float:
    """Seconds from the write of network `net<index>` until all three nodes say it is up."""
    name = f"net{index:02d}"
    waits = [asyncio.create_task(stamped(store, store.paths.node_status(f"hv-{n}"),
                                         is_up(name))) for n in NODES]
    await asyncio.sleep(0)  # the watches are set (wait_doc reads at once)
    start = time.monotonic()
    await asyncio.to_thread(define_network, store, name, network_doc(name, 5000 + index))
    return max(await asyncio.gather(*waits)) - start


async def native_network(lab: Lab, index: int) -> float:
    vni = 6000 + index
    start = time.monotonic()
    await asyncio.gather(*(asyncio.to_thread(run_native, native_commands(
        lab.ns(n), vni, ADDRESS[n], [ADDRESS[p] for p in NODES if p != n])) for n in NODES))
    return time.monotonic() - start


async def bring_up(bench: Bench, count: int) -> dict[str, Any]:
    lab, root = Lab(tag()), f"/net-up-{uuid.uuid4().hex[:6]}"
    async with AsyncExitStack() as stack:
        stack.callback(lab.close)
        lab.underlay(NODES)
        store = bench.store(root)
        stack.callback(store.stop)
        daemons = Daemons()
        stack.push_async_callback(daemons.close)
        for n in NODES:
            await daemons.start(n, node_config(lab, n, hosts=bench.zk.dsn, root=root,
                                               workdir=bench.workdir, run_dir=bench.run_root))
        herd, native = [], []
        for i in range(1, count + 1):  # interleaved: the machine's other load hits both
            herd.append(await herd_network(store, i))
            native.append(await native_network(lab, i))
    return {"networks": count, "nodes": len(NODES), "herd": spread(herd),
            "native": spread(native), "herd_s": herd, "native_s": native}


# --- 2. DHCP answer time ----------------------------------------------------------------------

def gw_spec(run_dir: Path) -> GatewaySpec:
    """Herd's gateway on br0: 10.46.0.0/24, the reservation."""
    mac, host, name = RESERVED
    return GatewaySpec(
        name="bench", bridge="br0", domain="bench.herd.internal",
        ipv4=AddressPlan("10.46.0.0/24", "10.46.0.1", DhcpPool("10.46.0.100", "10.46.0.150",
                                                               600)),
        run_dir=str(run_dir / "gw"), reservations=(Reservation(mac, f"10.46.0.{host}", name),))


def plain_args(run_dir: Path) -> list[str]:
    """dnsmasq's least command line for the same on br1 (10.47.0.0/24): DHCP on the gateway
    address, the reservation, the known lease in its leasefile (written here)."""
    folder = run_dir / "plain"
    folder.mkdir(mode=0o755, exist_ok=True)
    (mac, host, name), (known, known_host, known_name) = RESERVED, KNOWN
    (folder / "leases").write_text(
        f"{int(time.time()) + 600} {known} 10.47.0.{known_host} {known_name} *\n")
    return ["--conf-file=/dev/null", "--keep-in-foreground", "--log-facility=-",
            f"--pid-file={folder}/pid", "--bind-interfaces", "--listen-address=10.47.0.1",
            "--no-resolv", "--no-hosts", "--dhcp-authoritative",
            "--dhcp-range=10.47.0.100,10.47.0.150,255.255.255.0,600",
            f"--dhcp-host={mac},10.47.0.{host},{name}", f"--dhcp-leasefile={folder}/leases"]


def herd_gateway(host: str, run_dir: Path) -> Gateway:
    """Herd's `Gateway` in `host`, the known client's lease in its store (restored at start)."""
    mac, known_host, name = KNOWN

    async def leases() -> list[Lease]:
        return [Lease(mac, f"10.46.0.{known_host}", name, int(time.time()) + 600)]

    async def on_lease(_event: LeaseEvent) -> None:
        return None

    return Gateway(gw_spec(run_dir), on_lease=on_lease, leases=leases,
                   lease_script=LEASE_SCRIPT, netns=host)


async def ask(guests: dict[str, str], requests: int) -> dict[str, dict[str, list[float]]]:
    """`requests` exchanges for each client of each server, the servers taking turns
    request by request (whichever load the machine has, both see it); ACK times."""
    out: dict[str, dict[str, list[float]]] = {s: {"reserved": [], "known": []} for s in guests}
    order = list(guests)
    for _ in range(requests):
        for kind, (mac, host, _name) in (("reserved", RESERVED), ("known", KNOWN)):
            for server in order:
                answer = await request_lease(guests[server], mac, timeout=3.0)
                wanted = f"{SUBNET[server]}.{host}"
                if answer is None or answer.ip != wanted:
                    raise RuntimeError(f"{server}, {kind} client {mac}: {answer} (not {wanted})")
                out[server][kind].append(answer.ack_seconds)
            order.reverse()
    return out


async def dhcp_times(bench: Bench, requests: int) -> dict[str, Any]:
    """Herd's gateway on br0 and a plain dnsmasq on br1 of one namespace, a guest on each."""
    lab = Lab(tag())
    async with AsyncExitStack() as stack:
        stack.callback(lab.close)
        host = lab.add_ns(lab.ns("gw"))
        for bridge in ("br0", "br1"):
            sh("ip", "-n", host, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", host, "link", "set", bridge, "up")
        guests = {"herd": lab.plug("gw", "br0"), "plain": lab.plug("gw", "br1")}
        gateway = herd_gateway(host, bench.run_root)
        stack.push_async_callback(gateway.stop)
        if (status := await gateway.start()).state is not GatewayState.RUNNING:
            raise RuntimeError(f"Herd's gateway did not start: {status}")
        plain = PlainDnsmasq(host, "br1", "10.47.0.1/24", plain_args(bench.run_root))
        stack.push_async_callback(plain.stop)
        await plain.start()
        times = await ask(guests, requests)
    return {"requests": requests, **{s: {k: spread(v) for k, v in t.items()}
                                     for s, t in times.items()}}


# --- 3. gateway failover ----------------------------------------------------------------------

@dataclass
class GwCluster:
    lab: Lab
    store: Store
    daemons: Daemons
    workdir: Path
    first: str  # the primary: its gateway serves
    guest: str  # on the other node's bridge
    leased: str


async def gateway_on(store: Store) -> str:
    """The node whose status first says it runs `blue`'s gateway."""
    def running(d: Doc | None) -> bool:
        entry = (d or {}).get("networks", {}).get("blue") or {}
        return bool(entry.get("gateway") == "running")

    tasks = {asyncio.create_task(stamped(store, store.paths.node_status(f"hv-{n}"), running)): n
             for n in GW_NODES}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return tasks[done.pop()]


async def start_gateways(bench: Bench, lab: Lab, store: Store, root: str, workdir: Path,
                         daemons: Daemons) -> str:
    """Two coordinators, the network with a DHCP range: which node is its gateway."""
    store.update(store.paths.config, lambda d: {**d, "fenceTimeout": 1.0})
    fence = str(fence_agent(lab, GW_NODES, workdir / "fence"))
    for n in GW_NODES:
        await daemons.start(n, node_config(lab, n, hosts=bench.zk.dsn, root=root,
                                           workdir=workdir, run_dir=bench.run_root / root[1:],
                                           coordinator=True, fence=fence))
    doc = network_doc("blue", GW_VNI, ipv4=IPV4, reservations=[
        {"mac": RESERVED[0], "ip": "10.45.0.10", "hostname": "db1"}])
    await asyncio.to_thread(define_network, store, "blue", doc)
    return await gateway_on(store)


@asynccontextmanager
async def gateway_cluster(bench: Bench) -> AsyncIterator[GwCluster]:
    lab, root = Lab(tag()), f"/net-gw-{uuid.uuid4().hex[:6]}"
    workdir = bench.workdir / root[1:]
    workdir.mkdir()
    async with AsyncExitStack() as stack:
        stack.callback(lab.close)
        lab.underlay(GW_NODES)
        store = bench.store(root)
        stack.callback(store.stop)
        daemons = Daemons()
        stack.push_async_callback(daemons.close)
        first = await start_gateways(bench, lab, store, root, workdir, daemons)
        other = GW_NODES[1 - GW_NODES.index(first)]
        # the guest on the other node: DHCP crosses the VXLAN
        guest = await asyncio.to_thread(lab.plug, other, f"hbr{GW_VNI}")
        answer = await request_lease(guest, DYNAMIC, timeout=8.0)  # dnsmasq pings first
        if answer is None:
            raise RuntimeError("no first lease through the gateway")
        await stamped(store, store.paths.network_lease("blue", DYNAMIC), lambda d: d is not None)
        yield GwCluster(lab, store, daemons, workdir, first, guest, answer.ip)


async def failover(bench: Bench, kind: str) -> dict[str, Any]:
    """One run: the primary stopped cleanly or crashed; when DHCP answers again."""
    async with gateway_cluster(bench) as c, AsyncExitStack() as stack:
        probe = Probe(c.guest, DYNAMIC)
        stack.push_async_callback(probe.stop)
        await probe.start()
        await probe.first_answer()
        fenced: asyncio.Task[float] | None = None
        if kind == "crash":
            fenced = asyncio.create_task(stamped(
                c.store, c.store.paths.node_status(f"hv-{c.first}"),
                lambda d: bool(d and d.get("daemonState") == "fenced")))
            await asyncio.sleep(0)
        start, wall = time.monotonic(), time.time()
        await (c.daemons[c.first].crash() if kind == "crash" else c.daemons[c.first].stop())
        back = await probe.recovery(start)
        holder = c.store.get(c.store.paths.network_gateway("blue")).doc.get("node")
        if back.ip != c.leased or holder == f"hv-{c.first}":
            raise RuntimeError(f"after failover ({holder}) {DYNAMIC} got {back.ip}, "
                               f"had {c.leased}")
        out = {"kind": kind, "gap_s": round(back.answered - start, 3),
               "client_outage_s": round(back.answered - back.last_answer, 3)}
        if fenced is not None:
            agent = fenced_at(c.workdir / "fence")[-1][1] - wall
            out |= {"fenced_s": round(await fenced - start, 3), "agent_ran_s": round(agent, 3)}
        return out


async def failovers(bench: Bench, runs: int, budget: float) -> list[dict[str, Any]]:
    """Stop and crash runs alternating, `runs` of each, fewer when past `budget` seconds
    (at least one of each)."""
    began, out = time.monotonic(), []
    for i in range(runs):
        if i and time.monotonic() - began > budget:
            break
        for kind in ("stop", "crash"):
            out.append(await failover(bench, kind))
            print(f"failover: {out[-1]}", flush=True)
    return out


# --- report -----------------------------------------------------------------------------------

def ms3(s: dict[str, float]) -> str:
    return f"{s['p50_ms']:.0f} / {s['p90_ms']:.0f} / {s['max_ms']:.0f} ms"


def runs_of(runs: list[dict[str, Any]], kind: str, key: str) -> str:
    return ", ".join(f"{r[key]:.2f}" for r in runs if r["kind"] == kind) + " s"


def rows(f: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    up, dhcp, fo = f["bring_up"], f["dhcp"], f["failover"]
    out = [(f"managed network defined -> up on all {up['nodes']} nodes, p50 / p90 / max "
            f"({up['networks']} networks)", ms3(up["herd"]),
            f"{ms3(up['native'])} (`ip`/`bridge` commands, 4 per node)", "—")]
    for kind, what in (("reserved", "a reserved client"), ("known", "a known client "
                                                                    "(lease restored)")):
        out.append((f"DHCP DISCOVER -> ACK, {what}, p50 / max ({dhcp['requests']} requests)",
                    f"{dhcp['herd'][kind]['p50_ms']:.1f} / {dhcp['herd'][kind]['max_ms']:.1f} ms",
                    f"{dhcp['plain'][kind]['p50_ms']:.1f} / "
                    f"{dhcp['plain'][kind]['max_ms']:.1f} ms (plain dnsmasq)", "—"))
    out += [("gateway failover, primary stopped -> DHCP answers again (same address; probe "
             "every 0.1 s), per run",
             runs_of(fo, "stop", "gap_s"), "—", "≤ 3 s after the election"),
            ("gateway failover, primary crashed -> DHCP answers again, per run "
             "(fenceTimeout 1.0 s)", runs_of(fo, "crash", "gap_s"), "—",
             "≤ 3 s after the election (plus the fence)"),
            ("... of which crash -> node fenced, per run", runs_of(fo, "crash", "fenced_s"),
             "—", "—")]
    return out


async def run(args: argparse.Namespace, workdir: Path, run_root: Path) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with zookeeper() as zk:
        bench = Bench(zk, workdir, run_root)
        up = await bring_up(bench, args.networks)
        print(f"bring-up: herd {up['herd']}, native {up['native']}", flush=True)
        dhcp = await dhcp_times(bench, args.requests)
        print(f"dhcp: {dhcp}", flush=True)
        fo = await failovers(bench, args.runs, args.budget)
    return {"bring_up": up, "dhcp": dhcp, "failover": fo}


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench.network_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=20, help="networks defined (1.)")
    ap.add_argument("--requests", type=int, default=20, help="DHCP requests per client (2.)")
    ap.add_argument("--runs", type=int, default=3, help="failover runs of each kind (3.)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds of failover runs after which no new pair starts")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench.network_bench needs root (network namespaces, dnsmasq)")
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    # after a crash the dead daemon's dnsmasq may still report a lease to its closed store
    logging.getLogger("reconciler.network.leasechannel").setLevel(logging.CRITICAL)
    load_before = os.getloadavg()  # the machine may be shared: other load skews the figures
    run_root = RunRoot()
    try:
        with tempfile.TemporaryDirectory(prefix="herd-net-bench-") as tmp:
            figures = asyncio.run(run(args, Path(tmp), run_root.path))
    finally:
        run_root.close()
    figures |= {"loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    save("network", figures, rows(figures))


if __name__ == "__main__":
    main()
