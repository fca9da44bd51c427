"""The rules of the domain XML policy: what each element may ask of the host.

`refusals(tree, disk_paths=, boot_paths=)` walks a parsed domain (iteratively: no
recursion limit to hit) and answers every refusal as (location, why, exception): the
location XPath-like (`devices/disk[2]/source`, an index only where siblings share a
tag); the exception is the name in `schemas.xmlpolicy.EXCEPTIONS` that would admit it
(None: nothing does). Allowlists where libvirt keeps adding kinds (device elements,
interface, chardev and disk types), so that what this policy does not know is refused
rather than passed. The inside of <metadata> is libvirt's free-form data and not read.
Called by `schemas.xmlpolicy`. Pure: no I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from xml.etree.ElementTree import Element

Refusal = tuple[str, str, str | None]
DeviceRule = Callable[["Rules", Element, str], None]

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
_PREFIXES = {QEMU_NS: "qemu"}
# Character device types that touch nothing of the host but libvirt's own pty or SPICE.
SAFE_CHARDEVS = frozenset({"pty", "spicevmc", "spiceport", "null", "vc", "qemu-vdagent",
                           "dbus"})
DISK_TYPES = frozenset({"file", "block", "dir", "volume"})  # volume: of a Herd pool
INTERFACE_TYPES = frozenset({"network", "bridge", "user"})
GRAPHICS_TYPES = frozenset({"vnc", "spice", "rdp", "egl-headless", "dbus"})
AUDIO_TYPES = frozenset({"none", "spice", "dbus"})
RANDOM_SOURCES = frozenset({"", "/dev/random", "/dev/urandom", "/dev/hwrng"})
HARMLESS_DEVICES = frozenset({"controller", "video", "sound", "watchdog", "memballoon",
                              "panic", "iommu", "vsock", "hub", "redirfilter", "crypto"})
_SOURCE_PATHS = ("file", "dev", "dir", "path", "socket")


def _display(tag: str) -> str:
    if not tag.startswith("{"):
        return tag
    uri, _, local = tag[1:].partition("}")
    return f"{_PREFIXES[uri]}:{local}" if uri in _PREFIXES else f"{{{uri}}}{local}"


def children(parent: Element, where: str) -> Iterator[tuple[Element, str]]:
    """The children of `parent` with their locations (`[n]` where siblings share a tag)."""
    counts: dict[str, int] = {}
    for child in parent:
        if isinstance(child.tag, str):
            counts[child.tag] = counts.get(child.tag, 0) + 1
    seen: dict[str, int] = {}
    for child in parent:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        seen[child.tag] = seen.get(child.tag, 0) + 1
        step = _display(child.tag) + (f"[{seen[child.tag]}]" if counts[child.tag] > 1 else "")
        yield child, f"{where}/{step}" if where else step


def subtree(top: Element, where: str) -> Iterator[tuple[Element, str]]:
    """`top` and every element below it with locations, depth first, without recursion;
    neither the inside of <metadata> nor of a namespaced element is entered."""
    stack = [(top, where)]
    while stack:
        element, at = stack.pop()
        yield element, at
        if element.tag != "metadata" and not element.tag.startswith("{"):
            stack.extend(reversed(list(children(element, at))))


class Rules:
    """One check of one tree: the refusals found so far and the policy's paths."""

    def __init__(self, *, disk_paths: tuple[str, ...], boot_paths: tuple[str, ...]) -> None:
        self.disk_paths, self.boot_paths = disk_paths, boot_paths
        self.found: list[Refusal] = []

    def refuse(self, where: str, why: str, exception: str | None) -> None:
        self.found.append((where, why, exception))

    def disk_path(self, where: str, value: str, exception: str) -> None:
        self._path(where, value, self.disk_paths, "storage paths (diskPaths)", exception)

    def boot_path(self, where: str, value: str) -> None:
        self._path(where, value, self.boot_paths, "boot file paths (bootPaths)",
                   "boot-files")

    def _path(self, where: str, value: str, dirs: tuple[str, ...], label: str,
              exception: str) -> None:
        normal = posixpath.normpath(value) if value.startswith("/") else ""
        if normal and any(normal.startswith(d + "/") for d in dirs):
            return
        allowed = ", ".join(dirs) or "none are configured"
        self.refuse(where, f"host path {value[:200]} is outside the allowed {label}: "
                           f"{allowed}", exception)


