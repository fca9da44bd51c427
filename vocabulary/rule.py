"""Affinity rules (issue #17): what a rule asks of its VMs' nodes."""

from enum import StrEnum


class RuleKind(StrEnum):
    TOGETHER = "together"  # all on one node
    APART = "apart"  # each on a node of its own
