"""Pulling the plug on a host's guests: every running domain destroyed at once.

What the node watchdog (`reconciler.watchdog.mux`) does when herd-node stopped petting it
(`fence: self`): the guests must be off before the primary starts them elsewhere, so no
graceful shutdown, and every active domain of the host's libvirt, Herd's or not (as a
host reset would). Blocking; the watchdog runs it in a thread.
"""

from __future__ import annotations

import logging

import libvirt

from reconciler.libvirt.connection import quiet_libvirt_errors

log = logging.getLogger(__name__)


def power_off_all(uri: str) -> list[str]:
    """Destroy every running domain of `uri`; the names destroyed. Raises
    `libvirt.libvirtError` when libvirt cannot be reached at all."""
    quiet_libvirt_errors()
    conn = libvirt.open(uri)
    try:
        return power_off_domains(conn)
    finally:
        conn.close()


def power_off_domains(conn: libvirt.virConnect) -> list[str]:
    """Destroy every running domain of `conn`; a domain that cannot be destroyed is logged
    and the others are still tried."""
    done = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            dom.destroy()
            done.append(dom.name())
        except libvirt.libvirtError as e:
            if dom.isActive():
                log.error("could not power %s off: %s", dom.name(), e)
            else:
                done.append(dom.name())
    return done
