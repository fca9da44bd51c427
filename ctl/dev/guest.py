"""The guest of demos and real-hypervisor tests: a small disk-less QEMU domain.

`guest_xml(name)` is a domain that really boots firmware (SeaBIOS) in well under a second
and, as SeaBIOS does, ignores ACPI shutdown: a stubborn guest, so that graceful shutdowns
run into their timeout and are forced, as with a real guest that hangs. It has no disks,
network, graphics, serial, USB or balloon, so it migrates live in about two seconds.
`type='kvm'` where /dev/kvm is usable (`kvm_usable()` really creates a VM: a VM inside
a VM may have the device node without working KVM), TCG (`type='qemu'`) otherwise.
`pxe_guest_xml` adds a NIC on a Herd network and boots from it (iPXE asks DHCP);
`console_guest_xml` is one to look at through its serial console and VNC.
Called by `ctl.dev.cluster` (dev up --hypervisor qemu), `ctl.demo`, the real-QEMU e2e
tests and bench/. No libvirt import: the XML is plain text.
"""

from __future__ import annotations

import fcntl
import grp
import os
from pathlib import Path
from xml.sax.saxutils import escape

KVM_DEVICE = Path("/dev/kvm")
_KVM_GET_API_VERSION = 0xAE00
_KVM_API_VERSION = 12
_KVM_CREATE_VM = 0xAE01


def fix_kvm_permissions() -> None:
    """Give /dev/kvm group kvm and mode 0660 (what udev does where it runs), so that QEMU
    running as libvirt's user can open it; else libvirt re-probes QEMU on every call."""
    if not KVM_DEVICE.exists():
        return
    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    st = KVM_DEVICE.stat()
    if st.st_gid != gid:
        os.chown(KVM_DEVICE, -1, gid)
    if st.st_mode & 0o777 != 0o660:
        KVM_DEVICE.chmod(0o660)


def kvm_usable() -> bool:
    """/dev/kvm opens, speaks KVM's stable API and creates a VM."""
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION) != _KVM_API_VERSION:
            return False
        os.close(fcntl.ioctl(fd, _KVM_CREATE_VM, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def guest_xml(name: str, *, memory_mib: int = 32, kvm: bool | None = None) -> str:
    """The stubborn disk-less guest. `kvm`: None picks KVM when usable, else TCG."""
    use_kvm = kvm_usable() if kvm is None else kvm
    return (
        f"<domain type='{'kvm' if use_kvm else 'qemu'}'>"
        f"<name>{escape(name)}</name>"
        f"<memory unit='MiB'>{memory_mib}</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type>"
        "<bios useserial='no' rebootTimeout='-1'/></os>"
        "<features><acpi/></features>"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
        "<on_crash>destroy</on_crash>"
        "<devices><controller type='usb' model='none'/><memballoon model='none'/>"
        "</devices></domain>"
    )


def pxe_guest_xml(name: str, *, network: str, mac: str | None = None,
                  memory_mib: int = 64) -> str:
    """A guest with one virtio NIC on Herd's `network` that boots from it: QEMU's iPXE
    option ROM (Debian's ipxe-qemu) asks DHCP for an address at boot. Always TCG: under
    nested KVM, iPXE hits an emulation failure here and the guest pauses (DESIGN.md §6)."""
    fixed = f"<mac address='{escape(mac)}'/>" if mac else ""
    nic = (f"<interface type='network'>{fixed}<source network='{escape(network)}'/>"
           "<model type='virtio'/></interface>")
    return (guest_xml(name, memory_mib=memory_mib, kvm=False)
            .replace("<bios useserial='no' rebootTimeout='-1'/>",
                     "<boot dev='network'/><bios useserial='no' rebootTimeout='-1'/>")
            .replace("<memballoon model='none'/>", f"<memballoon model='none'/>{nic}"))


def with_volume_disks(xml: str, *volumes: tuple[str, ...]) -> str:
    """`xml` with a virtio disk for each (pool, volume[, format]) of Herd's (`vda`, `vdb`,
    ...; qcow2 unless named), as issue #15's tests and benchmarks attach them."""
    disks = "".join(
        f"<disk type='volume' device='disk'><driver name='qemu' "
        f"type='{escape(spec[2] if len(spec) > 2 else 'qcow2')}'/>"
        f"<source pool='{escape(spec[0])}' volume='{escape(spec[1])}'/>"
        f"<target dev='vd{chr(ord('a') + i)}' bus='virtio'/></disk>"
        for i, spec in enumerate(volumes))
    return xml.replace("<memballoon model='none'/>", "<memballoon model='none'/>" + disks, 1)


def console_guest_xml(name: str, *, memory_mib: int = 64) -> str:
    """A guest to look at (issue #16): SeaBIOS prints to the serial port and offers its
    boot menu for 60 s ("Press ESC for boot menu."), the menu's iPXE (on a user-mode NIC)
    has a command line that echoes what is typed (Ctrl-B at its prompt), and a VNC
    display shows the same. TCG: iPXE hits an emulation failure under nested KVM here."""
    nic = "<interface type='user'><model type='e1000'/></interface>"
    screen = ("<graphics type='vnc' autoport='yes' listen='127.0.0.1'/>"
              "<video><model type='cirrus'/></video>")
    return (guest_xml(name, memory_mib=memory_mib, kvm=False)
            .replace("<bios useserial='no' rebootTimeout='-1'/>",
                     "<bootmenu enable='yes' timeout='60000'/>"
                     "<bios useserial='yes' rebootTimeout='-1'/>")
            .replace("<memballoon model='none'/>", f"<memballoon model='none'/>{nic}{screen}"))