def _text(element: Element) -> str:
    return "".join(element.itertext()).strip()


def _generic(r: Rules, element: Element, where: str) -> None:
    """Rules for any element wherever it is: namespaces and security labels."""
    if element.tag.startswith("{"):
        if element.tag.startswith("{" + QEMU_NS + "}"):
            r.refuse(where, "elements of the qemu namespace pass arguments to QEMU unchecked",
                     "qemu-namespace")
        else:
            r.refuse(where, "elements of other namespaces are not covered by Herd's XML "
                            "policy (only <metadata> may hold them)", None)
    elif element.tag == "seclabel":
        kind, relabel = element.get("type"), element.get("relabel")
        if kind in ("none", "static"):
            r.refuse(where, f"a seclabel of type {kind} lifts the guest's confinement",
                     "seclabel")
        if relabel == "no":
            r.refuse(where, "relabel='no' gives QEMU files that are not labelled for it",
                     "seclabel")
        if element.find("label") is not None or element.find("baselabel") is not None:
            r.refuse(where, "a given security label may be a more privileged one",
                     "seclabel")


def _os(r: Rules, os_element: Element, where: str) -> None:
    for child, at in children(os_element, where):
        if child.tag in ("kernel", "initrd", "dtb", "loader") and _text(child):
            r.boot_path(at, _text(child))
        elif child.tag == "nvram":
            if _text(child):
                r.disk_path(at, _text(child), "boot-files")
            if child.get("template"):
                r.boot_path(at, str(child.get("template")))
            for source, sat in children(child, at):
                if source.tag == "source" and source.get("file"):
                    r.disk_path(sat, str(source.get("file")), "boot-files")
        elif child.tag == "acpi":
            for table, tat in children(child, at):
                if _text(table):
                    r.boot_path(tat, _text(table))


def _sysinfo(r: Rules, sysinfo: Element, where: str) -> None:
    for element, at in subtree(sysinfo, where):
        if element.get("file"):
            r.boot_path(at, str(element.get("file")))


def _disk(r: Rules, disk: Element, where: str) -> None:
    for element, at in subtree(disk, where):
        kind = element.get("type", "file" if element is disk else None)
        if element.tag in ("disk", "backingStore", "dataStore", "mirror") and \
                kind is not None and kind not in DISK_TYPES:
            r.refuse(at, f"disks of type {kind[:40]} are refused: use a volume of a Herd "
                         "pool (type='volume') or a file below the allowed storage paths",
                     "disk-sources")
        if element.tag in ("source", "mirror"):
            for attr in _SOURCE_PATHS:
                if element.get(attr):
                    r.disk_path(at, str(element.get(attr)), "disk-sources")


def chardev(r: Rules, device: Element, where: str) -> None:
    """A character device (or a device on one): libvirt's pty or SPICE only."""
    kind = device.get("type", "pty")
    for child, at in children(device, where):
        if child.tag == "source" and kind == "unix" and child.get("path"):
            r.refuse(at, f"a unix socket at host path {str(child.get('path'))[:200]}",
                     "host-chardevs")
        elif child.tag == "log" and child.get("file"):
            r.disk_path(at, str(child.get("file")), "host-chardevs")
    if kind not in SAFE_CHARDEVS and kind != "unix":
        r.refuse(where, f"a character device of type {kind[:40]} reads or writes host "
                        "files, devices, pipes or sockets", "host-chardevs")


def _interface(r: Rules, interface: Element, where: str) -> None:
    kind = interface.get("type", "")
    if kind not in INTERFACE_TYPES:
        r.refuse(where, f"interfaces of type {kind[:40] or '(none)'} reach the host's devices "
                        "or programs; allowed: network, bridge, user", "interfaces")
    for child, at in children(interface, where):
        if child.tag in ("script", "downscript"):
            r.refuse(at, f"a {child.tag} runs a program on the host", "interfaces")
        elif child.tag == "backend" and any(child.get(a) for a in ("tap", "vhost", "logFile")):
            r.refuse(at, "a backend on host device or file paths", "interfaces")


def _refused(exception: str, why: str) -> DeviceRule:
    def rule(r: Rules, _device: Element, where: str) -> None:
        r.refuse(where, why, exception)
    return rule


def _smartcard(r: Rules, card: Element, where: str) -> None:
    if card.get("mode") == "passthrough":
        chardev(r, card, where)
    else:
        r.refuse(where, f"a smartcard in mode {str(card.get('mode'))[:40]} uses the host's "
                        "cards or certificates", "hostdev")


