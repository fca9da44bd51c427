"""What the VM controller reads of one VM (`View`: spec, placement, status and owner, as
the watched cache has them), and the node's live-migration limits. Used by the modules of
`reconciler.vm`.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.client import Versioned
from store.codec import Doc


@dataclass(frozen=True)
class MigrationLimits:
    """Outgoing live migrations at once per node, and the time one may take."""

    concurrency: int = 2
    timeout: float = 300.0


@dataclass(frozen=True)
class View:
    """What ZooKeeper (through the cache) says about one VM."""

    name: str
    spec: Versioned | None
    placement: Doc
    status: Versioned | None
    owner: Versioned | None

    @property
    def exists(self) -> bool:
        return self.spec is not None

    @property
    def spec_doc(self) -> Doc:
        return self.spec.doc.get("spec", {}) if self.spec else {}
