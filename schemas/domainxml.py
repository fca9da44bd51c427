"""Safe checks of libvirt domain XML, and the resources it asks for.

`normalize_domain_xml` is run by `schemas.vm` on every VM object (so nothing unsafe or
misnamed reaches ZooKeeper) and `domain_resources` by the scheduler for fit checks.
Parsing goes through defusedxml: DTDs, entity declarations and external references are
refused, so neither entity expansion ("billion laughs") nor file or network access can
happen. Before it, the text is checked by `schemas.untrusted`: valid Unicode, and nested
at most MAX_XML_DEPTH deep (so `itertext` and the serializer never recurse too far). Pure:
no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import ParamSpec, TypeVar
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as safe_et
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from marshmallow import ValidationError

from schemas.names import validate_name
from schemas.untrusted import MAX_XML_DEPTH, lone_surrogate, xml_depth

# Below ZooKeeper's 1 MiB request limit, with room for the rest of the VM document.
MAX_XML_BYTES = 900_000
MAX_VCPUS = 65536
MAX_MEMORY_BYTES = 2**63 - 1

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_DOMAIN_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DIGITS = re.compile(r"\s*[0-9]{1,20}\s*")
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_UNITS_HELP = "b, bytes, k, KiB, KB, M, MiB, MB, G, GiB, GB, T, TiB, TB, P, PiB, PB, E, EiB, EB"


@dataclass(frozen=True, slots=True)
class DomainResources:
    """What a domain asks of its host: memory (KiB, rounded up) and virtual CPUs."""

    memory_kib: int
    vcpus: int

    @property
    def memory_mib(self) -> int:
        """Memory in MiB, rounded up (node resources are counted in MiB)."""
        return -(-self.memory_kib // 1024)


def _parse(xml: str) -> Element:
    """Parse untrusted XML text safely; errors name the problem."""
    if not isinstance(xml, str):
        raise ValidationError(f"Domain XML must be a string, not {type(xml).__name__}.")
    size = len(xml.encode("utf-8", errors="surrogatepass"))
    if size > MAX_XML_BYTES:
        raise ValidationError(
            f"Domain XML is {size} bytes; at most {MAX_XML_BYTES} bytes are allowed."
        )
    if not xml.strip():
        raise ValidationError("Domain XML is empty.")
    _check_text(xml)
    try:
        return safe_et.fromstring(xml, forbid_dtd=True)
    except DTDForbidden:
        raise ValidationError(
            "Domain XML must not contain a DTD (<!DOCTYPE ...>): entity declarations are refused."
        ) from None
    except EntitiesForbidden:
        raise ValidationError("Domain XML must not declare entities.") from None
    except ExternalReferenceForbidden:
        raise ValidationError("Domain XML must not reference external resources.") from None
    except ParseError as e:
        raise ValidationError(f"Domain XML is not well-formed: {e}.") from None


def _check_text(xml: str) -> None:
    """Before parsing: valid Unicode (no lone surrogate) and nested at most MAX_XML_DEPTH
    deep, so that nothing after the parser recurses past Python's limit."""
    index = lone_surrogate(xml)
    if index is not None:
        raise ValidationError(
            f"Domain XML contains a lone surrogate (U+{ord(xml[index]):04X} at position "
            f"{index}); XML text must be valid Unicode."
        )
    depth = xml_depth(xml)
    if depth > MAX_XML_DEPTH:
        raise ValidationError(
            f"Domain XML nests elements {depth} levels deep; at most {MAX_XML_DEPTH} "
            "are allowed."
        )


def _only_child(root: Element, tag: str) -> Element | None:
    """The single direct child `tag` of the root, None when absent; two are an error."""
    found = root.findall(tag)
    if len(found) > 1:
        raise ValidationError(f"Domain XML has {len(found)} <{tag}> elements; at most one.")
    return found[0] if found else None


def _text(element: Element) -> str:
    """All text inside an element, as libvirt's XPath string() reads it."""
    return "".join(element.itertext())


def _check_root(root: Element) -> None:
    """The root is <domain type='...'>."""
    if root.tag != "domain":
        raise ValidationError(f"Root element must be <domain>, not <{root.tag}>.")
    kind = root.get("type")
    if kind is None:
        raise ValidationError("The <domain> element needs a type attribute (e.g. type='kvm').")
    if _DOMAIN_TYPE.fullmatch(kind) is None:
        raise ValidationError(
            f"Invalid domain type {kind[:40]!r}: expected a lowercase word such as kvm, qemu, test."
        )


def _check_uuid(root: Element) -> None:
    """A <uuid>, when present, is 32 hex digits (dashes allowed at the usual places)."""
    element = _only_child(root, "uuid")
    if element is not None and _UUID.fullmatch(_text(element).strip()) is None:
        raise ValidationError(f"Domain <uuid> {_text(element)[:60]!r} is not a valid UUID.")


def parse_domain_xml(xml: str) -> Element:
    """Parse and check domain XML; return its root element.

    Checks: size, well-formedness, no DTD or entities, root <domain type=...>, at most one
    <name>, a valid <uuid>, and readable <memory> and <vcpu> values.
    """
    root = _parse(xml)
    _check_root(root)
    _only_child(root, "name")
    _check_uuid(root)
    _resources(root)
    return root


def _domain_name(xml: str) -> str | None:
    """The domain's <name> (None when it has none), after `parse_domain_xml`'s checks."""
    element = _only_child(parse_domain_xml(xml), "name")
    return None if element is None else _text(element)


