"""Simulated hypervisors for tests: node files of libvirt's test driver (`test:///<file>`).

`write_node_file()` writes one node (its CPUs, memory and optional domains) and returns the
URI a `LibvirtHypervisor` or `herd-node` connects to. Used by the integration tests of the libvirt
adapter and the node daemon, and by `herdctl dev up`-style local clusters.

What the test driver does with such a file (libvirt 9.0, libvirt-python 12.8, checked):

- Every `libvirt.open()` of the URI parses the file afresh into state private to that
  connection: two connections to one file never see each other's domains or changes, and
  nothing is ever written back to the file (it may be deleted once opened). A simulated node
  is therefore one connection; a process that reconnects gets the file's initial state
  again. (`test:///default` is different: one state shared by the whole process.)
- `getInfo()` reports the file: memory in MiB, CPUs = `<active>` or else
  nodes x sockets x cores x threads. `getFreeMemory()` returns 0 (not implemented: libvirt's
  "error, cause unknown"), `getMemoryStats()` fails with VIR_ERR_NO_SUPPORT and there are no
  NUMA cells (`getCellsFreeMemory()` fails). No load average either.
- Domains listed in the file are persistent and already running (ids from 1).
- `create()` of a running domain fails (VIR_ERR_INTERNAL_ERROR, "already running"),
  `shutdown()`/`destroy()` of a stopped one fail too: the adapter checks the state first.
- `shutdown()` completes at once: the domain is shut off when the call returns, with a
  STOPPED(shutdown) lifecycle event and no SHUTDOWN event. With
  `<on_poweroff>restart</on_poweroff>` the domain is still running after `shutdown()`, same
  id, and no lifecycle event at all: a guest that ignores ACPI. `destroy()` takes it down
  (STOPPED(destroyed)).
- Lifecycle events need only libvirt timers: they work when the event loop is registered
  after the connection was opened. No migration, no keepalive (VIR_ERR_NO_SUPPORT); the
  close callback is accepted and never fires. `undefineFlags()` knows only MANAGED_SAVE and
  SNAPSHOTS_METADATA (others: VIR_ERR_INVALID_ARG, "unsupported flags").
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from ctl.dev.nodes import write_node_file


def simple_domain_xml(name: str, *, memory_mib: int = 512, vcpus: int = 1,
                    on_poweroff: str | None = None) -> str:
    """A minimal test-driver domain; on_poweroff='restart' makes a guest that ignores ACPI."""
    poweroff = "" if on_poweroff is None else f"<on_poweroff>{on_poweroff}</on_poweroff>"
    return (f"<domain type='test'><name>{escape(name)}</name>"
            f"<memory unit='MiB'>{memory_mib}</memory><vcpu>{vcpus}</vcpu>"
            f"<os><type>hvm</type></os>{poweroff}</domain>")


__all__ = ["simple_domain_xml", "write_node_file"]
