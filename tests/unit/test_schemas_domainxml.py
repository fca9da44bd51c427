"""Unit tests of `schemas.domainxml`: safe parsing, name checks, resources."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from schemas import (
    MAX_XML_BYTES,
    DomainResources,
    domain_name,
    domain_resources,
    normalize_domain_xml,
    parse_domain_xml,
)

NAMED = """<domain type='test'>
  <name>web1</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>2</vcpu>
</domain>
"""

UNNAMED = """<?xml version="1.0"?>
<!-- a test domain -->
<domain type='kvm' id='7'>
  <memory>131072</memory>
</domain>
"""


def _error(xml: str, name: str = "web1") -> list[str]:
    with pytest.raises(ValidationError) as info:
        normalize_domain_xml(xml, name)
    messages = info.value.messages
    assert isinstance(messages, list)
    return messages


def test_a_matching_name_keeps_the_text_unchanged() -> None:
    assert normalize_domain_xml(NAMED, "web1") is NAMED


def test_a_missing_name_is_inserted_as_first_child_keeping_the_layout() -> None:
    result = normalize_domain_xml(UNNAMED, "db1")
    assert result == UNNAMED.replace(
        "<domain type='kvm' id='7'>\n", "<domain type='kvm' id='7'>\n  <name>db1</name>\n"
    )
    root = parse_domain_xml(result)
    assert [child.tag for child in root] == ["name", "memory"]
    assert domain_name(result) == "db1"


def test_name_insertion_into_a_self_closing_root_and_past_a_quoted_gt() -> None:
    assert normalize_domain_xml("<domain type='test'/>", "a") == (
        "<domain type='test'><name>a</name></domain>"
    )
    xml = '<domain type="test" note="a>b"><memory>1</memory></domain>'
    assert normalize_domain_xml(xml, "a") == (
        '<domain type="test" note="a>b"><name>a</name><memory>1</memory></domain>'
    )


def test_a_mismatched_name_is_refused() -> None:
    assert _error(NAMED, "web2") == ["Domain name 'web1' does not match the VM name 'web2'."]
    spaced = NAMED.replace("<name>web1</name>", "<name> web1 </name>")
    assert _error(spaced) == ["Domain name ' web1 ' does not match the VM name 'web1'."]


def test_the_vm_name_itself_must_be_valid() -> None:
    assert _error(NAMED, "Web1")[0].startswith("Name 'Web1' must be lowercase")


@pytest.mark.parametrize(
    ("xml", "detail"),
    [
        ("<domain type='test'>", "no element found"),
        ("<domain type='test'/><x/>", "junk after document element"),
        ("<domain type='test'>&amp;&foo;</domain>", "undefined entity"),
        ("<domain type='test'><name>a</nom></domain>", "mismatched tag"),
    ],
)
def test_malformed_documents_are_refused_with_the_parser_detail(xml: str, detail: str) -> None:
    # The position wording comes from expat; the prefix and the detail are ours to rely on.
    [message] = _error(xml)
    assert message.startswith(f"Domain XML is not well-formed: {detail}")


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("", "Domain XML is empty."),
        (" \n", "Domain XML is empty."),
        ("<vm type='test'/>", "Root element must be <domain>, not <vm>."),
        ("<domain/>", "The <domain> element needs a type attribute (e.g. type='kvm')."),
        ("<domain type='KVM x'/>",
         "Invalid domain type 'KVM x': expected a lowercase word such as kvm, qemu, test."),
        ("<d:domain xmlns:d='urn:x' type='kvm'/>",
         "Root element must be <domain>, not <{urn:x}domain>."),
        ("<domain type='test'><name>a</name><name>b</name></domain>",
         "Domain XML has 2 <name> elements; at most one."),
        ("<domain type='test'><uuid>not-a-uuid</uuid></domain>",
         "Domain <uuid> 'not-a-uuid' is not a valid UUID."),
        ("<domain type='test'><uuid>6695eb01f6a4830479aa97f2502e193</uuid></domain>",
         "Domain <uuid> '6695eb01f6a4830479aa97f2502e193' is not a valid UUID."),
    ],
)
def test_bad_documents_are_refused_clearly(xml: str, message: str) -> None:
    assert _error(xml) == [message]


def test_uuid_without_dashes_is_accepted() -> None:
    xml = "<domain type='test'><uuid>6695eb01f6a4830479aa97f2502e193f</uuid></domain>"
    assert normalize_domain_xml(xml, "a").startswith("<domain type='test'><name>a</name>")


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE domain [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<domain type='test'><name>&lol3;</name></domain>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<domain type='test'><name>&secret;</name></domain>
"""

DTD_MESSAGE = (
    "Domain XML must not contain a DTD (<!DOCTYPE ...>): entity declarations are refused."
)


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL, "<!DOCTYPE domain><domain type='t'/>"])
def test_dtds_and_entities_are_refused(xml: str) -> None:
    assert _error(xml) == [DTD_MESSAGE]
    with pytest.raises(ValidationError):
        domain_resources(xml)


