"""The domain XML policy: what a VM's libvirt XML may ask of its hypervisor host.

Without a policy any API token is root on every hypervisor (a disk on /dev/sda, a
<qemu:commandline>, a <hostdev>...). `check_domain_xml(tree, policy, exceptions_allowed=)`
reads a tree parsed by `schemas.domainxml.parse_domain_xml` (defusedxml) and answers the
refusals, each "location: why" (location XPath-like, e.g. `devices/disk[2]/source`); the
rules themselves are in `schemas.xmlrules`. `XmlPolicy` is the cluster's policy, read from
the `xmlPolicy` key of /herd/config (`XmlPolicySchema`, part of `ClusterConfigSchema`):
- `allow`: named exceptions (`EXCEPTIONS`), honoured only when the request may use them
  (`exceptions_allowed`: admin tokens);
- `diskPaths`: directories under which disks, NVRAM, chardev logs and other writable host
  files may lie (Herd's storage pools will replace them); `bootPaths`: directories of
  read-only boot files (kernel, initrd, loader, ACPI tables). Both apply to every request.
Pure: no I/O. Called by `server` at every write of a VM's XML (define, modify, PUT, apply).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

from marshmallow import ValidationError, fields, validate

from schemas.common import HerdSchema
from schemas.domainxml import memoized, parse_domain_xml
from schemas.xmlrules import refusals

# The named exceptions an admin may allow, and what each admits.
EXCEPTIONS: dict[str, str] = {
    "qemu-namespace": "elements of the qemu namespace (qemu:commandline, qemu:capabilities, "
                      "qemu:override...): arguments passed to QEMU unchecked",
    "hostdev": "host devices: <hostdev>, input/TPM passthrough, host smartcards, host audio, "
               "GPU render nodes, a random number source other than /dev/(u)random or hwrng",
    "filesystem": "<filesystem>: host directories passed through to the guest",
    "shmem": "<shmem>: memory shared with other guests and host processes",
    "disk-sources": "disks and other storage whose source is outside diskPaths, or of type "
                    "network, volume, nvme or vhostuser",
    "boot-files": "<os> kernel, initrd, dtb, loader, NVRAM template, ACPI tables and fw_cfg "
                  "files outside bootPaths",
    "host-chardevs": "character devices on host files, devices, pipes or sockets (file, dev, "
                     "pipe, unix with a path, tcp, udp), their logs outside diskPaths, "
                     "graphics on a host socket, audio into a file",
    "interfaces": "interfaces other than network, bridge and user; <script>, <downscript>, "
                  "<backend tap/vhost>",
    "emulator": "<emulator>: another program run as the hypervisor",
    "seclabel": "<seclabel> of type none or static, with relabel='no', or with a given label",
}

MAX_POLICY_PATHS = 64


@dataclass(frozen=True, slots=True)
class XmlPolicy:
    """The cluster's domain XML policy (hashable: refusals are memoized per XML text)."""

    allow: frozenset[str] = frozenset()
    disk_paths: tuple[str, ...] = ()
    boot_paths: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, value: Any) -> XmlPolicy:
        """The policy of /herd/config's `xmlPolicy` (absent or invalid: the default)."""
        if value is None:
            return cls()
        try:
            loaded = _SCHEMA.load(value)
        except ValidationError:
            return cls()  # a hand-written bad config never widens the policy
        return cls(allow=frozenset(loaded.get("allow", ())),
                   disk_paths=tuple(loaded.get("diskPaths", ())),
                   boot_paths=tuple(loaded.get("bootPaths", ())))


def _validate_directory(value: str) -> None:
    if not value.startswith("/") or value == "/" or posixpath.normpath(value) != value:
        raise ValidationError(
            f"{value[:120]!r} is not a normalized absolute directory other than / "
            "(no trailing slash, '.' or '..')."
        )


def _validate_exception(value: str) -> None:
    if value not in EXCEPTIONS:
        raise ValidationError(
            f"Unknown exception {value[:60]!r}; known: {', '.join(EXCEPTIONS)}."
        )


def _paths_field() -> fields.List[str]:
    return fields.List(fields.String(validate=_validate_directory),
                       validate=validate.Length(max=MAX_POLICY_PATHS))


class XmlPolicySchema(HerdSchema):
    """/herd/config `xmlPolicy`: named exceptions (admin only) and allowed host paths."""

    allow = fields.List(fields.String(validate=_validate_exception),
                        validate=validate.Length(max=len(EXCEPTIONS)))
    diskPaths = _paths_field()
    bootPaths = _paths_field()


_SCHEMA = XmlPolicySchema()


def check_domain_xml(tree: Element, policy: XmlPolicy, *,
                     exceptions_allowed: bool) -> list[str]:
    """The refusals of the parsed domain `tree` under `policy`, each "location: why";
    empty when the XML is allowed. `exceptions_allowed`: the request may use the policy's
    named exceptions (admin tokens); otherwise only the default policy and the paths."""
    allowed = policy.allow if exceptions_allowed else frozenset()
    return [f"{where}: {why}" for where, why, exception in refusals(
                tree, disk_paths=policy.disk_paths, boot_paths=policy.boot_paths)
            if exception is None or exception not in allowed]


def _xml_refusals(xml: str, policy: XmlPolicy, exceptions_allowed: bool) -> tuple[str, ...]:
    return tuple(check_domain_xml(parse_domain_xml(xml), policy,
                                  exceptions_allowed=exceptions_allowed))


_memoized_refusals = memoized(_xml_refusals)


def domain_xml_refusals(xml: str, policy: XmlPolicy, *,
                        exceptions_allowed: bool) -> tuple[str, ...]:
    """`check_domain_xml` of XML text (checked by `parse_domain_xml` first; its errors are
    raised as `ValidationError`); memoized for small documents."""
    return _memoized_refusals(xml, policy, exceptions_allowed)