def _root_start_tag_end(xml: str) -> int:
    """Index just past the '>' of the root element's start tag (in well-formed XML)."""
    pos = 0
    while True:
        while pos < len(xml) and xml[pos] in " \t\r\n":
            pos += 1
        if xml.startswith("<?", pos):
            pos = xml.index("?>", pos) + 2
        elif xml.startswith("<!--", pos):
            pos = xml.index("-->", pos) + 3
        else:
            break
    quote = ""
    for index in range(pos + 1, len(xml)):
        char = xml[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ">":
            return index + 1
    raise ValidationError("Domain XML is not well-formed: the root start tag is not closed.")


def _insert_name(xml: str, name: str) -> str:
    """Insert <name>name</name> as the root's first child, keeping the rest of the text."""
    end = _root_start_tag_end(xml)
    element = f"<name>{escape(name)}</name>"
    if xml[end - 2] == "/":  # <domain type='x'/>: the root has no children
        return f"{xml[: end - 2].rstrip()}>{element}</domain>{xml[end:]}"
    following = xml[end:]
    indent = following[: len(following) - len(following.lstrip())]
    if "\n" not in indent:
        indent = ""
    return f"{xml[:end]}{indent}{element}{following}"


def _normalize_domain_xml(xml: str, name: str) -> str:
    """Check domain XML for the VM `name`; return it, with a <name> added when absent.

    The text is returned unchanged when it already names the VM (formatting and comments
    are kept). Raises `ValidationError` when the XML is unsafe, malformed or not a domain,
    or when its <name> differs from `name`.
    """
    validate_name(name)
    root = parse_domain_xml(xml)
    element = _only_child(root, "name")
    if element is None:
        return _insert_name(xml, name)
    found = _text(element)
    if found != name:
        raise ValidationError(
            f"Domain name {found[:80]!r} does not match the VM name {name!r}."
        )
    return xml


def rename_domain_xml(xml: str, old: str, new: str) -> str:
    """The domain XML of VM `old` (checked by `normalize_domain_xml`) renamed to `new`.

    When the text holds exactly one `<name>old</name>`, only that is replaced (formatting
    and comments kept); otherwise the element tree is rewritten. Called by the VM rename.
    """
    validate_name(new)
    normalize_domain_xml(xml, old)
    element = f"<name>{escape(old)}</name>"
    if xml.count(element) == 1:
        return xml.replace(element, f"<name>{escape(new)}</name>")
    root = parse_domain_xml(xml)
    name = _only_child(root, "name")
    if name is None:
        return _insert_name(xml, new)
    for child in list(name):
        name.remove(child)
    name.text = new
    return safe_et.tostring(root, encoding="unicode")


def _unit_factor(unit: str) -> int:
    """Bytes per unit, as libvirt reads units: case-insensitive; 'KB' = 1000, 'k' = 'KiB'."""
    lowered = unit.strip().lower()
    if lowered in ("b", "byte", "bytes"):
        return 1
    power = _POWERS.get(lowered[:1])
    if power is None or lowered[1:] not in ("", "ib", "b"):
        raise ValidationError(f"Unknown memory unit {unit[:20]!r}; use one of: {_UNITS_HELP}.")
    base = 1000 if lowered[1:] == "b" else 1024
    return int(base**power)


def _memory_kib(element: Element | None) -> int:
    """<memory unit=...>N</memory> in KiB, rounded up; 0 when absent."""
    if element is None:
        return 0
    text = _text(element)
    if _DIGITS.fullmatch(text) is None:
        raise ValidationError(f"Domain <memory> {text[:40]!r} is not a whole number.")
    size = int(text) * _unit_factor(element.get("unit", "KiB"))
    if size > MAX_MEMORY_BYTES:
        raise ValidationError("Domain <memory> is too large.")
    return -(-size // 1024)


def _vcpus(element: Element | None) -> int:
    """<vcpu>N</vcpu> (the maximum count); 1 when absent."""
    if element is None:
        return 1
    text = _text(element)
    if _DIGITS.fullmatch(text) is None or not 1 <= int(text) <= MAX_VCPUS:
        raise ValidationError(
            f"Domain <vcpu> {text[:40]!r} must be a whole number from 1 to {MAX_VCPUS}."
        )
    return int(text)


def _resources(root: Element) -> DomainResources:
    return DomainResources(
        memory_kib=_memory_kib(_only_child(root, "memory")),
        vcpus=_vcpus(_only_child(root, "vcpu")),
    )


def _domain_resources(xml: str) -> DomainResources:
    """Memory (KiB) and vCPUs the domain asks for, read from <memory> and <vcpu>.

    <memory> defaults to unit KiB and to 0 when absent; <vcpu> defaults to 1.
    """
    return _resources(parse_domain_xml(xml))


# --- memoized entry points ------------------------------------------------------------------
# One define validates the same XML in several schemas (request, VM object, placement fit);
# these are pure functions of their text arguments, so small documents are parsed once.
# Errors are not cached (lru_cache does not keep exceptions).

P = ParamSpec("P")
R = TypeVar("R")
CACHED_XML_BYTES = 16 * 1024


def memoized(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` cached on its positional arguments when the first is XML text of at most
    `CACHED_XML_BYTES` (also used by `schemas.xmlpolicy`)."""
    cached = lru_cache(maxsize=1024)(fn)

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        xml = args[0]
        if isinstance(xml, str) and len(xml) <= CACHED_XML_BYTES and not kwargs:
            return cached(*args)
        return fn(*args, **kwargs)

    call.__doc__ = fn.__doc__
    call.__name__ = fn.__name__.lstrip("_")
    return call


domain_name = memoized(_domain_name)
normalize_domain_xml = memoized(_normalize_domain_xml)
domain_resources = memoized(_domain_resources)