def test_documents_over_one_mib_are_refused() -> None:
    padding = "<!--" + "x" * MAX_XML_BYTES + "-->"
    xml = f"<domain type='test'>{padding}</domain>"
    size = len(xml.encode())
    assert _error(xml) == [
        f"Domain XML is {size} bytes; at most {MAX_XML_BYTES} bytes are allowed."
    ]


def test_the_size_limit_counts_utf8_bytes() -> None:
    body = "\u00e9" * (MAX_XML_BYTES // 2)  # 2 bytes each in UTF-8
    xml = f"<domain type='test'><description>{body}</description></domain>"
    assert len(xml) < MAX_XML_BYTES < len(xml.encode())
    assert _error(xml)[0].startswith("Domain XML is ")


def test_non_string_xml_is_refused() -> None:
    bad: object = b"<domain type='test'/>"
    assert _error(bad) == ["Domain XML must be a string, not bytes."]  # type: ignore[arg-type]


def _memory(amount: str, unit: str | None) -> str:
    attr = "" if unit is None else f" unit='{unit}'"
    return f"<domain type='test'><memory{attr}>{amount}</memory></domain>"


@pytest.mark.parametrize(
    ("amount", "unit", "kib"),
    [
        ("1024", None, 1024),
        ("5", "KiB", 5),
        ("5", "k", 5),
        ("5", "K", 5),
        ("1000", "KB", 977),  # 1,000,000 bytes, rounded up to whole KiB
        ("1", "b", 1),
        ("2048", "bytes", 2),
        ("1", "M", 1024),
        ("64", "MiB", 65536),
        ("1", "MB", 977),
        ("1", "G", 1024**2),
        ("2", "GiB", 2 * 1024**2),
        ("1", "TiB", 1024**3),
        ("1", "T", 1024**3),
        (" 8 ", "mib", 8192),
    ],
)
def test_memory_units_are_converted_to_kib(amount: str, unit: str | None, kib: int) -> None:
    assert domain_resources(_memory(amount, unit)) == DomainResources(memory_kib=kib, vcpus=1)


def test_resources_read_vcpu_and_default_memory_and_mib() -> None:
    resources = domain_resources(NAMED)
    assert resources == DomainResources(memory_kib=65536, vcpus=2)
    assert resources.memory_mib == 64
    assert domain_resources("<domain type='test'/>") == DomainResources(memory_kib=0, vcpus=1)
    assert DomainResources(memory_kib=1025, vcpus=1).memory_mib == 2


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (_memory("64", "parsec"),
         "Unknown memory unit 'parsec'; use one of: b, bytes, k, KiB, KB, M, MiB, MB, G, GiB, GB, "
         "T, TiB, TB, P, PiB, PB, E, EiB, EB."),
        (_memory("1.5", "GiB"), "Domain <memory> '1.5' is not a whole number."),
        (_memory("-1", None), "Domain <memory> '-1' is not a whole number."),
        (_memory("99999999999", "EiB"), "Domain <memory> is too large."),
        ("<domain type='test'><vcpu>0</vcpu></domain>",
         "Domain <vcpu> '0' must be a whole number from 1 to 65536."),
        ("<domain type='test'><vcpu>two</vcpu></domain>",
         "Domain <vcpu> 'two' must be a whole number from 1 to 65536."),
    ],
)
def test_bad_resources_are_refused_by_both_functions(xml: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        domain_resources(xml)
    assert info.value.messages == [message]
    assert _error(xml) == [message]


def test_rename_keeps_formatting_and_changes_only_the_name() -> None:
    from schemas.domainxml import domain_name, rename_domain_xml

    xml = "<domain type='kvm'>\n  <!-- keep me -->\n  <name>old</name>\n  <vcpu>2</vcpu>\n</domain>"
    out = rename_domain_xml(xml, "old", "new")
    assert out == xml.replace("<name>old</name>", "<name>new</name>")
    assert domain_name(out) == "new"


def test_rename_rewrites_the_tree_when_the_name_text_is_ambiguous() -> None:
    from schemas.domainxml import domain_name, rename_domain_xml

    xml = ("<domain type='kvm'><name>old</name><devices><interface type='bridge'>"
           "<name>old</name></interface></devices></domain>")
    out = rename_domain_xml(xml, "old", "new")
    assert domain_name(out) == "new"
    assert out.count("<name>old</name>") == 1  # the nested element is not the domain's name


def test_rename_refuses_a_bad_new_name() -> None:
    from schemas.domainxml import rename_domain_xml

    with pytest.raises(ValidationError):
        rename_domain_xml("<domain type='kvm'><name>old</name></domain>", "old", "Bad/Name")
