"""Affinity rules in ZooKeeper (issue #17): `<root>/rules/<name>`, a Rule object's
document (`{apiVersion, kind: Rule, metadata: {name}, spec: {kind, strict, vms}}`, checked
by `schemas.rules`), and its reading as the typed `store.affinity.Rule`.

Pure reading here; the writes are herd-api's (`server.rules`). Read by the primary's
placement (`reconciler.cluster.controllers`, from its `/rules` informer) and the API's
explicit moves (`server.vm_verbs`, from its cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from store.affinity import Rule
from store.codec import Doc


def read_rule(name: str, doc: Mapping[str, Any]) -> Rule:
    spec = doc.get("spec") or {}
    return Rule(name=name, kind=str(spec.get("kind", "")), strict=bool(spec.get("strict")),
                vms=tuple(str(v) for v in spec.get("vms") or ()))


def read_rules(names: Iterable[str], get: Callable[[str], Doc | None]) -> list[Rule]:
    """The rules of `names`, each read with `get(name)` (None: gone meanwhile)."""
    found = []
    for name in sorted(names):
        doc = get(name)
        if doc is not None:
            found.append(read_rule(name, doc))
    return found
