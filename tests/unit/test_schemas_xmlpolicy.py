"""The domain XML policy (schemas.xmlpolicy, schemas.xmlrules): each refused construct is
named by its location and reason; the safe forms pass; named exceptions apply only when
the request may use them; allowed paths; the config's names are validated; the XML Herd
itself ships (examples, test domains, the dev cluster's QEMU guest) passes the default.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from ctl.dev.guest import guest_xml
from schemas.domainxml import parse_domain_xml
from schemas.node import ClusterConfigSchema
from schemas.xmlpolicy import (
    EXCEPTIONS,
    XmlPolicy,
    XmlPolicySchema,
    check_domain_xml,
    domain_xml_refusals,
)
from tests.support.libvirt_nodes import simple_domain_xml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QEMU = "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'"
DEFAULT = XmlPolicy()
ALL = XmlPolicy(allow=frozenset(EXCEPTIONS))


def domain(devices: str = "", *, top: str = "", os: str = "", attrs: str = "") -> str:
    return (f"<domain type='kvm' {attrs}><name>vm</name><memory unit='MiB'>64</memory>"
            f"<os><type>hvm</type>{os}</os>{top}<devices>{devices}</devices></domain>")


def refusals(xml: str, policy: XmlPolicy = DEFAULT, *, exceptions: bool = False) -> list[str]:
    return check_domain_xml(parse_domain_xml(xml), policy, exceptions_allowed=exceptions)


# (XML, the one refusal it gets, the exception that admits it)
REFUSED = [
    (domain(attrs=QEMU, top="<qemu:commandline><qemu:arg value='-S'/></qemu:commandline>"),
     "qemu:commandline: elements of the qemu namespace", "qemu-namespace"),
    (domain(attrs=QEMU, top="<qemu:capabilities><qemu:add capability='x'/>"
                            "</qemu:capabilities>"),
     "qemu:capabilities: elements of the qemu namespace", "qemu-namespace"),
    (domain("<disk type='file' device='disk'><source file='/etc/shadow'/></disk>"),
     "devices/disk/source: host path /etc/shadow is outside the allowed storage paths",
     "disk-sources"),
    (domain("<disk type='file'/><disk type='block'><source dev='/dev/sda'/></disk>"),
     "devices/disk[2]/source: host path /dev/sda is outside", "disk-sources"),
    (domain("<disk type='network'><source protocol='rbd' name='pool/img'/></disk>"),
     "devices/disk: disks of type network are refused: use a volume of a Herd pool",
     "disk-sources"),
    (domain("<disk type='nvme'><source type='pci'/></disk>"),
     "devices/disk: disks of type nvme", "disk-sources"),
    (domain("<disk type='file'><source file='/var/lib/herd/a.qcow2'/>"
            "<backingStore type='file'><source file='/etc/shadow'/></backingStore></disk>"),
     "devices/disk/backingStore/source: host path /etc/shadow", "disk-sources"),
    (domain("<hostdev mode='subsystem' type='pci'/>"),
     "devices/hostdev: a host device passed through", "hostdev"),
    (domain("<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/>"
            "</input>"), "devices/input: an input device passed through", "hostdev"),
    (domain("<smartcard mode='host'/>"), "devices/smartcard: a smartcard in mode host",
     "hostdev"),
    (domain("<tpm model='tpm-tis'><backend type='passthrough'/></tpm>"),
     "devices/tpm/backend: a TPM backend of type passthrough", "hostdev"),
    (domain("<shmem name='s'/>"), "devices/shmem: memory shared", "shmem"),
    (domain("<filesystem type='mount'><source dir='/'/><target dir='root'/></filesystem>"),
     "devices/filesystem: a host directory passed through", "filesystem"),
    (domain("<serial type='file'><source path='/etc/cron.d/x'/></serial>"),
     "devices/serial: a character device of type file", "host-chardevs"),
    (domain("<serial type='dev'><source path='/dev/ttyS0'/></serial>"),
     "devices/serial: a character device of type dev", "host-chardevs"),
    (domain("<parallel type='pipe'><source path='/tmp/p'/></parallel>"),
     "devices/parallel: a character device of type pipe", "host-chardevs"),
    (domain("<channel type='unix'><source mode='bind' path='/etc/x.sock'/></channel>"),
     "devices/channel/source: a unix socket at host path /etc/x.sock", "host-chardevs"),
    (domain("<serial type='tcp'><source mode='connect' host='10.0.0.1' service='22'/>"
            "</serial>"), "devices/serial: a character device of type tcp", "host-chardevs"),
    (domain("<console type='udp'><source mode='bind' service='9'/></console>"),
     "devices/console: a character device of type udp", "host-chardevs"),
    (domain("<serial type='pty'><log file='/etc/cron.d/x'/></serial>"),
     "devices/serial/log: host path /etc/cron.d/x", "host-chardevs"),
    (domain("<redirdev bus='usb' type='tcp'><source mode='connect' host='h' service='1'/>"
            "</redirdev>"), "devices/redirdev: a character device of type tcp",
     "host-chardevs"),
    (domain("<interface type='ethernet'><target dev='tap0'/></interface>"),
     "devices/interface: interfaces of type ethernet", "interfaces"),
    (domain("<interface type='direct'><source dev='eth0' mode='vepa'/></interface>"),
     "devices/interface: interfaces of type direct", "interfaces"),
    (domain("<interface type='bridge'><source bridge='br0'/><script path='/bin/x'/>"
            "</interface>"), "devices/interface/script: a script runs a program on the host",
     "interfaces"),
    (domain("<emulator>/bin/sh</emulator>"), "devices/emulator: another program",
     "emulator"),
    (domain(top="<seclabel type='none'/>"), "seclabel: a seclabel of type none", "seclabel"),
    (domain(top="<seclabel type='dynamic' model='dac' relabel='no'/>"),
     "seclabel: relabel='no'", "seclabel"),
    (domain("<disk type='file'><source file='/var/lib/herd/a'><seclabel model='dac' "
            "relabel='no'/></source></disk>", ),
     "devices/disk/source/seclabel: relabel='no'", "seclabel"),
    (domain(os="<kernel>/boot/vmlinuz</kernel>"),
     "os/kernel: host path /boot/vmlinuz is outside the allowed boot file paths",
     "boot-files"),
    (domain(os="<initrd>/etc/shadow</initrd>"), "os/initrd: host path /etc/shadow",
     "boot-files"),
    (domain(os="<loader readonly='yes' type='pflash'>/etc/passwd</loader>"),
     "os/loader: host path /etc/passwd", "boot-files"),
    (domain(os="<nvram>/etc/passwd</nvram>"),
     "os/nvram: host path /etc/passwd is outside the allowed storage paths", "boot-files"),
    (domain(top="<sysinfo type='fwcfg'><entry name='opt/x' file='/etc/shadow'/></sysinfo>"),
     "sysinfo/entry: host path /etc/shadow", "boot-files"),
]


@pytest.mark.parametrize(("xml", "message", "exception"), REFUSED,
                         ids=[m.split(":")[0] + f"-{i}" for i, (_, m, _) in enumerate(REFUSED)])
def test_each_refused_construct_is_named_and_admitted_only_by_its_exception(
        xml: str, message: str, exception: str) -> None:
    policy = XmlPolicy(disk_paths=("/var/lib/herd",))
    found = refusals(xml, policy)
    assert len(found) == 1 and found[0].startswith(message), found
    assert refusals(xml, policy, exceptions=False) == found  # the config alone is not enough
    allowed = XmlPolicy(allow=frozenset({exception}), disk_paths=("/var/lib/herd",))
    assert refusals(xml, allowed, exceptions=False) == found
    assert refusals(xml, allowed, exceptions=True) == []
    others = XmlPolicy(allow=frozenset(EXCEPTIONS) - {exception}, disk_paths=("/var/lib/herd",))
    assert refusals(xml, others, exceptions=True) == found


@pytest.mark.parametrize("xml", [
    domain("<namespaced xmlns='urn:x'/>"),
    domain("<foo/>"),
    domain(top="<x:y xmlns:x='urn:x'/>"),
])
def test_unknown_devices_and_other_namespaces_are_refused_without_exception(xml: str) -> None:
    assert refusals(xml) and refusals(xml, ALL, exceptions=True)


SAFE = [
    domain("<disk type='file' device='cdrom'><target dev='hdc'/></disk>"
           "<disk type='file' device='floppy'/>"),
    domain("<serial type='pty'/><console type='pty'/><channel type='spicevmc'/>"
           "<channel type='unix'><source mode='bind'/>"
           "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
           "<redirdev bus='usb' type='spicevmc'/>"),
    domain("<interface type='network'><source network='default'/></interface>"
           "<interface type='bridge'><source bridge='br0'/></interface>"
           "<interface type='user'/>"),
    domain("<graphics type='vnc' port='-1'/><video><model type='virtio'/></video>"
           "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
           "<tpm model='tpm-crb'><backend type='emulator'/></tpm>"
           "<controller type='usb' model='none'/><memballoon model='none'/>"),
    domain(top="<seclabel type='dynamic' model='selinux'/>"
                "<metadata><x:y xmlns:x='urn:x'><seclabel type='none'/></x:y></metadata>",
           os="<boot dev='hd'/>", attrs=QEMU),
    domain(os="<loader type='pflash'/><nvram/>").replace("<os>", "<os firmware='efi'>"),
]


@pytest.mark.parametrize("xml", SAFE)
def test_safe_forms_pass_the_default_policy(xml: str) -> None:
    assert refusals(xml) == []


def test_disk_and_boot_paths_admit_only_what_lies_under_them() -> None:
    policy = XmlPolicy(disk_paths=("/var/lib/herd",), boot_paths=("/srv/boot",))
    assert refusals(domain("<disk type='file'><source file='/var/lib/herd/a.qcow2'/></disk>"
                           "<serial type='pty'><log file='/var/lib/herd/a.log'/></serial>",
                           os="<kernel>/srv/boot/vmlinuz</kernel>"), policy) == []
    for path in ("/var/lib/herd/../../etc/shadow", "/var/lib/herdx/a", "/var/lib/herd",
                 "var/lib/herd/a", "//var/lib/herd/a"):
        found = refusals(domain(f"<disk type='file'><source file='{path}'/></disk>"), policy)
        assert found == [f"devices/disk/source: host path {path} is outside the allowed "
                         "storage paths (diskPaths): /var/lib/herd"], path
    # boot paths are not storage paths, nor the other way round
    assert refusals(domain("<disk type='file'><source file='/srv/boot/x'/></disk>"), policy)
    assert refusals(domain(os="<kernel>/var/lib/herd/k</kernel>"), policy)


def test_every_refusal_is_reported_with_its_location() -> None:
    xml = domain("<disk type='file'><source file='/a'/></disk>"
                 "<disk type='file'><source file='/b'/></disk><hostdev/>",
                 attrs=QEMU, top="<qemu:commandline/>")
    found = domain_xml_refusals(xml, DEFAULT, exceptions_allowed=False)
    assert [f.split(":")[0] for f in found] == [
        "qemu", "devices/disk[1]/source", "devices/disk[2]/source", "devices/hostdev"]


def test_deep_xml_is_walked_without_recursion() -> None:
    # The parser refuses XML deeper than MAX_XML_DEPTH; the walk must not depend on it.
    tree = parse_domain_xml(domain(top="<features/>"))
    node = tree.find("features")
    assert node is not None
    for _ in range(5000):
        node = ElementTree.SubElement(node, "a")
    assert check_domain_xml(tree, DEFAULT, exceptions_allowed=False) == []


def test_herds_own_domains_pass_the_default_policy() -> None:
    assert refusals(simple_domain_xml("t")) == []
    assert refusals(guest_xml("g", kvm=False)) == refusals(guest_xml("g", kvm=True)) == []
    assert refusals(EXAMPLES.joinpath("scratch.xml").read_text()) == []
    for path in EXAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "VM":
                assert refusals(doc["spec"]["xml"]) == [], path


def test_the_config_names_exceptions_and_normalized_directories() -> None:
    assert XmlPolicySchema().load({"allow": ["hostdev"], "diskPaths": ["/var/lib/herd"]}) == {
        "allow": ["hostdev"], "diskPaths": ["/var/lib/herd"]}
    with pytest.raises(ValidationError) as e:
        ClusterConfigSchema().load({"xmlPolicy": {
            "allow": ["hostdev", "root"], "diskPaths": ["/", "relative", "/a/../b", "/ok"],
            "other": 1}})
    errors = e.value.messages_dict["xmlPolicy"]
    assert set(errors) == {"allow", "diskPaths", "other"}
    assert list(errors["allow"]) == [1] and "Unknown exception 'root'" in errors["allow"][1][0]
    assert sorted(errors["diskPaths"]) == [0, 1, 2]


def test_a_policy_from_the_config_never_widens_on_bad_input() -> None:
    assert XmlPolicy.from_config(None) == DEFAULT
    assert XmlPolicy.from_config({"allow": ["hostdev", "bogus"]}) == DEFAULT
    assert XmlPolicy.from_config({"allow": ["hostdev"], "diskPaths": ["/d"]}) == XmlPolicy(
        allow=frozenset({"hostdev"}), disk_paths=("/d",))


TAGS = ["devices", "disk", "source", "serial", "log", "interface", "script", "backend", "os",
        "kernel", "nvram", "seclabel", "label", "metadata", "hostdev", "graphics", "listen",
        "rng", "tpm", "sysinfo", "entry", "mirror", "backingStore", "qemu:arg", "x"]
ATTRS = ["type", "file", "dev", "path", "socket", "relabel", "mode", "model", "template",
         "tap", "rendernode", "evdev"]
VALUES = ["", "file", "unix", "none", "no", "/etc/shadow", "/var/lib/herd/a", "pty",
          "network", "..", "passthrough", "egd", "random"]


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(st.sampled_from(TAGS))
    attrs = draw(st.dictionaries(st.sampled_from(ATTRS), st.sampled_from(VALUES), max_size=3))
    text = "".join(f" {k}='{v}'" for k, v in attrs.items())
    inner = "" if depth >= 3 else "".join(
        draw(st.lists(elements(depth + 1), max_size=3)))
    return f"<{tag}{text}>{draw(st.sampled_from(VALUES))}{inner}</{tag}>"


@given(st.lists(elements(), max_size=4), st.booleans())
@settings(max_examples=100, deadline=None)
def test_any_tree_gets_an_answer_of_located_messages(parts: list[str], admin: bool) -> None:
    xml = domain(top="".join(parts), attrs=QEMU)
    found = refusals(xml, ALL, exceptions=admin)
    assert all(isinstance(m, str) and ": " in m for m in found)
    assert len(refusals(xml, ALL, exceptions=False)) >= len(found)
