"""`make demo-qemu`: the story of `make demo` on real hypervisors, with live migration.

It brings up three QEMU hosts on this machine (`herdctl dev up --hypervisor qemu`: one
libvirtd per host in namespaces of its own, needs root) with real disk-less guests
(`ctl.dev.guest`), then: a guest migrates live from hv1 to hv2 (`vm migrate --wait`), its
history shows the migration's duration and the guest's downtime (`vm events`); a flush of
hv2 moves both guests live; ready brings db home, unmigrate web; a managed network, and
a guest on it that boots iPXE and gets its reserved address from the primary's dnsmasq;
`dev down` leaves nothing. After each
step it checks through the API, and from OUTSIDE Herd through the hosts' own QEMU pid
files in /proc (the guest runs on exactly one host, and its QEMU process there is alive),
and exits non-zero naming the first step that did not happen. Called by `make demo-qemu`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ctl.demo import Demo, tell
from ctl.dev.guest import guest_xml, pxe_guest_xml
from ctl.dev.qemu import QemuHosts

GUESTS = ("web", "db")
PXE_MAC = "52:54:00:a0:00:10"


class QemuDemo(Demo):
    def hosts(self) -> QemuHosts:
        return QemuHosts(self.dir / "hosts", ("hv1", "hv2", "hv3"))

    def runs_on(self, guest: str) -> list[str]:
        """The hosts whose libvirt pid file names a live QEMU process of `guest`."""
        return [h.name for h in self.hosts().hosts.values() if guest in h.guest_pids()]

    def check_on(self, guest: str, node: str) -> None:
        vm = self.client.get(f"/vm/{guest}")
        self.check(f"{guest} runs on {node}", (vm.get("status") or {}).get("node") == node)
        self.check(f"{guest}'s QEMU process runs on {node}, and on no other host",
                   self.runs_on(guest) == [node], how="in the hosts' pid files and /proc")

    def up(self) -> None:
        self.say("Three real hypervisors on this machine: one libvirtd (QEMU) per host, each "
                 "in network, mount and UTS namespaces of its own; ZooKeeper, herd-node per "
                 "host and herd-api as processes.")
        self.run("dev", "up", "--hypervisor", "qemu", "--nodes", "3")

    def guests(self) -> None:
        self.say("Two disk-less guests that really boot SeaBIOS: web on hv1, db on hv2.")
        for guest, node in zip(GUESTS, ("hv1", "hv2"), strict=True):
            xml = self.dir / f"{guest}.xml"
            xml.write_text(guest_xml(guest))
            self.run("vm", "define", str(xml), "--node", node)
            self.run("vm", "start", guest, "--wait")
            self.check_on(guest, node)

    def migrate(self) -> None:
        self.say("web migrates live to hv2; its history shows how long it took and how long "
                 "the guest was paused.")
        before = self.hosts()["hv1"].guest_pids().get("web")
        self.run("vm", "migrate", "web", "--node", "hv2", "--wait")
        self.check_on("web", "hv2")
        self.check("the QEMU process web had on hv1 is gone",
                   before is not None and "web" not in self.hosts()["hv1"].guest_pids(),
                   how="in /proc")
        self.run("vm", "events", "web", "--kind", "migrated", "-o", "wide")
        moves = self.client.get("/event", vm="web", kind="migrated")["items"]
        self.check("the migration is in web's history, with libvirt's downtime",
                   len(moves) == 1 and "downtimeMs" in moves[0])

    def flush(self) -> None:
        self.say("hv2 is flushed: both guests move live to the other hosts, still running.")
        self.run("node", "flush", "hv2", "--wait")
        self.run("vm", "list", "-o", "wide")
        for guest in GUESTS:
            hosts = self.runs_on(guest)
            self.check(f"{guest} runs on one host, not hv2", len(hosts) == 1
                       and hosts != ["hv2"], how="in the hosts' pid files and /proc")
        self.say("hv2 is ready again: db, whose home it is, comes back live; web stays away "
                 "(its home is hv1: it was only migrated to hv2).")
        self.run("node", "ready", "hv2", "--wait")
        self.wait_guest_on("db", "hv2")
        self.say("web goes home: unmigrate.")
        self.run("vm", "unmigrate", "web", "--wait")
        self.check_on("web", "hv1")

    def network(self) -> None:
        self.say("A managed network: a VXLAN between the three hosts, the primary as its "
                 "gateway (dnsmasq: DHCP and DNS). A guest on another host boots from it "
                 "(iPXE) and gets its reserved address over the VXLAN.")
        self.run("network", "add", "lan", "--type", "managed", "--vni", "160", "--ipv4",
                 "10.160.0.0/24", "--gateway4", "10.160.0.1", "--dhcp4",
                 "10.160.0.100-10.160.0.150", "--domain", "lan.herd.internal")
        self.run("network", "reservation", "add", "lan", PXE_MAC, "10.160.0.10",
                 "--hostname", "pxe")
        primary = next(n["metadata"]["name"] for n in self.client.get("/node")["items"]
                       if n["primary"])
        node = next(n for n in ("hv1", "hv2", "hv3") if n != primary)
        xml = self.dir / "pxe.xml"
        xml.write_text(pxe_guest_xml("pxe", network="lan", mac=PXE_MAC))
        self.run("vm", "define", str(xml), "--node", node)
        self.run("vm", "start", "pxe", "--wait")
        lease = self.lease("lan", PXE_MAC, timeout=60)
        self.run("network", "lease", "list", "lan")
        self.check(f"pxe (on {node}) leased 10.160.0.10 from the gateway on {primary}",
                   lease is not None and lease["ip"] == "10.160.0.10")
        self.run("vm", "remove", "pxe", "--force")

    def lease(self, network: str, mac: str, *, timeout: float) -> dict[str, Any] | None:
        """The lease of `mac` once recorded (a guest's firmware: nothing to watch)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for lease in self.client.get(f"/network/{network}/lease")["items"]:
                if lease["mac"] == mac:
                    return dict(lease)
            time.sleep(0.5)
        return None

    def wait_guest_on(self, guest: str, node: str) -> None:
        for event in self.client.watch(timeout=60, kind="VM", name=guest):
            if ((event["object"] or {}).get("status") or {}).get("node") == node:
                break
        self.check_on(guest, node)

    def down(self) -> None:
        self.say("Everything stops: guests, libvirtd, namespaces and processes.")
        hosts = self.hosts()
        self.run("dev", "down")
        self.check("no libvirtd and no guest of the hosts runs any more",
                   not any(h.daemon_pid("libvirtd") or h.guest_pids()
                           for h in hosts.hosts.values()), how="in /proc")


def main() -> int:
    directory = Path(tempfile.mkdtemp(prefix="herd-demo-qemu-"))
    print(f"Herd on real hypervisors. The cluster lives in {directory} (HERD_DEV_DIR).")
    demo = QemuDemo(directory)
    return tell(demo, [demo.up, demo.guests, demo.migrate, demo.flush, demo.network,
                       demo.down])


if __name__ == "__main__":
    sys.exit(main())
