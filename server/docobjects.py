"""The objects that are one document each — Networks, Pools, Volumes and Rules — as the
API's cache keeps them: one informer per kind (`/networks`, `/pools`, `/volumes`,
`/rules`), lookups by kind and name (a Volume's name is `<pool>/<name>`). Part of
`server.cache.ClusterCache` (which turns their changes into watch events).
"""

from __future__ import annotations

from collections.abc import Mapping

from store.client import Store, Versioned
from store.informer import Informer


class DocObjects:
    """Informers of document-only kinds, by kind."""

    def __init__(self, store: Store, folders: Mapping[str, str]) -> None:
        self.folders = dict(folders)
        self.informers = {kind: Informer(store, folder) for kind, folder in folders.items()}

    def get(self, kind: str, name: str) -> Versioned | None:
        found = self.informers[kind].get(f"{self.folders[kind]}/{name}")
        return found if found is not None and found.doc else None

    def names(self, kind: str) -> list[str]:
        """The objects' names (a Volume's: `<pool>/<name>`)."""
        folder = self.folders[kind]
        informer = self.informers[kind]
        if kind != "Volume":
            return sorted(informer.children(folder))
        return sorted(f"{pool}/{name}" for pool in informer.children(folder)
                      for name in informer.children(f"{folder}/{pool}"))
