"""A kazoo threading handler whose `select` uses poll(2): one system call per wait.

kazoo 2.11's handler answers every `select` (about three per message received) with a
new epoll selector: epoll_create, a ctl per descriptor, the wait and a close. In the node
daemon's profile that was about 45% of kazoo's connection thread. poll() needs no setup
and, unlike select(), has no limit on descriptor numbers (the API server holds many
sockets). Like the other modules here that patch kazoo, it can go when kazoo changes.
Used by `store.client.Store`.
"""

from __future__ import annotations

import select
from collections import defaultdict
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.handlers.utils import fileobj_to_fd

READ = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
WRITE = select.POLLOUT


def poll_select(rlist: list[Any], wlist: list[Any], xlist: list[Any],
                timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    """select()'s interface over poll(); errors and hang-ups count as readable (so the
    reader sees them), as select() reports them."""
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be non-negative")
    masks: dict[int, int] = defaultdict(int)
    objects: dict[int, list[Any]] = defaultdict(list)
    for objs, mask in ((rlist, READ), (wlist, WRITE)):
        for obj in objs:
            fd = fileobj_to_fd(obj)
            masks[fd] |= mask
            objects[fd].append(obj)
    poller = select.poll()
    for fd, mask in masks.items():
        poller.register(fd, mask)
    ready = poller.poll(None if timeout is None else timeout * 1000)
    readable, writable = [], []
    for fd, events in ready:
        if events & READ:
            readable += [o for o in objects[fd] if any(o is r for r in rlist)]
        if events & WRITE:
            writable += [o for o in objects[fd] if any(o is w for w in wlist)]
    return readable, writable, []


class PollHandler(SequentialThreadingHandler):  # type: ignore[misc]
    def select(self, *args: Any, **kwargs: Any) -> tuple[list[Any], list[Any], list[Any]]:
        return poll_select(*args, **kwargs)
