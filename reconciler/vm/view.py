"""What the VM controller reads of one VM (`View`: spec, placement, status and owner, as
the watched cache has them), the node's live-migration limits, and the controller's
timings. Used by `reconciler.vm.reconcile` and `reconciler.vm.migration`.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.client import Versioned
from store.codec import Doc

OWNER_WAIT = 2.0  # look again this soon while another session holds the owner znode
HANDOVER_LOOK = 0.2  # a migrated domain still listed here: look again this soon


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
