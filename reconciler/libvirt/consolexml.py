"""The serial console of a domain definition, logged from the guest's first byte (issue #16).

QEMU drops a pty's output while nothing reads it, so a log kept by reading the console
would miss a boot that no one watched. libvirt's `<log file=... append='on'/>` on the
serial device has virtlogd write every byte from the guest's start, across herd-node
restarts, with its own size cap and rotation. `with_console_log` adds it to the serial
devices of the XML that herd-node defines at every start (`reconciler.vm.act`), and adds a
pty serial port to a domain that has none, as KubeVirt gives every VM a serial console.

Pure (ElementTree on a string); called by `reconciler.libvirt.adapter.LibvirtHypervisor`.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree


def console_log_path(directory: str, vm: str) -> str:
    return f"{directory.rstrip('/')}/{vm}.log"


def with_console_log(xml: str, log_file: str) -> str:
    """`xml` whose first serial device logs to `log_file` (appending); a pty serial and
    its console are added when the domain has no serial device."""
    root = ElementTree.fromstring(xml)
    devices = root.find("devices")
    if devices is None:
        devices = SubElement(root, "devices")
    serial = devices.find("serial")
    if serial is None:
        serial = _pty_serial(devices)
    if serial.get("type") not in ("pty", "file", "null", "tcp", "unix", "udp", "dev"):
        return xml  # e.g. spicevmc: no log element there
    for old in serial.findall("log"):
        serial.remove(old)
    log = Element("log", {"file": log_file, "append": "on"})
    serial.insert(_after_sources(serial), log)
    return tostring(root, encoding="unicode")


def _pty_serial(devices: Element) -> Element:
    serial = SubElement(devices, "serial", {"type": "pty"})
    SubElement(serial, "target", {"port": "0"})
    if devices.find("console") is None:
        console = SubElement(devices, "console", {"type": "pty"})
        SubElement(console, "target", {"type": "serial", "port": "0"})
    return serial


def _after_sources(serial: Element) -> int:
    """The index after the device's <source> elements (libvirt's order for <log>)."""
    children = list(serial)
    sources = [i for i, child in enumerate(children) if child.tag == "source"]
    return sources[-1] + 1 if sources else 0