def _rng(r: Rules, rng: Element, where: str) -> None:
    for backend, at in children(rng, where):
        if backend.tag != "backend":
            continue
        if backend.get("model") == "egd":
            chardev(r, backend, at)
        elif backend.get("model") == "random" and _text(backend) not in RANDOM_SOURCES:
            r.refuse(at, f"random numbers from host device {_text(backend)[:200]}", "hostdev")


def _input(r: Rules, device: Element, where: str) -> None:
    evdev = any(e.get("evdev") for e, _ in subtree(device, where))
    if device.get("type") in ("passthrough", "evdev") or evdev:
        r.refuse(where, "an input device passed through from the host", "hostdev")


def _tpm(r: Rules, tpm: Element, where: str) -> None:
    for backend, at in children(tpm, where):
        if backend.tag == "backend" and backend.get("type") != "emulator":
            r.refuse(at, f"a TPM backend of type {str(backend.get('type'))[:40]} uses the "
                         "host's TPM or sockets; allowed: emulator", "hostdev")


def _graphics(r: Rules, graphics: Element, where: str) -> None:
    kind = graphics.get("type", "")
    if kind not in GRAPHICS_TYPES:
        r.refuse(where, f"graphics of type {kind[:40] or '(none)'} use the host's display",
                 "hostdev")
    for element, at in subtree(graphics, where):
        if element.get("socket"):
            r.refuse(at, f"graphics on host socket {str(element.get('socket'))[:200]}",
                     "host-chardevs")
        if element.get("rendernode"):
            r.refuse(at, "a host GPU render node", "hostdev")


def _audio(r: Rules, audio: Element, where: str) -> None:
    kind = audio.get("type", "")
    if kind == "file":
        r.refuse(where, "audio written into a host file", "host-chardevs")
    elif kind not in AUDIO_TYPES:
        r.refuse(where, f"audio of type {kind[:40] or '(none)'} uses the host's sound "
                        "devices; allowed: none, spice, dbus", "hostdev")


def _backed(tag: str) -> DeviceRule:
    """Devices backed by host files named in `<tag>` elements (nvdimm memory, pstore,
    leases): the files must lie under diskPaths."""
    def rule(r: Rules, device: Element, where: str) -> None:
        for element, at in subtree(device, where):
            if element.tag == tag and (_text(element) or element.get("path")):
                r.disk_path(at, _text(element) or str(element.get("path")), "disk-sources")
    return rule

_DEVICE_RULES: dict[str, DeviceRule] = {
    "disk": _disk, "interface": _interface, "smartcard": _smartcard, "rng": _rng,
    "input": _input, "tpm": _tpm, "graphics": _graphics, "audio": _audio,
    "memory": _backed("path"), "pstore": _backed("path"), "lease": _backed("target"),
    "hostdev": _refused("hostdev", "a host device passed through to the guest"),
    "filesystem": _refused("filesystem", "a host directory passed through to the guest"),
    "shmem": _refused("shmem", "memory shared with other guests and host processes"),
    "emulator": _refused("emulator", "another program run as the hypervisor"),
    **{tag: chardev for tag in ("serial", "parallel", "console", "channel", "redirdev")},
}


def _devices(r: Rules, devices: Element, where: str) -> None:
    for device, at in children(devices, where):
        if device.tag in HARMLESS_DEVICES or device.tag.startswith("{"):
            continue  # namespaced: refused by _generic
        rule = _DEVICE_RULES.get(device.tag)
        if rule is None:
            r.refuse(at, f"<{device.tag[:40]}> is not a device Herd's XML policy knows", None)
        else:
            rule(r, device, at)


def refusals(tree: Element, *, disk_paths: tuple[str, ...],
             boot_paths: tuple[str, ...]) -> list[Refusal]:
    """Every refusal of the domain `tree` with these allowed directories (normalized,
    absolute), before any named exception is applied."""
    r = Rules(disk_paths=disk_paths, boot_paths=boot_paths)
    for element, where in subtree(tree, ""):
        if element is not tree:
            _generic(r, element, where)
    for child, where in children(tree, ""):
        if child.tag == "os":
            _os(r, child, where)
        elif child.tag == "sysinfo":
            _sysinfo(r, child, where)
        elif child.tag == "devices":
            _devices(r, child, where)
    return r.found
