"""The watchdog's bookkeeping: who is watched, until when. Pure; used by `mux`.

A client is known by the name it pets with (the node), not by its connection: a daemon
killed and started again takes over its predecessor's watch with its first pet, so a
quick restart (systemd's) powers nothing off, while a daemon gone for good leaves its
watch to expire. Only `disarm` (a clean stop: the magic close of Linux watchdogs) ends
a watch early.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Watch:
    name: str
    timeout: float
    deadline: float  # on the monotonic clock
    pid: int | None  # the process that petted last (killed when the watch expires)


@dataclass
class Deadlines:
    watches: dict[str, Watch] = field(default_factory=dict)

    def pet(self, name: str, timeout: float, *, now: float, pid: int | None) -> Watch:
        watch = Watch(name, timeout, now + timeout, pid)
        self.watches[name] = watch
        return watch

    def disarm(self, name: str) -> bool:
        return self.watches.pop(name, None) is not None

    def expired(self, now: float) -> list[Watch]:
        """The watches past their deadline, removed: each fires once."""
        gone = [w for w in self.watches.values() if now >= w.deadline]
        for w in gone:
            del self.watches[w.name]
        return gone

    def next_deadline(self) -> float | None:
        return min((w.deadline for w in self.watches.values()), default=None)
