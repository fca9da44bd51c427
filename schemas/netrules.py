"""Firewall rules of a network (PVC's ACLs, issue #14): `{name, direction, order, rule}`,
the rule in nftables syntax on the network's traffic (`in`: to the guests, `out`: from
them), applied in `order` where the network's gateway is.

Here only the shape: one rule, one line, no statement separator, braces balanced and
never closing what they did not open (a rule is placed inside a chain Herd writes: it
must not be able to end that chain or table and start its own). Whether nftables parses
it is `server.network.nftcheck`'s question (`nft --check`). Pure; used by
`schemas.network` and `server`.
"""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from schemas.common import Choice, HerdSchema, StrictInt, Text
from schemas.names import Name
from vocabulary import AclDirection

MAX_RULES = 1024
MAX_RULE_LEN = 512
MAX_ORDER = 1_000_000


def validate_rule_text(rule: str) -> None:
    """One nftables rule that stays inside the chain it is put in."""
    if not rule.strip():
        raise ValidationError("An empty rule: give an nftables rule such as "
                              "'tcp dport 22 accept'.")
    for char, why in (("\n", "a line break"), ("\r", "a line break"), (";", "';'"),
                      ("#", "'#' (a comment)")):
        if char in rule:
            raise ValidationError(f"A rule is one nftables statement: {why} is not allowed.")
    depth = 0
    for index, char in enumerate(rule):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            raise ValidationError(f"Unbalanced '}}' at position {index}: a rule may not close "
                                  "what it did not open.")
    if depth:
        raise ValidationError("Unbalanced '{': every '{' needs its '}'.")


class AclRuleSchema(HerdSchema):
    """One firewall rule of a network."""

    name = Name(required=True)
    direction = Choice(AclDirection, required=True)
    order = StrictInt(load_default=1000, validate=validate.Range(
        min=0, max=MAX_ORDER, error=f"Must be between 0 and {MAX_ORDER}."))
    rule = fields.String(required=True, validate=[
        validate.Length(max=MAX_RULE_LEN, error=f"At most {MAX_RULE_LEN} characters."),
        validate_rule_text])
    description = Text(max_len=256, load_default="")


def unique_rule_names(rules: list[dict[str, object]]) -> None:
    seen: set[object] = set()
    for index, rule in enumerate(rules):
        if rule.get("name") in seen:
            raise ValidationError({str(index): {"name": [
                f"Duplicate rule name {rule.get('name')!r}: each rule of a network has its "
                "own name."]}})
        seen.add(rule.get("name"))
